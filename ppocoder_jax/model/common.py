"""Helpers every model family and the code above them share; imports nothing of the model.

token_logprobs(logits [..., V], ids [...]) -> log-probs [...] fp32
logical_axes_by_path(params, axes_for) -> same tree, leaf = axes_for(path names)
compute_dtype(cfg) -> jnp.bfloat16 | jnp.float32 (from cfg.model.compute_dtype)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

Params = dict[str, Any]


def token_logprobs(logits: jax.Array, ids: jax.Array) -> jax.Array:
    """log_softmax(logits)[..., ids] in fp32: the log-prob of each given token under the full
    (temperature 1) softmax: the sampler's per-token log-probs and `t5.score`. (Teacher-forced
    training passes compute it fused with the LM head, model/lm_head.py; ppo/kernels.py, which
    imports nothing of the model, holds the same two lines as `ppocoder_jax.ppo.token_logprobs`.)"""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return jnp.take_along_axis(logp, ids[..., None].astype(jnp.int32), axis=-1)[..., 0]


def logical_axes_by_path(params: Params, axes_for) -> Any:
    """Same tree as `params`, each leaf `axes_for(path names)`: a family's logical axes."""

    def one(path, _leaf):
        return axes_for(tuple(getattr(k, "key", str(k)) for k in path))

    return jax.tree_util.tree_map_with_path(one, params)


def compute_dtype(cfg) -> Any:
    """The dtype the model computes in, from a job config's `model.compute_dtype`."""
    return jnp.bfloat16 if cfg.model.compute_dtype == "bfloat16" else jnp.float32
