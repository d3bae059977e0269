"""Supervised warm start: token-level cross-entropy on (prompt, target) pairs.

The paper's PPO starts from a fine-tuned CodeT5; this is that fine-tuning. Batches are drawn
deterministically from (seed, step), so a run is reproducible.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from ppocoder_jax.config import Config
from ppocoder_jax.pipeline.batching import EncodedExamples, source_batch, target_batch


def sft_optimizer(cfg: Config) -> optax.GradientTransformation:
    s = cfg.sft
    return warmup_cosine_adamw(s.steps, s.warmup_steps, s.learning_rate)


def warmup_cosine_adamw(steps: int, warmup_steps: int, learning_rate: float):
    """AdamW (clipped at norm 1, weight decay 0.01) with linear warm-up and cosine decay to a
    tenth: SFT's optimizer, and pretraining's."""
    warmup = min(warmup_steps, max(steps - 1, 0))
    schedule = optax.warmup_cosine_decay_schedule(
        0.0,
        learning_rate,
        max(warmup, 1),
        max(steps, warmup + 1),
        end_value=learning_rate * 0.1,
    )
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.01))


def cross_entropy_loss(params, policy, batch, dtype, label_smoothing: float = 0.0):
    """Mean token cross-entropy over the target tokens only (prompt tokens carry no loss).
    Without label smoothing it is -log p(target) from the fused LM head (no [B, T, V])."""
    src, src_mask, tgt, tgt_mask = batch
    if label_smoothing:  # needs every log-prob of the vocabulary
        logits, _ = policy.score(params, src, src_mask, tgt, tgt_mask, dtype)
        labels = optax.smooth_labels(jax.nn.one_hot(tgt, logits.shape[-1]), label_smoothing)
        losses = optax.softmax_cross_entropy(logits, labels)
    else:
        logprobs, _, _ = policy.token_stats(params, src, src_mask, tgt, tgt_mask, dtype)
        losses = -logprobs
    mask = tgt_mask.astype(jnp.float32)
    return (losses * mask).sum() / jnp.maximum(mask.sum(), 1.0)


@functools.partial(
    jax.jit,
    static_argnames=("policy", "optimizer", "dtype", "label_smoothing"),
    donate_argnums=(0, 1),
)
def sft_step(params, opt_state, batch, *, policy, optimizer, dtype, label_smoothing):
    loss, grads = jax.value_and_grad(cross_entropy_loss)(
        params, policy, batch, dtype, label_smoothing
    )
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, opt_state, loss


@functools.partial(jax.jit, static_argnames=("policy", "dtype"))
def sft_eval_loss(params, batch, *, policy, dtype):
    return cross_entropy_loss(params, policy, batch, dtype)


class BatchDraws:
    """Batches of one corpus in a seeded order, reshuffled after each pass."""

    def __init__(self, n: int, batch_size: int, rng: np.random.Generator):
        self.n, self.batch_size, self.rng = n, batch_size, rng
        self.order, self.cursor = rng.permutation(n), 0

    def next(self) -> np.ndarray:
        if self.cursor + self.batch_size > self.n:
            self.order, self.cursor = self.rng.permutation(self.n), 0
        idx = self.order[self.cursor : self.cursor + self.batch_size]
        self.cursor += self.batch_size
        return idx


def run_sft(
    cfg: Config,
    params,
    model_cfg,
    train: EncodedExamples,
    val: EncodedExamples | None,
    logger,
    seed: int,
    revisions: EncodedExamples | None = None,
):
    """Trains `params` for cfg.sft.steps; returns the new params.

    `revisions` (sft.revision_examples) get batches of their own, one step in every
    (len(train) + len(revisions)) / len(revisions): their prompts are several times longer
    than the problems', and a mixed batch would pad every problem to them."""
    from ppocoder_jax.model.common import compute_dtype
    from ppocoder_jax.model.families import as_policy

    policy = as_policy(model_cfg, remat=cfg.model.remat)
    s = cfg.sft
    dtype = compute_dtype(cfg)
    optimizer = sft_optimizer(cfg)
    opt_state = optimizer.init(params)
    buckets = s.length_buckets
    draws = BatchDraws(len(train), s.batch_size, np.random.default_rng(seed))
    every = 0  # a revision batch every `every` steps (0: none)
    if revisions is not None and len(revisions):
        every = max(round((len(train) + len(revisions)) / len(revisions)), 1)
        revision_draws = BatchDraws(len(revisions), s.batch_size, np.random.default_rng(seed + 1))
    start = time.time()
    progress = tqdm(range(s.steps), desc="sft", unit="step", mininterval=2.0)
    for step in progress:
        corpus = train
        if every and step % every == every - 1:
            corpus, idx = revisions, revision_draws.next()
        else:
            idx = draws.next()
        src, src_mask = source_batch(corpus, idx, buckets, cfg.data.max_source_length)
        tgt, tgt_mask = target_batch(corpus, idx, buckets, cfg.data.max_target_length)
        params, opt_state, loss = sft_step(
            params,
            opt_state,
            (src, src_mask, tgt, tgt_mask),
            policy=policy,
            optimizer=optimizer,
            dtype=dtype,
            label_smoothing=s.label_smoothing,
        )
        if step % 25 == 0 or step == s.steps - 1:
            loss = float(loss)
            progress.set_postfix(loss=f"{loss:.3f}")
            metrics = {"loss": loss, "elapsed_s": time.time() - start}
            if val is not None and len(val) and (step % 200 == 0 or step == s.steps - 1):
                metrics["val_loss"] = validation_loss(cfg, params, policy, val, dtype)
            logger.log("sft", step, metrics)
    return params


def validation_loss(
    cfg: Config, params, policy, val: EncodedExamples, dtype, max_examples: int = 256
) -> float:
    total, count = 0.0, 0
    bs = cfg.sft.batch_size
    for lo in range(0, min(len(val), max_examples), bs):
        idx = np.arange(lo, min(lo + bs, len(val), max_examples))
        src, src_mask = source_batch(val, idx, cfg.sft.length_buckets, cfg.data.max_source_length)
        tgt, tgt_mask = target_batch(val, idx, cfg.sft.length_buckets, cfg.data.max_target_length)
        total += float(
            sft_eval_loss(params, (src, src_mask, tgt, tgt_mask), policy=policy, dtype=dtype)
        ) * len(idx)
        count += len(idx)
    return total / max(count, 1)
