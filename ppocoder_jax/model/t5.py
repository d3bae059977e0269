"""The T5 / CodeT5 policy + value head as pure functions of a plain (unboxed) params pytree.

    params = {"t5": {...}, "value_head": {"kernel": [D, 1], "bias": [1]}}   (all fp32)

    init_params(cfg, rng) -> params
    encode(params, cfg, input_ids [B,S], attention_mask [B,S], *, dtype) -> enc [B,S,D] (dtype)
    forward(params, cfg, input_ids, attention_mask, decoder_input_ids [B,T],
            decoder_attention_mask [B,T], *, dtype, dropout_rng=None)
        -> (logits [B,T,V] fp32, values [B,T] fp32)
        values[:, t] is the value head on the final decoder state at position t (the state that
        predicts the token after decoder_input_ids[:, t]); dropout_rng=None -> no dropout.
    score(params, cfg, input_ids, attention_mask, target_ids [B,T], target_mask [B,T], *, dtype)
        -> log p(target_ids[:, t] | ...) [B,T] fp32 (0 where target_mask == 0). The decoder input
        is shift_right(target_ids) (decoder_start_token_id first); masks are right-padded.
    init_cache(cfg, batch, max_len, dtype, *, params=None, enc=None) -> cache
    decode_step(params, cfg, token_ids [B], step (int32 scalar, may be traced), cache,
                enc [B,S,D], enc_mask [B,S], *, dtype) -> (logits [B,V] fp32, values [B] fp32, cache)
        token_ids is the decoder input at position `step` (step 0: decoder_start_token_id); the
        outputs equal forward(...)[:, step]. Works inside jit / lax.while_loop / lax.scan.
    param_logical_axes(params) -> same tree with PartitionSpec(logical names) leaves

Cache layout (every leaf has batch on axis 0, so beams/samples can be gathered or repeated
with one tree_map):
    cache = {"layers_<i>": {                     # one entry per decoder layer
        "self_k": [B, H, K, max_len], "self_v": [B, H, K, max_len],   # written at `step`
        "cross_k": [B, H, K, S], "cross_v": [B, H, K, S],  # only when init_cache got params+enc
    }}
Each step writes its key/value with dynamic_update_slice and attends over the whole
preallocated length with a mask of positions <= step. Pass `params` and `enc` to init_cache
so the cross-attention keys/values are projected once; without them decode_step projects the
encoder output at every step (same numbers, slower).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec

from ppocoder_jax.model.common import logical_axes_by_path, token_logprobs
from ppocoder_jax.model.modules import T5, ValueHead
from ppocoder_jax.model.t5_config import T5Config

Params = dict[str, Any]
Cache = dict[str, dict[str, jax.Array]]


def _t5(cfg: T5Config, dtype, remat: bool = False) -> T5:
    return T5(cfg, jnp.dtype(dtype), remat)


def _ones_like_ids(ids: jax.Array) -> jax.Array:
    return jnp.ones(ids.shape, jnp.int32)


def init_params_boxed(cfg: T5Config, rng: jax.Array) -> Params:
    """Parameters with their `nn.LogicallyPartitioned` boxes (logical axis names)."""
    t5_rng, head_rng = jax.random.split(rng)
    ids = jnp.zeros((1, 1), jnp.int32)
    t5 = _t5(cfg, jnp.float32).init(t5_rng, ids, _ones_like_ids(ids), ids, _ones_like_ids(ids))
    head = ValueHead(cfg.d_model, cfg.value_head_dropout).init(
        head_rng, jnp.zeros((1, cfg.d_model)), deterministic=True
    )
    return {"t5": t5["params"], "value_head": head["params"]}


def param_shapes(cfg: T5Config) -> Params:
    """The params tree with jax.ShapeDtypeStruct leaves (tracing only, no compute)."""
    return nn.meta.unbox(jax.eval_shape(lambda: init_params_boxed(cfg, jax.random.PRNGKey(0))))


def init_std(cfg: T5Config, path: tuple[str, ...]) -> float:
    """Init stddev of one parameter: the scales the modules' initializers use (HF/t5x T5)."""
    d, h, k, f = cfg.d_model, cfg.num_heads, cfg.d_kv, cfg.d_ff
    leaf, parent = path[-1], path[-2]
    by_module = {
        "query": (d * k) ** -0.5,
        "key": d**-0.5,
        "value": d**-0.5,
        "out": (h * k) ** -0.5,
        "wi": d**-0.5,
        "wi_0": d**-0.5,
        "wi_1": d**-0.5,
        "wo": f**-0.5,
        "lm_head": d**-0.5,
    }
    if leaf == "embedding":
        return 1.0
    if leaf == "rel_embedding":
        return d**-0.5
    return by_module[parent]


def init_params(cfg: T5Config, rng: jax.Array) -> Params:
    """Random T5 init (HF/t5x scales), layer norm scales 1, zero value head; fp32 jax arrays.

    Drawn on the host with numpy (seeded from `rng`): the same distributions as the modules'
    flax initializers (`init_params_boxed`), without compiling a large random-init program
    (seconds of XLA compile per config on CPU).
    """
    key = rng
    if jnp.issubdtype(getattr(rng, "dtype", None), jax.dtypes.prng_key):
        key = jax.random.key_data(rng)
    gen = np.random.default_rng([int(x) for x in np.asarray(key).ravel()])

    def draw(path, shape):
        names = tuple(getattr(p, "key", str(p)) for p in path)
        if names[0] == "value_head":
            return np.zeros(shape.shape, np.float32)
        if names[-1] == "scale":
            return np.ones(shape.shape, np.float32)
        std = init_std(cfg, names)
        return (gen.standard_normal(shape.shape, np.float32) * std).astype(np.float32)

    return jax.device_put(jax.tree_util.tree_map_with_path(draw, param_shapes(cfg)))


def encode(params: Params, cfg: T5Config, input_ids, attention_mask, *, dtype=jnp.float32):
    return _t5(cfg, dtype).apply(
        {"params": params["t5"]}, input_ids, attention_mask, method="encode"
    )


def value_head(params: Params, cfg: T5Config, hidden: jax.Array, dropout_rng=None) -> jax.Array:
    """[..., D] -> [...] fp32; dropout only when dropout_rng is given."""
    rngs = {} if dropout_rng is None else {"dropout": dropout_rng}
    return ValueHead(cfg.d_model, cfg.value_head_dropout).apply(
        {"params": params["value_head"]}, hidden, deterministic=dropout_rng is None, rngs=rngs
    )


def decoder_hidden(
    params: Params,
    cfg: T5Config,
    input_ids,
    attention_mask,
    decoder_input_ids,
    decoder_attention_mask,
    *,
    dtype=jnp.float32,
    remat: bool = False,
):
    """The decoder's final hidden states [B, T, D] in dtype (before any output scaling);
    remat: layers recompute their activations in the backward pass."""
    return _t5(cfg, dtype, remat).apply(
        {"params": params["t5"]},
        input_ids,
        attention_mask,
        decoder_input_ids,
        decoder_attention_mask,
        method="hidden",
    )


def forward(
    params: Params,
    cfg: T5Config,
    input_ids,
    attention_mask,
    decoder_input_ids,
    decoder_attention_mask=None,
    *,
    dtype=jnp.float32,
    dropout_rng=None,
):
    if attention_mask is None:
        attention_mask = _ones_like_ids(input_ids)
    if decoder_attention_mask is None:
        decoder_attention_mask = _ones_like_ids(decoder_input_ids)
    hidden, logits = _t5(cfg, dtype).apply(
        {"params": params["t5"]},
        input_ids,
        attention_mask,
        decoder_input_ids,
        decoder_attention_mask,
    )
    return logits, value_head(params, cfg, hidden, dropout_rng)


def shift_right(ids: jax.Array, start_id) -> jax.Array:
    """[start, ids[:, :-1]]: the decoder input that precedes each target token."""
    start = jnp.full((ids.shape[0], 1), start_id, ids.dtype)
    return jnp.concatenate([start, ids[:, :-1]], axis=1)


def score(
    params: Params,
    cfg: T5Config,
    input_ids,
    attention_mask,
    target_ids,
    target_mask,
    *,
    dtype=jnp.float32,
):
    decoder_input_ids = shift_right(target_ids, cfg.decoder_start_token_id)
    logits, _ = forward(
        params, cfg, input_ids, attention_mask, decoder_input_ids, target_mask, dtype=dtype
    )
    return token_logprobs(logits, target_ids) * target_mask.astype(jnp.float32)


def init_cache(
    cfg: T5Config,
    batch: int,
    max_len: int,
    dtype=jnp.float32,
    *,
    params: Params | None = None,
    enc: jax.Array | None = None,
) -> Cache:
    shape = (batch, cfg.num_heads, cfg.d_kv, max_len)
    cache = {
        f"layers_{i}": {"self_k": jnp.zeros(shape, dtype), "self_v": jnp.zeros(shape, dtype)}
        for i in range(cfg.num_decoder_layers)
    }
    if (params is None) != (enc is None):
        raise ValueError("init_cache: pass both params and enc (or neither)")
    if enc is not None:
        cross = _t5(cfg, dtype).apply({"params": params["t5"]}, enc, method="cross_kv")
        for i, (k, v) in enumerate(cross):
            cache[f"layers_{i}"].update(cross_k=k.astype(dtype), cross_v=v.astype(dtype))
    return cache


def decode_step(
    params: Params,
    cfg: T5Config,
    token_ids,
    step,
    cache: Cache,
    enc,
    enc_mask,
    *,
    dtype=jnp.float32,
):
    step = jnp.asarray(step, jnp.int32)
    hidden, logits, new_cache = _t5(cfg, dtype).apply(
        {"params": params["t5"]}, token_ids, step, cache, enc, enc_mask, method="decode_step"
    )
    return logits, value_head(params, cfg, hidden), new_cache


# Logical axis names by parameter name (the modules declare the same names with
# nn.with_logical_partitioning; tests check the two agree).
_AXES_BY_LEAF = {
    "embedding": ("vocab", "embed"),
    "rel_embedding": ("heads", "relpos_buckets"),
    "scale": ("embed",),
}
_AXES_BY_MODULE = {
    "query": ("embed", "heads", "kv"),
    "key": ("embed", "heads", "kv"),
    "value": ("embed", "heads", "kv"),
    "out": ("heads", "kv", "embed"),
    "wi": ("embed", "mlp"),
    "wi_0": ("embed", "mlp"),
    "wi_1": ("embed", "mlp"),
    "wo": ("mlp", "embed"),
    "lm_head": ("embed", "vocab"),
}
_VALUE_HEAD_AXES = {"kernel": ("embed", None), "bias": (None,)}


def _axes_for(path: tuple[str, ...]) -> PartitionSpec:
    leaf, parent = path[-1], path[-2] if len(path) > 1 else ""
    if path[0] == "value_head":
        names = _VALUE_HEAD_AXES[leaf]
    elif leaf in _AXES_BY_LEAF:
        names = _AXES_BY_LEAF[leaf]
    elif leaf == "kernel" and parent in _AXES_BY_MODULE:
        names = _AXES_BY_MODULE[parent]
    else:
        raise KeyError(f"no logical axes for parameter {'/'.join(path)}")
    return PartitionSpec(*names)


def param_logical_axes(params: Params) -> Any:
    """Same tree as `params`, each leaf a PartitionSpec of logical axis names."""
    return logical_axes_by_path(params, _axes_for)
