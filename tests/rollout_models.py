"""Tiny random T5 models for the rollout tests: HF directories (for transformers) + our params.

The weights of `make_tiny_hf_t5` are scaled up (all matrices except the layer-norm scales and
relative-position tables) so that greedy decoding does not repeat one token forever and
sampled distributions are far from uniform; vocabularies are small so `</s>` shows up.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
from tiny_t5 import make_tiny_hf_t5

from ppocoder_jax.model.hf_io import load_hf_t5


def scale_weights(model_dir: Path, scale: float) -> None:
    from safetensors.numpy import load_file, save_file

    path = Path(model_dir) / "model.safetensors"
    tensors = load_file(str(path))
    out = {
        k: (v * scale if "layer_norm" not in k and "relative_attention_bias" not in k else v)
        for k, v in tensors.items()
    }
    save_file(out, str(path), {"format": "pt"})


def make_model(tmp_path, scale: float = 3.0, value_seed: int = 0, **spec):
    """-> (hf_dir, params with a random value head, cfg)."""
    path = make_tiny_hf_t5(tmp_path, with_tokenizer=spec.pop("with_tokenizer", False), **spec)
    scale_weights(path, scale)
    t5_params, cfg = load_hf_t5(path)
    rng = np.random.default_rng(value_seed)
    head = {
        "kernel": jnp.asarray(rng.normal(size=(cfg.d_model, 1)) * 0.3, jnp.float32),
        "bias": jnp.asarray([0.25], jnp.float32),
    }
    return path, {"t5": t5_params, "value_head": head}, cfg


def padded_prompts(lengths, vocab_size: int, seed: int = 0):
    """Right-padded random prompts (ids >= 3, no special tokens) of the given lengths."""
    rng = np.random.default_rng(seed)
    width = max(lengths)
    mask = (np.arange(width)[None] < np.asarray(lengths)[:, None]).astype(np.int32)
    ids = (rng.integers(3, vocab_size, (len(lengths), width)) * mask).astype(np.int32)
    return ids, mask


def ranks_of(logits, tokens):
    """Rank of each token among the logits (0 = most likely): how many are strictly larger."""
    picked = np.take_along_axis(logits, tokens[..., None], axis=-1)
    return (logits > picked).sum(-1)


def mass_before(probs, tokens):
    """Probability mass of the tokens strictly more likely than each chosen token."""
    picked = np.take_along_axis(probs, tokens[..., None], axis=-1)
    return np.where(probs > picked, probs, 0).sum(-1)
