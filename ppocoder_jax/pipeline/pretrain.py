"""The embedded pretrained starting model (`model.init: pretrained`, `ppocoder pretrain`).

The tiny model of `model.tiny_*` pretrained on the standard library (data/pretrain_corpus.py):
span corruption for T5 (the embedded tokenizer plus CodeT5's `<extra_id_N>` sentinels), causal
LM for decoder-only. Built once per recipe and cached beside the embedded tokenizer, in a
directory named by a hash of everything that decides its weights (VERSION, family, dimensions,
`pretrain.*`, the exclusion settings, Python's version and standard library); a build writes
`pretrain_info.json` (wall time, corpus counts, losses) next to the model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from ppocoder_jax.config import Config
from ppocoder_jax.errors import UserError

VERSION = 1  # bump when the corpus rule, the objectives or the loop change
INFO_FILE = "pretrain_info.json"
BUCKETS = (8, 32, 64, 128, 256)


def check_pretrained_config(cfg: Config) -> None:
    m = cfg.model
    if m.init != "pretrained" or m.path:  # model.path, when given, is where a run starts
        return
    if m.tokenizer:
        raise UserError(
            "model.init=pretrained brings its own tokenizer: leave model.tokenizer empty"
        )
    if (
        cfg.data.task == "completion_stdlib"
        and cfg.data.max_source_length > cfg.pretrain.max_length
    ):
        raise UserError(
            f"data.max_source_length {cfg.data.max_source_length} > pretrain.max_length "
            f"{cfg.pretrain.max_length}: the pretraining corpus leaves out only the functions "
            "whose completion prompt fits pretrain.max_length, so longer prompts would have been "
            "pretrained on; raise pretrain.max_length"
        )


def _key(cfg: Config, family: str) -> str:
    from ppocoder_jax.data.embedded_tokenizer import VERSION as TOKENIZER_VERSION
    from ppocoder_jax.data.stdlib_completion import stdlib_root

    m = cfg.model
    dims = (m.tiny_d_model, m.tiny_d_ff, m.tiny_num_layers, m.tiny_num_decoder_layers,
            m.tiny_num_heads, m.tiny_d_kv, m.tiny_num_kv_heads)  # fmt: skip
    recipe = (
        VERSION, TOKENIZER_VERSION, family, dims, dataclasses.astuple(cfg.pretrain),
        cfg.data.completion_tokens, cfg.data.completion_min_tokens, sys.version,
        str(stdlib_root()),
    )  # fmt: skip
    return hashlib.sha256(repr(recipe).encode()).hexdigest()[:16]


def pretrained_dir(cfg: Config, cache_dir: str | os.PathLike | None = None) -> Path:
    from ppocoder_jax.data.io import default_cache_dir

    family = cfg.model.family or "t5"
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    return root / f"pretrained-v{VERSION}-{family}-{_key(cfg, family)}"


def ensure_pretrained(cfg: Config, cache_dir=None, log=print) -> Path:
    """The cached pretrained model's directory, built first when absent."""
    path = pretrained_dir(cfg, cache_dir)
    if (path / INFO_FILE).is_file():
        return path
    log(f"pretrain: building the embedded pretrained model (once) in {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=path.parent))  # same filesystem
    try:
        build_pretrained(cfg, tmp, log=log)
        try:
            os.replace(tmp, path)  # atomic
        except OSError:
            if not (path / INFO_FILE).is_file():  # only a concurrent builder's win is fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def pretraining_tokenizer(family: str, max_length: int, pretrain_cfg):
    """The embedded tokenizer; for T5 with the sentinels span corruption needs (ids after it)."""
    from ppocoder_jax.data.embedded_tokenizer import embedded_tokenizer
    from ppocoder_jax.pipeline.pretrain_objectives import SENTINEL_FORMAT, max_spans

    tokenizer = embedded_tokenizer()
    if family == "t5":
        n = max_spans(max_length, pretrain_cfg.noise_density, pretrain_cfg.mean_span_length)
        n = max(32, n)
        tokenizer.add_special_tokens(
            {"additional_special_tokens": [SENTINEL_FORMAT.format(i) for i in range(n)]}
        )
    return tokenizer


def build_pretrained(cfg: Config, out_dir: Path, log=print) -> dict:
    """Pretrain the tiny model of cfg.model and write it (with its tokenizer) to out_dir."""
    from ppocoder_jax.data.pretrain_corpus import pretraining_windows, validation_windows
    from ppocoder_jax.model import save_model
    from ppocoder_jax.model.families import FAMILIES

    family = cfg.model.family or "t5"
    p = cfg.pretrain
    start = time.time()
    tokenizer = pretraining_tokenizer(family, p.max_length, p)
    fam = FAMILIES[family]
    model_cfg = fam.tiny_config(cfg.model, tokenizer)
    params = jax.device_get(fam.init_params(model_cfg, jax.random.PRNGKey(p.seed)))
    windows, counts = pretraining_windows(tokenizer, cfg.data, p.max_length)
    if not windows:
        raise UserError("pretrain: the standard library left no functions to pretrain on")
    val = validation_windows(tokenizer, p.max_length)
    log(
        f"pretrain: {counts['functions']} functions ({counts['tokens']} tokens in "
        f"{counts['windows']} windows); left out {counts['excluded_completion']} that the "
        f"completion task could use and {counts['excluded_eval_modules']} of evaluation modules"
    )
    params, losses = run_pretraining(cfg, params, model_cfg, tokenizer, windows, val, log=log)
    wall = time.time() - start
    info = {
        "version": VERSION,
        "family": family,
        "wall_s": round(wall, 1),
        "steps": p.steps,
        "corpus": counts,
        "objective": "span_corruption" if family == "t5" else "causal_lm",
        "pretrain": dataclasses.asdict(p),
        **losses,
    }
    save_model(out_dir, params, model_cfg, tokenizer)
    (out_dir / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n")
    log(f"pretrain: done in {wall / 60:.1f} min; held-out loss {losses['val_loss']:.3f}")
    return info


class _Examples:
    """Windows -> (source, target) pairs by the family's objective, drawn from (seed, step)."""

    def __init__(self, policy, tokenizer, family: str, p):
        from ppocoder_jax.pipeline.pretrain_objectives import SENTINEL_FORMAT

        self.p, self.family = p, family
        self.bos, self.eos = tokenizer.bos_token_id, policy.eos_id
        self.pad_id, self.pad_side = policy.pad_id, policy.pad_side
        if family == "t5":
            self.sentinels = []
            while True:  # <extra_id_0>, <extra_id_1>, ... as many as the tokenizer has
                tid = tokenizer.convert_tokens_to_ids(SENTINEL_FORMAT.format(len(self.sentinels)))
                if tid is None or tid == tokenizer.unk_token_id:
                    break
                self.sentinels.append(tid)

    def pair(self, window, rng):
        from ppocoder_jax.pipeline.pretrain_objectives import causal_lm, span_corruption

        ids, ends = window
        if self.family == "t5":
            return span_corruption(
                ids, self.sentinels, self.p.noise_density, self.p.mean_span_length, rng,
                bos=self.bos, eos=self.eos,
            )  # fmt: skip
        return causal_lm(ids, bos=self.bos, eos=self.eos, ends=ends)

    def batch(self, windows, rng):
        from ppocoder_jax.rollout.bucketed_sampler import bucket_length, pad_prompts

        pairs = [self.pair(w, rng) for w in windows]
        cap = self.p.max_length + 2
        src_len = bucket_length(max(len(s) for s, _ in pairs), BUCKETS, cap)
        tgt_len = bucket_length(max(len(t) for _, t in pairs), BUCKETS, cap)
        src = pad_prompts([s for s, _ in pairs], src_len, self.pad_id, self.pad_side)
        tgt = pad_prompts([t for _, t in pairs], tgt_len, self.pad_id, "right")
        return (*src, *tgt)


def run_pretraining(cfg: Config, params, model_cfg, tokenizer, windows, val, log=print):
    """cfg.pretrain.steps steps of the family's objective -> (params, losses)."""
    from ppocoder_jax.model.common import compute_dtype
    from ppocoder_jax.model.families import as_policy, family_of
    from ppocoder_jax.pipeline.sft import (
        BatchDraws,
        sft_eval_loss,
        sft_step,
        warmup_cosine_adamw,
    )

    p = cfg.pretrain
    policy = as_policy(model_cfg, remat=cfg.model.remat)
    examples = _Examples(policy, tokenizer, family_of(model_cfg).name, p)
    dtype = compute_dtype(cfg)
    optimizer = warmup_cosine_adamw(p.steps, p.warmup_steps, p.learning_rate)
    opt_state = optimizer.init(params)
    draws = BatchDraws(len(windows), min(p.batch_size, len(windows)), np.random.default_rng(p.seed))
    start, loss = time.time(), float("nan")
    for step in range(p.steps):
        rng = np.random.default_rng([p.seed, step])
        batch = examples.batch([windows[i] for i in draws.next()], rng)
        params, opt_state, loss = sft_step(
            params, opt_state, batch, policy=policy, optimizer=optimizer, dtype=dtype,
            label_smoothing=0.0,
        )  # fmt: skip
        if step % 100 == 0 or step == p.steps - 1:
            loss = float(loss)
            log(f"pretrain: step {step}/{p.steps} loss {loss:.3f} ({time.time() - start:.0f} s)")
    val_total, rng = 0.0, np.random.default_rng([p.seed, 10**9])
    for lo in range(0, len(val), p.batch_size):
        chunk = val[lo : lo + p.batch_size]
        val_total += float(
            sft_eval_loss(params, examples.batch(chunk, rng), policy=policy, dtype=dtype)
        ) * len(chunk)
    return params, {"train_loss": float(loss), "val_loss": val_total / max(len(val), 1)}
