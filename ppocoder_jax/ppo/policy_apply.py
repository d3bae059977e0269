"""The policy as the PPO update sees it: one teacher-forced pass for the step and the statistics.

    make_apply_fn(policy, dtype, head_only=False, dropout=True)
        -> apply(params, batch: PPOBatch, rng) -> (logprobs, entropy, values) [b,T] fp32
    rollout_statistics(params, ref_params or None, prompt_ids, prompt_mask, tokens, token_mask,
                       *, policy, dtype, exact_kl) -> (logprobs, values, ref_logprobs, kl | None)
    reference_logprobs(ref_params, prompt_ids, prompt_mask, tokens, token_mask, *, policy,
                       dtype) -> ref_logprobs        (ppo.old_logprobs=sampler: the reference only)

Both run the policy's teacher-forced pass with the same masks and the fused LM head
(`Policy.token_stats`), so the log-probs the PPO ratio starts from and the ones the train step
recomputes come from the same computation.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ppocoder_jax.model.families import as_policy
from ppocoder_jax.model.policy import backbone_frozen


def make_apply_fn(policy, dtype=jnp.float32, head_only: bool = False, dropout: bool = True):
    """``apply(params, batch, rng)``: the log-prob of tokens[:, t] and the entropy of the
    distribution that produced it; values[:, t] is the value of the state before it. ``dropout`` passes ``rng`` to the value-head dropout;
    ``head_only`` lets gradients reach only the value head (the value warm-up must not move
    the policy through the backbone; AdamW's decoupled weight decay still applies)."""
    policy = as_policy(policy)

    def apply(params, batch, rng):
        if head_only:
            params = backbone_frozen(params)
        return policy.token_stats(
            params,
            batch.prompt_ids,
            batch.prompt_mask,
            batch.tokens,
            batch.token_mask,
            dtype,
            dropout_rng=rng if dropout else None,
        )

    return apply


@functools.partial(jax.jit, static_argnames=("policy", "dtype", "exact_kl"))
def rollout_statistics(
    params, ref_params, prompt_ids, prompt_mask, tokens, token_mask, *, policy, dtype, exact_kl
):
    """Teacher-forced log-probs / values of the policy, the reference's log-probs, and (when
    exact_kl) the full-vocabulary KL per token, else None; all 0 where token_mask == 0.
    Through the fused LM head (model/lm_head.py): no [B, T, V] logits.

    ``ref_params=None`` (no KL: ``kl.mode=none`` or beta = 0) skips the reference forward: the
    reference log-probs are the policy's own and the KL is 0."""
    from ppocoder_jax.model import lm_head

    policy = as_policy(policy)
    mask = token_mask.astype(jnp.float32)
    args = (prompt_ids, prompt_mask, tokens, token_mask, dtype)
    if ref_params is None or not exact_kl:
        logprobs, _, values = policy.token_stats(params, *args)
        logprobs = logprobs * mask
        if ref_params is None:
            kl = jnp.zeros_like(logprobs) if exact_kl else None
            return logprobs, values * mask, logprobs, kl
        ref_logprobs = reference_logprobs(ref_params, *args[:4], policy=policy, dtype=dtype)
        return logprobs, values * mask, ref_logprobs, None
    hidden, values = policy.head_inputs(params, *args)
    ref_hidden, _ = policy.head_inputs(ref_params, *args)
    weight, vocab_major = policy.head_weight(params, dtype)
    ref_weight, _ = policy.head_weight(ref_params, dtype)
    logprobs, ref_logprobs, kl = lm_head.logprob_and_exact_kl(
        hidden, weight, ref_hidden, ref_weight, tokens, vocab_major=vocab_major
    )
    return logprobs * mask, values * mask, ref_logprobs * mask, kl * mask


@functools.partial(jax.jit, static_argnames=("policy", "dtype"))
def reference_logprobs(ref_params, prompt_ids, prompt_mask, tokens, token_mask, *, policy, dtype):
    """The reference's teacher-forced log-probs alone, 0 where token_mask == 0: the rollout
    statistics when the policy's own log-probs and values come from the sampler
    (``ppo.old_logprobs=sampler``)."""
    policy = as_policy(policy)
    logprobs, _, _ = policy.token_stats(
        ref_params, prompt_ids, prompt_mask, tokens, token_mask, dtype
    )
    return logprobs * token_mask.astype(jnp.float32)
