"""Decoder-only causal LMs (Llama / Qwen2 / Qwen3) with a value head, as pure functions.

    params = {"lm": {...}, "value_head": {"kernel": [D, 1], "bias": [1]}}   (all fp32)

    init_params(cfg, rng) -> params
    forward(params, cfg, input_ids [B,T], attention_mask [B,T] | None, *, dtype, dropout_rng=None)
        -> (logits [B,T,V] fp32, values [B,T] fp32)
        logits[:, t] predicts input_ids[:, t + 1]; values[:, t] is the value head on the final
        hidden state at t. dropout_rng=None -> no dropout in the value head.
    logits_and_hidden(params, cfg, input_ids, attention_mask, *, dtype)
        -> (logits [B,T,V] fp32, hidden [B,T,D] in dtype, after the final norm)
    init_cache(cfg, batch, max_len, dtype) -> cache
    prefill(params, cfg, input_ids [B,P], attention_mask [B,P], cache, *, dtype)
        -> (logits [B,V] fp32, values [B] fp32, cache)
        Writes the prompt's keys/values into cache slots 0..P-1 (P <= max_len); the outputs are
        those of each row's last real token (slot P-1 for a left-padded batch).
    decode_step(params, cfg, token_ids [B], step (int32 scalar, may be traced), cache, *, dtype)
        -> (logits [B,V] fp32, values [B] fp32, cache)
        Feeds one token per row, written at cache slot `step` (the first call after prefill uses
        step = P). Works inside jit / lax.while_loop / lax.scan.
    greedy_generate(params, cfg, input_ids, attention_mask, max_new_tokens, *, eos_token_id,
                    pad_token_id, dtype) -> tokens [B, max_new_tokens] int32
    value_head(params, cfg, hidden, dropout_rng=None) -> [...] fp32
    param_logical_axes(params) -> same tree with PartitionSpec(logical names) leaves

Padding: any mix of left and right padding. Each row's RoPE positions count its real tokens
(position = cumsum(mask) - 1, as transformers' generate computes them) and padded keys are
masked, so a left-padded batch gives every row the logits it would get alone. Outputs at padded
query positions are meaningless (finite) numbers.

Cache layout (every leaf has batch on axis 0, so samples can be gathered or repeated with one
tree_map):
    cache = {
        "layers_<i>": {"k": [B, N, K, max_len], "v": [B, N, K, max_len]},  # N = kv heads
        "key_mask": [B, max_len] bool,   # slots holding a real token (prompt mask, then decoded)
        "position": [B] int32,           # RoPE position of the next token of each row
    }
Keys and values are [B,N,K,T] (time minor), the layout XLA's batched matmuls read without a
copy, and the q/k/v/o projections are plain 2-D matmuls on the kernels' row-major storage
(per-head einsums made XLA's CPU backend transpose every attention kernel at every step): the
optimised HLO of a decode loop holds no transpose at all (tests check this on CPU). Each step
writes its key/value with dynamic_update_slice at slot `step` (which must be < max_len: XLA
clamps an index past the end) and attends over the whole preallocated length under key_mask.

Parameter tree of `params["lm"]` (kernels in the `x @ kernel` orientation; H query heads,
N key/value heads, K head_dim, F intermediate size):
    embed_tokens/embedding                          [V, D]     (vocab, embed)
    layers_i/input_layernorm/scale                  [D]        (embed,)
    layers_i/self_attn/q_proj/{kernel [D,H,K], bias [H,K]}     (embed, heads, kv) / (heads, kv)
    layers_i/self_attn/{k,v}_proj/{kernel [D,N,K], bias [N,K]} (embed, kv_heads, kv)
    layers_i/self_attn/o_proj/{kernel [H,K,D], bias [D]}       (heads, kv, embed) / (embed,)
    layers_i/self_attn/{q_norm,k_norm}/scale        [K]        (kv,)           qwen3 only
    layers_i/post_attention_layernorm/scale         [D]
    layers_i/mlp/{gate_proj,up_proj}/kernel         [D, F]     (embed, mlp)
    layers_i/mlp/down_proj/kernel                   [F, D]     (mlp, embed)
    norm/scale                                      [D]
    lm_head/kernel                                  [D, V]     (embed, vocab)  only when untied
Biases exist only where the config has them (qwen2: q/k/v; llama/qwen3: all four with
attention_bias).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec

from ppocoder_jax.errors import UserError
from ppocoder_jax.model.common import logical_axes_by_path
from ppocoder_jax.model.decoder_config import DecoderConfig
from ppocoder_jax.model.modules import MASK_VALUE, Param, ValueHead

Dtype = Any
Params = dict[str, Any]
Cache = dict[str, Any]


# ----------------------------------------------------------------------------- RoPE


def rope_inv_freq(cfg: DecoderConfig) -> np.ndarray:
    """[head_dim / 2] fp32 inverse frequencies, as transformers computes them (llama3 included)."""
    dim = cfg.head_dim
    inv_freq = (1.0 / (cfg.rope_theta ** (np.arange(0, dim, 2, dtype=np.float32) / dim))).astype(
        np.float32
    )
    if cfg.rope_type == "llama3":
        factor = cfg.rope_factor
        low, high = cfg.rope_low_freq_factor, cfg.rope_high_freq_factor
        old_len = cfg.rope_original_max_position_embeddings
        low_freq_wavelen = old_len / low
        high_freq_wavelen = old_len / high
        wavelen = 2 * math.pi / inv_freq
        scaled = np.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        smooth = (old_len / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
        inv_freq = np.where(medium, smoothed, scaled).astype(np.float32)
    return inv_freq


def rope_tables(cfg: DecoderConfig, positions: jax.Array, head_axis: int):
    """cos, sin fp32 for positions [B,T]: [B,1,T,K] (head_axis=-1) or [B,1,K,T] (head_axis=-2)."""
    inv_freq = jnp.asarray(rope_inv_freq(cfg))
    pos = positions.astype(jnp.float32)
    if head_axis == -1:
        freqs = pos[:, :, None] * inv_freq[None, None, :]
    else:  # built directly in [B,K,T]: no transpose of the tables either
        freqs = pos[:, None, :] * inv_freq[None, :, None]
    emb = jnp.concatenate([freqs, freqs], axis=head_axis)[:, None]  # broadcast over heads
    return jnp.cos(emb), jnp.sin(emb)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array, axis: int) -> jax.Array:
    """Rotate-half RoPE along `axis` (the head dimension), in fp32; returns x's dtype."""
    x32 = x.astype(jnp.float32)
    half = x.shape[axis] // 2
    x1 = jax.lax.slice_in_dim(x32, 0, half, axis=axis)
    x2 = jax.lax.slice_in_dim(x32, half, x.shape[axis], axis=axis)
    rotated = jnp.concatenate([-x2, x1], axis=axis)
    return (x32 * cos + rotated * sin).astype(x.dtype)


def positions_from_mask(attention_mask: jax.Array) -> jax.Array:
    """[B,T] -> per-row positions counting real tokens from 0 (pads before the first: 0)."""
    mask = attention_mask.astype(jnp.int32)
    return jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)


# ----------------------------------------------------------------------------- modules


def _normal(stddev: float):
    return nn.initializers.normal(stddev)


class Linear(nn.Module):
    """A kernel (and optional bias) with logical axis names, returned in the compute dtype."""

    kernel_shape: tuple[int, ...]
    kernel_axes: tuple[str | None, ...]
    stddev: float
    bias_shape: tuple[int, ...] | None = None
    bias_axes: tuple[str | None, ...] | None = None

    @nn.compact
    def __call__(self, dtype: Dtype) -> tuple[jax.Array, jax.Array | None]:
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(_normal(self.stddev), self.kernel_axes),
            self.kernel_shape,
            jnp.float32,
        )
        bias = None
        if self.bias_shape is not None:
            bias = self.param(
                "bias",
                nn.with_logical_partitioning(nn.initializers.zeros, self.bias_axes),
                self.bias_shape,
                jnp.float32,
            )
            bias = jnp.asarray(bias, dtype)
        return jnp.asarray(kernel, dtype), bias


class RMSNorm(nn.Module):
    """x * rsqrt(mean(x^2) + eps) * scale over `axis`, statistics and product in fp32."""

    size: int
    epsilon: float
    axes: tuple[str, ...] = ("embed",)

    @nn.compact
    def __call__(self, x: jax.Array, axis: int = -1) -> jax.Array:
        scale = self.param(
            "scale",
            nn.with_logical_partitioning(nn.initializers.ones, self.axes),
            (self.size,),
            jnp.float32,
        )
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(
            jnp.mean(jnp.square(x32), axis=axis, keepdims=True) + self.epsilon
        )
        if axis != -1:
            scale = scale.reshape((self.size,) + (1,) * (-axis - 1))
        return (x32 * scale).astype(x.dtype)


class Attention(nn.Module):
    """Grouped-query attention with RoPE; keys/values in the [B,N,K,T] cache layout."""

    cfg: DecoderConfig
    dtype: Dtype

    def setup(self):
        cfg = self.cfg
        d, h, n, k = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        std = cfg.initializer_range
        qkv_bias = cfg.qkv_bias
        self.q_proj = Linear(
            (d, h, k), ("embed", "heads", "kv"), std, (h, k) if qkv_bias else None, ("heads", "kv")
        )
        kv_axes = ("embed", "kv_heads", "kv")
        kv_bias = (n, k) if qkv_bias else None
        self.k_proj = Linear((d, n, k), kv_axes, std, kv_bias, ("kv_heads", "kv"))
        self.v_proj = Linear((d, n, k), kv_axes, std, kv_bias, ("kv_heads", "kv"))
        self.o_proj = Linear(
            (h, k, d), ("heads", "kv", "embed"), std, (d,) if cfg.o_bias else None, ("embed",)
        )
        if cfg.qk_norm:
            self.q_norm = RMSNorm(k, cfg.rms_norm_eps, ("kv",))
            self.k_norm = RMSNorm(k, cfg.rms_norm_eps, ("kv",))

    def project(self, x: jax.Array, rope_q, rope_k):
        """x [B,T,D] -> q [B,H,T,K], k [B,N,K,T], v [B,N,K,T] (RoPE applied to q and k)."""
        cfg = self.cfg
        b, t, d = x.shape
        h, n, kd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        # Plain [B*T, D] @ [D, heads*K] matmuls on the kernels' row-major storage: with
        # per-head einsums XLA's CPU backend transposed the kernels at every decode step. At
        # T=1 the reorders below only move a size-1 axis (bitcasts, no data movement).
        x2 = x.reshape(b * t, d)

        def proj(linear, heads):
            w, bias = linear(self.dtype)
            y = x2 @ w.reshape(d, heads * kd)
            if bias is not None:
                y = y + bias.reshape(heads * kd)
            return y.reshape(b, t, heads, kd)

        q = proj(self.q_proj, h).transpose(0, 2, 1, 3)  # [B,H,T,K]
        k = proj(self.k_proj, n).transpose(0, 2, 3, 1)  # [B,N,K,T]
        v = proj(self.v_proj, n).transpose(0, 2, 3, 1)
        if cfg.qk_norm:
            q = self.q_norm(q, axis=-1)
            k = self.k_norm(k, axis=-2)
        q = apply_rope(q, *rope_q, axis=-1)
        k = apply_rope(k, *rope_k, axis=-2)
        return q, k, v

    def attend(self, q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
        """q [B,H,Q,K], k/v [B,N,K,S], mask bool [B,1,1,Q|1,S] -> [B,Q,D]."""
        cfg = self.cfg
        b, h, qlen, kd = q.shape
        n, g = cfg.num_key_value_heads, cfg.num_query_groups
        # HF's repeat_kv: kv head j serves query heads j*g .. j*g + g - 1.
        q = q.reshape(b, n, g, qlen, kd)
        k = k.astype(self.dtype)
        v = v.astype(self.dtype)
        scores = jnp.einsum("bngqd,bnds->bngqs", q, k, preferred_element_type=jnp.float32)
        scores = scores * (cfg.head_dim**-0.5)
        scores = jnp.where(mask, scores, MASK_VALUE)
        probs = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
        ctx = jnp.einsum("bngqs,bnds->bngqd", probs, v).reshape(b, h, qlen, kd)
        ctx = ctx.transpose(0, 2, 1, 3).reshape(b * qlen, h * kd)
        wo, bo = self.o_proj(self.dtype)
        out = ctx @ wo.reshape(h * kd, cfg.hidden_size)
        if bo is not None:
            out = out + bo
        return out.reshape(b, qlen, cfg.hidden_size)


class Mlp(nn.Module):
    cfg: DecoderConfig
    dtype: Dtype

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        d, f, std = self.cfg.hidden_size, self.cfg.intermediate_size, self.cfg.initializer_range
        gate, _ = Linear((d, f), ("embed", "mlp"), std, name="gate_proj")(self.dtype)
        up, _ = Linear((d, f), ("embed", "mlp"), std, name="up_proj")(self.dtype)
        down, _ = Linear((f, d), ("mlp", "embed"), std, name="down_proj")(self.dtype)
        return (jax.nn.silu(x @ gate) * (x @ up)) @ down


class DecoderLayer(nn.Module):
    cfg: DecoderConfig
    dtype: Dtype

    def setup(self):
        cfg = self.cfg
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg, self.dtype)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = Mlp(cfg, self.dtype)

    def _mlp_block(self, x):
        return x + self.mlp(self.post_attention_layernorm(x))

    def __call__(self, x, rope_q, rope_k, mask):
        """x [B,T,D], mask [B,1,1,T,T] -> (x, (k, v)) with k/v [B,N,K,T] for a cache."""
        q, k, v = self.self_attn.project(self.input_layernorm(x), rope_q, rope_k)
        x = x + self.self_attn.attend(q, k, v, mask)
        return self._mlp_block(x), (k, v)

    def step(self, x, rope_q, rope_k, mask, layer_cache, step):
        """x [B,1,D]; writes this position's key/value at cache slot `step`."""
        q, k_new, v_new = self.self_attn.project(self.input_layernorm(x), rope_q, rope_k)
        index = (0, 0, 0, step)
        cache_k, cache_v = layer_cache["k"], layer_cache["v"]
        k = jax.lax.dynamic_update_slice(cache_k, k_new.astype(cache_k.dtype), index)
        v = jax.lax.dynamic_update_slice(cache_v, v_new.astype(cache_v.dtype), index)
        x = x + self.self_attn.attend(q, k, v, mask)
        return self._mlp_block(x), {"k": k, "v": v}


class DecoderLM(nn.Module):
    """Embedding, decoder layers, final norm and LM head; hidden states and fp32 logits."""

    cfg: DecoderConfig
    dtype: Dtype = jnp.float32

    def setup(self):
        cfg = self.cfg
        self.embed_tokens = Param(
            (cfg.vocab_size, cfg.hidden_size),
            ("vocab", "embed"),
            stddev=cfg.initializer_range,
            param_name="embedding",
        )
        self.layers = [DecoderLayer(cfg, self.dtype) for _ in range(cfg.num_hidden_layers)]
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        if not cfg.tie_word_embeddings:
            self.lm_head = Linear(
                (cfg.hidden_size, cfg.vocab_size), ("embed", "vocab"), cfg.initializer_range
            )

    def embed(self, ids):
        return jnp.take(self.embed_tokens(jnp.float32), ids, axis=0).astype(self.dtype)

    def logits(self, hidden):
        if self.cfg.tie_word_embeddings:
            out = jnp.einsum("...d,vd->...v", hidden, self.embed_tokens(self.dtype))
        else:
            out = hidden @ self.lm_head(self.dtype)[0]
        return out.astype(jnp.float32)

    def _rope(self, positions):
        return rope_tables(self.cfg, positions, -1), rope_tables(self.cfg, positions, -2)

    def trunk_inputs(self, input_ids, attention_mask):
        """-> (embedded x [B,T,D], rope_q, rope_k, causal+padding mask [B,1,1,T,T])."""
        t = input_ids.shape[1]
        key_mask = attention_mask.astype(bool)
        slots = jnp.arange(t)
        causal = slots[None, :] <= slots[:, None]
        mask = (causal[None] & key_mask[:, None, :])[:, None, None]
        rope_q, rope_k = self._rope(positions_from_mask(attention_mask))
        return self.embed(input_ids), rope_q, rope_k, mask

    def final_norm(self, x):
        return self.norm(x)

    def trunk(self, input_ids, attention_mask):
        """-> (hidden [B,T,D] after the final norm, [(k, v)] per layer)."""
        x, rope_q, rope_k, mask = self.trunk_inputs(input_ids, attention_mask)
        kvs = []
        for layer in self.layers:
            x, kv = layer(x, rope_q, rope_k, mask)
            kvs.append(kv)
        return self.norm(x), kvs

    def __call__(self, input_ids, attention_mask):
        hidden, _ = self.trunk(input_ids, attention_mask)
        return hidden, self.logits(hidden)

    def prefill(self, input_ids, attention_mask, cache):
        b, p = input_ids.shape
        hidden, kvs = self.trunk(input_ids, attention_mask)
        new_cache: Cache = {}
        for i, (k, v) in enumerate(kvs):
            name = f"layers_{i}"
            old = cache[name]
            new_cache[name] = {
                "k": jax.lax.dynamic_update_slice(old["k"], k.astype(old["k"].dtype), (0,) * 4),
                "v": jax.lax.dynamic_update_slice(old["v"], v.astype(old["v"].dtype), (0,) * 4),
            }
        real = attention_mask.astype(bool)
        new_cache["key_mask"] = jax.lax.dynamic_update_slice(cache["key_mask"], real, (0, 0))
        new_cache["position"] = jnp.sum(real, axis=1).astype(jnp.int32)
        # Each row's last real token (slot P-1 when left-padded).
        last = jnp.max(jnp.where(real, jnp.arange(p)[None, :], 0), axis=1)
        hidden = jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]
        return hidden, self.logits(hidden), new_cache

    def decode_step(self, token_ids, step, cache):
        positions = cache["position"][:, None]
        rope_q, rope_k = self._rope(positions)
        key_mask = jax.lax.dynamic_update_slice(
            cache["key_mask"], jnp.ones((token_ids.shape[0], 1), bool), (0, step)
        )
        mask = key_mask[:, None, None, None, :]
        x = self.embed(token_ids[:, None])
        new_cache: Cache = {}
        for i, layer in enumerate(self.layers):
            name = f"layers_{i}"
            x, new_cache[name] = layer.step(x, rope_q, rope_k, mask, cache[name], step)
        new_cache["key_mask"] = key_mask
        new_cache["position"] = cache["position"] + 1
        hidden = self.norm(x)[:, 0]
        return hidden, self.logits(hidden), new_cache


# ----------------------------------------------------------------------------- pure functions


def _lm(cfg: DecoderConfig, dtype) -> DecoderLM:
    return DecoderLM(cfg, jnp.dtype(dtype))


def init_params_boxed(cfg: DecoderConfig, rng: jax.Array) -> Params:
    """Parameters with their `nn.LogicallyPartitioned` boxes (logical axis names)."""
    lm_rng, head_rng = jax.random.split(rng)
    ids = jnp.zeros((1, 1), jnp.int32)
    lm = _lm(cfg, jnp.float32).init(lm_rng, ids, jnp.ones_like(ids))
    head = ValueHead(cfg.hidden_size, cfg.value_head_dropout).init(
        head_rng, jnp.zeros((1, cfg.hidden_size)), deterministic=True
    )
    return {"lm": lm["params"], "value_head": head["params"]}


def param_shapes(cfg: DecoderConfig) -> Params:
    """The params tree with jax.ShapeDtypeStruct leaves (tracing only, no compute)."""
    return nn.meta.unbox(jax.eval_shape(lambda: init_params_boxed(cfg, jax.random.PRNGKey(0))))


def init_params(cfg: DecoderConfig, rng: jax.Array) -> Params:
    """Random init as transformers does it (normal(initializer_range) kernels and embedding,
    zero biases, unit norm scales), zero value head; fp32 jax arrays.

    Drawn on the host with numpy (seeded from `rng`), like `t5.init_params`: the modules'
    flax initializers give the same distributions but compile a large random-init program.
    """
    key = rng
    if jnp.issubdtype(getattr(rng, "dtype", None), jax.dtypes.prng_key):
        key = jax.random.key_data(rng)
    gen = np.random.default_rng([int(x) for x in np.asarray(key).ravel()])

    def draw(path, shape):
        names = tuple(getattr(p, "key", str(p)) for p in path)
        if names[0] == "value_head" or names[-1] == "bias":
            return np.zeros(shape.shape, np.float32)
        if names[-1] == "scale":
            return np.ones(shape.shape, np.float32)
        std = cfg.initializer_range
        return (gen.standard_normal(shape.shape, np.float32) * std).astype(np.float32)

    return jax.device_put(jax.tree_util.tree_map_with_path(draw, param_shapes(cfg)))


def _ones_like_ids(ids) -> jax.Array:
    return jnp.ones(jnp.shape(ids), jnp.int32)


def value_head(
    params: Params, cfg: DecoderConfig, hidden: jax.Array, dropout_rng=None
) -> jax.Array:
    """[..., D] -> [...] fp32; dropout only when dropout_rng is given."""
    rngs = {} if dropout_rng is None else {"dropout": dropout_rng}
    return ValueHead(cfg.hidden_size, cfg.value_head_dropout).apply(
        {"params": params["value_head"]}, hidden, deterministic=dropout_rng is None, rngs=rngs
    )


def logits_and_hidden(
    params: Params, cfg: DecoderConfig, input_ids, attention_mask=None, *, dtype=jnp.float32
):
    """-> (logits [B,T,V] fp32, final hidden [B,T,D] in dtype)."""
    if attention_mask is None:
        attention_mask = _ones_like_ids(input_ids)
    hidden, logits = _lm(cfg, dtype).apply({"params": params["lm"]}, input_ids, attention_mask)
    return logits, hidden


def hidden_states(
    params: Params, cfg: DecoderConfig, input_ids, attention_mask, *, dtype, remat=False
):
    """Final hidden states [B,T,D] (after the last norm), without the LM head.

    remat: the layers run as one `lax.scan` over their stacked parameters, each layer under
    `jax.checkpoint`: the backward pass keeps only each layer's input [B,T,D] and recomputes
    one layer at a time, so its temporaries are one layer's whatever the depth. (`nn.remat` on
    unrolled layers left the scheduling to XLA, and XLA:CPU kept every layer's attention-sized
    buffers live: no saving measured.) Costs one stacked copy of the layer weights per pass."""
    lm = _lm(cfg, dtype)
    variables = {"params": params["lm"]}
    if not remat:
        hidden, _ = lm.apply(variables, input_ids, attention_mask, method="trunk")
        return hidden
    x, rope_q, rope_k, mask = lm.apply(variables, input_ids, attention_mask, method="trunk_inputs")
    layers = [params["lm"][f"layers_{i}"] for i in range(cfg.num_hidden_layers)]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *layers)
    layer = DecoderLayer(cfg, jnp.dtype(dtype))

    @jax.checkpoint
    def one_layer(x, layer_params):
        return layer.apply({"params": layer_params}, x, rope_q, rope_k, mask)[0], None

    x, _ = jax.lax.scan(one_layer, x, stacked)
    return lm.apply(variables, x, method="final_norm")


def forward(
    params: Params,
    cfg: DecoderConfig,
    input_ids,
    attention_mask=None,
    *,
    dtype=jnp.float32,
    dropout_rng=None,
):
    """-> (logits [B,T,V] fp32, values [B,T] fp32)."""
    logits, hidden = logits_and_hidden(params, cfg, input_ids, attention_mask, dtype=dtype)
    return logits, value_head(params, cfg, hidden, dropout_rng)


def init_cache(cfg: DecoderConfig, batch: int, max_len: int, dtype=jnp.float32) -> Cache:
    shape = (batch, cfg.num_key_value_heads, cfg.head_dim, max_len)
    cache: Cache = {
        f"layers_{i}": {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}
        for i in range(cfg.num_hidden_layers)
    }
    cache["key_mask"] = jnp.zeros((batch, max_len), bool)
    cache["position"] = jnp.zeros((batch,), jnp.int32)
    return cache


def cache_length(cache: Cache) -> int:
    return int(cache["key_mask"].shape[1])


def prefill(
    params: Params,
    cfg: DecoderConfig,
    input_ids,
    attention_mask,
    cache: Cache,
    *,
    dtype=jnp.float32,
):
    if attention_mask is None:
        attention_mask = _ones_like_ids(input_ids)
    if input_ids.shape[1] > cache_length(cache):
        raise UserError(
            f"prompt length {input_ids.shape[1]} exceeds the cache length {cache_length(cache)}"
        )
    hidden, logits, new_cache = _lm(cfg, dtype).apply(
        {"params": params["lm"]}, input_ids, attention_mask, cache, method="prefill"
    )
    return logits, value_head(params, cfg, hidden), new_cache


def decode_step(
    params: Params,
    cfg: DecoderConfig,
    token_ids,
    step,
    cache: Cache,
    *,
    dtype=jnp.float32,
):
    step = jnp.asarray(step, jnp.int32)
    hidden, logits, new_cache = _lm(cfg, dtype).apply(
        {"params": params["lm"]}, token_ids, step, cache, method="decode_step"
    )
    return logits, value_head(params, cfg, hidden), new_cache


def greedy_generate(
    params: Params,
    cfg: DecoderConfig,
    input_ids,
    attention_mask,
    max_new_tokens: int,
    *,
    eos_token_id: int | None = None,
    pad_token_id: int = 0,
    dtype=jnp.float32,
):
    """Argmax decoding of `max_new_tokens` tokens after a (left-padded) prompt batch.

    As transformers' generate(do_sample=False): after a row emits eos_token_id it emits
    pad_token_id. Returns the new tokens [B, max_new_tokens] int32. Jittable (cfg,
    max_new_tokens, eos/pad ids and dtype static).
    """
    b, p = input_ids.shape
    cache = init_cache(cfg, b, p + max_new_tokens, dtype)
    logits, _, cache = prefill(params, cfg, input_ids, attention_mask, cache, dtype=dtype)
    tokens = jnp.full((b, max_new_tokens), pad_token_id, jnp.int32)

    def choose(logits, done):
        tok = jnp.argmax(logits, axis=-1).astype(jnp.int32)
        tok = jnp.where(done, pad_token_id, tok)
        if eos_token_id is not None:
            done = done | (tok == eos_token_id)
        return tok, done

    first, done = choose(logits, jnp.zeros((b,), bool))
    tokens = tokens.at[:, 0].set(first)

    def body(state):
        i, tokens, done, cache = state
        logits, _, cache = decode_step(params, cfg, tokens[:, i - 1], p + i - 1, cache, dtype=dtype)
        tok, done = choose(logits, done)
        return i + 1, tokens.at[:, i].set(tok), done, cache

    _, tokens, _, _ = jax.lax.while_loop(
        lambda s: s[0] < max_new_tokens, body, (jnp.int32(1), tokens, done, cache)
    )
    return tokens


# ----------------------------------------------------------------------------- logical axes

_AXES_BY_MODULE = {
    "q_proj": {"kernel": ("embed", "heads", "kv"), "bias": ("heads", "kv")},
    "k_proj": {"kernel": ("embed", "kv_heads", "kv"), "bias": ("kv_heads", "kv")},
    "v_proj": {"kernel": ("embed", "kv_heads", "kv"), "bias": ("kv_heads", "kv")},
    "o_proj": {"kernel": ("heads", "kv", "embed"), "bias": ("embed",)},
    "gate_proj": {"kernel": ("embed", "mlp")},
    "up_proj": {"kernel": ("embed", "mlp")},
    "down_proj": {"kernel": ("mlp", "embed")},
    "lm_head": {"kernel": ("embed", "vocab")},
    "q_norm": {"scale": ("kv",)},
    "k_norm": {"scale": ("kv",)},
    "input_layernorm": {"scale": ("embed",)},
    "post_attention_layernorm": {"scale": ("embed",)},
    "norm": {"scale": ("embed",)},
}
_VALUE_HEAD_AXES = {"kernel": ("embed", None), "bias": (None,)}


def _axes_for(path: tuple[str, ...]) -> PartitionSpec:
    leaf, parent = path[-1], path[-2] if len(path) > 1 else ""
    if path[0] == "value_head":
        names = _VALUE_HEAD_AXES[leaf]
    elif leaf == "embedding":
        names = ("vocab", "embed")
    elif parent in _AXES_BY_MODULE and leaf in _AXES_BY_MODULE[parent]:
        names = _AXES_BY_MODULE[parent][leaf]
    else:
        raise KeyError(f"no logical axes for parameter {'/'.join(path)}")
    return PartitionSpec(*names)


def param_logical_axes(params: Params) -> Any:
    """Same tree as `params`, each leaf a PartitionSpec of logical axis names."""
    return logical_axes_by_path(params, _axes_for)
