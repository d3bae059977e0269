"""Flax linen modules of the T5 / CodeT5 encoder-decoder (t5x layout, HF numerics).

Use the pure functions in `ppocoder_jax.model.t5` rather than these modules directly.

Parameter tree of `T5` (kernels are stored in the `x @ kernel` orientation):
    token_embedder/embedding            [V, D]      (vocab, embed)
    encoder/relpos_bias/rel_embedding   [H, NB]     (heads, relpos_buckets)   shared by all layers
    encoder/layers_i/pre_attention_layer_norm/scale           [D]  (embed,)
    encoder/layers_i/attention/{query,key,value}/kernel       [D, H, K] (embed, heads, kv)
    encoder/layers_i/attention/out/kernel                     [H, K, D] (heads, kv, embed)
    encoder/layers_i/pre_mlp_layer_norm/scale                 [D]
    encoder/layers_i/mlp/{wi | wi_0, wi_1}/kernel              [D, F]    (embed, mlp)
    encoder/layers_i/mlp/wo/kernel                             [F, D]    (mlp, embed)
    encoder/encoder_norm/scale
    decoder/relpos_bias/rel_embedding
    decoder/layers_i/{pre_self_attention_layer_norm, self_attention,
                      pre_cross_attention_layer_norm, encoder_decoder_attention,
                      pre_mlp_layer_norm, mlp}
    decoder/decoder_norm/scale
    lm_head/kernel                       [D, V]      (embed, vocab)    only when untied
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ppocoder_jax.model.t5_config import T5Config

Dtype = Any
# Finite "minus infinity" for masked attention scores (fully masked rows stay NaN-free).
MASK_VALUE = -1e10


class Param(nn.Module):
    """One parameter with logical axis names, returned cast to the compute dtype."""

    shape: tuple[int, ...]
    axes: tuple[str | None, ...]
    stddev: float = 1.0
    param_name: str = "kernel"

    @nn.compact
    def __call__(self, dtype: Dtype) -> jax.Array:
        init = nn.with_logical_partitioning(nn.initializers.normal(self.stddev), self.axes)
        value = self.param(self.param_name, init, self.shape, jnp.float32)
        return jnp.asarray(value, dtype)


class RMSNorm(nn.Module):
    """T5 layer norm: scale only, no mean subtraction, no bias; statistics in fp32."""

    d_model: int
    epsilon: float
    dtype: Dtype

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param(
            "scale",
            nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
            (self.d_model,),
            jnp.float32,
        )
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.epsilon)
        return (x32 * scale).astype(self.dtype)


def relative_position_bucket(
    relative_position: jax.Array, bidirectional: bool, num_buckets: int, max_distance: int
) -> jax.Array:
    """HF / Mesh-TensorFlow bucketing of (key position - query position)."""
    buckets = jnp.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative_position > 0).astype(jnp.int32) * num_buckets
        n = jnp.abs(relative_position)
    else:
        n = -jnp.minimum(relative_position, 0)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    # Only used where n >= max_exact; the maximum keeps log() finite elsewhere.
    n_large = jnp.maximum(n, max_exact).astype(jnp.float32)
    if_large = max_exact + (
        jnp.log(n_large / max_exact)
        / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).astype(jnp.int32)
    if_large = jnp.minimum(if_large, num_buckets - 1)
    return buckets + jnp.where(is_small, n, if_large)


class RelativePositionBias(nn.Module):
    cfg: T5Config
    bidirectional: bool

    @nn.compact
    def __call__(self, query_pos: jax.Array, key_pos: jax.Array) -> jax.Array:
        """query_pos [Q], key_pos [K] int32 -> bias [1, H, Q, K] fp32."""
        cfg = self.cfg
        table = self.param(
            "rel_embedding",
            nn.with_logical_partitioning(
                nn.initializers.normal(cfg.d_model**-0.5), ("heads", "relpos_buckets")
            ),
            (cfg.num_heads, cfg.relative_attention_num_buckets),
            jnp.float32,
        )
        buckets = relative_position_bucket(
            key_pos[None, :] - query_pos[:, None],
            self.bidirectional,
            cfg.relative_attention_num_buckets,
            cfg.relative_attention_max_distance,
        )
        return jnp.take(table, buckets, axis=1)[None]


class Attention(nn.Module):
    """Multi-head attention without the 1/sqrt(d) scaling (T5 folds it into the init)."""

    cfg: T5Config
    dtype: Dtype

    def setup(self):
        d, h, k = self.cfg.d_model, self.cfg.num_heads, self.cfg.d_kv
        in_axes = ("embed", "heads", "kv")
        self.query = Param((d, h, k), in_axes, stddev=(d * k) ** -0.5)
        self.key = Param((d, h, k), in_axes, stddev=d**-0.5)
        self.value = Param((d, h, k), in_axes, stddev=d**-0.5)
        self.out = Param((h, k, d), ("heads", "kv", "embed"), stddev=(h * k) ** -0.5)

    # Keys and values are kept as [B,H,K,T] (time minor): the layout XLA's batched matmuls
    # consume without a copy, so the decode loop reads the KV cache in place. With [B,T,H,K]
    # XLA transposed the whole cache of every layer at every decode step. The projections are
    # plain 2-D matmuls on the kernels' row-major storage: as 3-D einsums, XLA's CPU backend
    # transposed every attention kernel at every decode step.
    def _project(self, x: jax.Array, param: Param) -> jax.Array:
        """x [B,T,D] -> [B,T,H,K]."""
        b, t, d = x.shape
        h, k = self.cfg.num_heads, self.cfg.d_kv
        return (x.reshape(b * t, d) @ param(self.dtype).reshape(d, h * k)).reshape(b, t, h, k)

    def project_q(self, x: jax.Array) -> jax.Array:
        return self._project(x, self.query).transpose(0, 2, 1, 3)

    def project_kv(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        k = self._project(x, self.key).transpose(0, 2, 3, 1)
        v = self._project(x, self.value).transpose(0, 2, 3, 1)
        return k, v

    def attend(
        self,
        q: jax.Array,
        k: jax.Array,
        v: jax.Array,
        bias: jax.Array | None,
        mask: jax.Array,
    ) -> jax.Array:
        """q [B,H,Q,K], k/v [B,H,K,S], bias [1|B,H,Q,S] fp32, mask bool [B|1,1,Q|1,S] -> [B,Q,D]."""
        k = k.astype(self.dtype)
        v = v.astype(self.dtype)
        scores = jnp.einsum("bhqd,bhdk->bhqk", q, k, preferred_element_type=jnp.float32)
        if bias is not None:
            scores = scores + bias
        scores = jnp.where(mask, scores, MASK_VALUE)
        probs = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
        ctx = jnp.einsum("bhqk,bhdk->bhqd", probs, v)
        b, h, q, k = ctx.shape
        d = self.cfg.d_model
        ctx = ctx.transpose(0, 2, 1, 3).reshape(b * q, h * k)
        return (ctx @ self.out(self.dtype).reshape(h * k, d)).reshape(b, q, d)


class Mlp(nn.Module):
    cfg: T5Config
    dtype: Dtype

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        d, f = self.cfg.d_model, self.cfg.d_ff
        if self.cfg.is_gated:
            wi_0 = Param((d, f), ("embed", "mlp"), stddev=d**-0.5, name="wi_0")(self.dtype)
            wi_1 = Param((d, f), ("embed", "mlp"), stddev=d**-0.5, name="wi_1")(self.dtype)
            # HF maps "gated-gelu" to gelu_new, the tanh approximation.
            h = jax.nn.gelu(x @ wi_0, approximate=True) * (x @ wi_1)
        else:
            wi = Param((d, f), ("embed", "mlp"), stddev=d**-0.5, name="wi")(self.dtype)
            h = jax.nn.relu(x @ wi)
        wo = Param((f, d), ("mlp", "embed"), stddev=f**-0.5, name="wo")(self.dtype)
        return h @ wo


def _norm(cfg: T5Config, dtype: Dtype) -> RMSNorm:
    return RMSNorm(cfg.d_model, cfg.layer_norm_epsilon, dtype)


class EncoderLayer(nn.Module):
    cfg: T5Config
    dtype: Dtype

    def setup(self):
        self.pre_attention_layer_norm = _norm(self.cfg, self.dtype)
        self.attention = Attention(self.cfg, self.dtype)
        self.pre_mlp_layer_norm = _norm(self.cfg, self.dtype)
        self.mlp = Mlp(self.cfg, self.dtype)

    def __call__(self, x, bias, mask):
        h = self.pre_attention_layer_norm(x)
        k, v = self.attention.project_kv(h)
        x = x + self.attention.attend(self.attention.project_q(h), k, v, bias, mask)
        return x + self.mlp(self.pre_mlp_layer_norm(x))


class DecoderLayer(nn.Module):
    cfg: T5Config
    dtype: Dtype

    def setup(self):
        self.pre_self_attention_layer_norm = _norm(self.cfg, self.dtype)
        self.self_attention = Attention(self.cfg, self.dtype)
        self.pre_cross_attention_layer_norm = _norm(self.cfg, self.dtype)
        self.encoder_decoder_attention = Attention(self.cfg, self.dtype)
        self.pre_mlp_layer_norm = _norm(self.cfg, self.dtype)
        self.mlp = Mlp(self.cfg, self.dtype)

    def cross_kv(self, enc):
        return self.encoder_decoder_attention.project_kv(enc)

    def _cross_and_mlp(self, x, cross_k, cross_v, enc_mask):
        h = self.pre_cross_attention_layer_norm(x)
        q = self.encoder_decoder_attention.project_q(h)
        x = x + self.encoder_decoder_attention.attend(q, cross_k, cross_v, None, enc_mask)
        return x + self.mlp(self.pre_mlp_layer_norm(x))

    def __call__(self, x, bias, mask, enc, enc_mask):
        """Teacher-forced: x [B,T,D], bias [1,H,T,T], mask [B,1,T,T], enc_mask [B,1,1,S]."""
        h = self.pre_self_attention_layer_norm(x)
        k, v = self.self_attention.project_kv(h)
        x = x + self.self_attention.attend(self.self_attention.project_q(h), k, v, bias, mask)
        return self._cross_and_mlp(x, *self.cross_kv(enc), enc_mask)

    def step(self, x, bias, mask, layer_cache, step, enc, enc_mask):
        """One position: x [B,1,D]; writes this position's key/value at `step` in the cache."""
        h = self.pre_self_attention_layer_norm(x)
        k_new, v_new = self.self_attention.project_kv(h)
        cache_k = layer_cache["self_k"]
        index = (0, 0, 0, step)
        k = jax.lax.dynamic_update_slice(cache_k, k_new.astype(cache_k.dtype), index)
        v = jax.lax.dynamic_update_slice(layer_cache["self_v"], v_new.astype(cache_k.dtype), index)
        x = x + self.self_attention.attend(self.self_attention.project_q(h), k, v, bias, mask)
        new_cache = dict(layer_cache, self_k=k, self_v=v)
        if "cross_k" in layer_cache:
            cross_k, cross_v = layer_cache["cross_k"], layer_cache["cross_v"]
        else:  # no precomputed cross keys/values: project the encoder output now
            cross_k, cross_v = self.cross_kv(enc)
        return self._cross_and_mlp(x, cross_k, cross_v, enc_mask), new_cache


def _maybe_remat(layer_cls, remat: bool):
    """remat: each layer's activations are recomputed in the backward pass instead of kept
    (memory for one layer's internals instead of all of them; about one more forward)."""
    return nn.remat(layer_cls) if remat else layer_cls


class Encoder(nn.Module):
    cfg: T5Config
    dtype: Dtype
    remat: bool = False

    def setup(self):
        self.relpos_bias = RelativePositionBias(self.cfg, bidirectional=True)
        layer = _maybe_remat(EncoderLayer, self.remat)
        self.layers = [layer(self.cfg, self.dtype) for _ in range(self.cfg.num_layers)]
        self.encoder_norm = _norm(self.cfg, self.dtype)

    def __call__(self, x, attention_mask):
        pos = jnp.arange(x.shape[1])
        bias = self.relpos_bias(pos, pos)
        mask = attention_mask.astype(bool)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, bias, mask)
        return self.encoder_norm(x)


class Decoder(nn.Module):
    cfg: T5Config
    dtype: Dtype
    remat: bool = False

    def setup(self):
        self.relpos_bias = RelativePositionBias(self.cfg, bidirectional=False)
        layer = _maybe_remat(DecoderLayer, self.remat)
        self.layers = [layer(self.cfg, self.dtype) for _ in range(self.cfg.num_decoder_layers)]
        self.decoder_norm = _norm(self.cfg, self.dtype)

    def __call__(self, x, decoder_mask, enc, enc_mask):
        t = x.shape[1]
        pos = jnp.arange(t)
        bias = self.relpos_bias(pos, pos)
        causal = pos[None, :] <= pos[:, None]
        mask = causal[None, None] & decoder_mask.astype(bool)[:, None, None, :]
        enc_mask = enc_mask.astype(bool)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, bias, mask, enc, enc_mask)
        return self.decoder_norm(x)

    def cross_kv(self, enc):
        return [layer.cross_kv(enc) for layer in self.layers]

    def step(self, x, step, cache, enc, enc_mask):
        max_len = cache["layers_0"]["self_k"].shape[-1]
        key_pos = jnp.arange(max_len)
        bias = self.relpos_bias(jnp.reshape(step, (1,)), key_pos)
        mask = (key_pos <= step)[None, None, None, :]
        enc_mask = enc_mask.astype(bool)[:, None, None, :]
        new_cache = {}
        for i, layer in enumerate(self.layers):
            name = f"layers_{i}"
            x, new_cache[name] = layer.step(x, bias, mask, cache[name], step, enc, enc_mask)
        return self.decoder_norm(x), new_cache


class T5(nn.Module):
    """Encoder-decoder trunk and LM head; returns hidden states and fp32 logits."""

    cfg: T5Config
    dtype: Dtype = jnp.float32
    remat: bool = False

    def setup(self):
        cfg = self.cfg
        self.token_embedder = Param(
            (cfg.vocab_size, cfg.d_model), ("vocab", "embed"), param_name="embedding"
        )
        self.encoder = Encoder(cfg, self.dtype, self.remat)
        self.decoder = Decoder(cfg, self.dtype, self.remat)
        if not cfg.tie_word_embeddings:
            self.lm_head = Param(
                (cfg.d_model, cfg.vocab_size), ("embed", "vocab"), stddev=cfg.d_model**-0.5
            )

    def embed(self, ids):
        return jnp.take(self.token_embedder(jnp.float32), ids, axis=0).astype(self.dtype)

    def encode(self, input_ids, attention_mask):
        return self.encoder(self.embed(input_ids), attention_mask)

    def decode(self, decoder_input_ids, decoder_attention_mask, enc, enc_mask):
        return self.decoder(self.embed(decoder_input_ids), decoder_attention_mask, enc, enc_mask)

    def logits(self, hidden):
        cfg = self.cfg
        if cfg.scale_decoder_outputs:
            hidden = hidden * (cfg.d_model**-0.5)
        if cfg.tie_word_embeddings:
            out = jnp.einsum("...d,vd->...v", hidden, self.token_embedder(self.dtype))
        else:
            out = hidden @ self.lm_head(self.dtype)
        return out.astype(jnp.float32)

    def cross_kv(self, enc):
        return self.decoder.cross_kv(enc)

    def decode_step(self, token_ids, step, cache, enc, enc_mask):
        hidden, new_cache = self.decoder.step(
            self.embed(token_ids[:, None]), step, cache, enc, enc_mask
        )
        return hidden[:, 0], self.logits(hidden[:, 0]), new_cache

    def hidden(self, input_ids, attention_mask, decoder_input_ids, decoder_attention_mask):
        enc = self.encode(input_ids, attention_mask)
        return self.decode(decoder_input_ids, decoder_attention_mask, enc, attention_mask)

    def __call__(self, input_ids, attention_mask, decoder_input_ids, decoder_attention_mask):
        hidden = self.hidden(input_ids, attention_mask, decoder_input_ids, decoder_attention_mask)
        return hidden, self.logits(hidden)


class ValueHead(nn.Module):
    """Dropout + Dense(d_model -> 1) on the final decoder hidden state, in fp32."""

    d_model: int
    rate: float

    @nn.compact
    def __call__(self, hidden: jax.Array, deterministic: bool) -> jax.Array:
        x = nn.Dropout(self.rate)(hidden.astype(jnp.float32), deterministic=deterministic)
        # Zero init: values start at 0; the trainer may set the bias (e.g. mean score).
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(nn.initializers.zeros, ("embed", None)),
            (self.d_model, 1),
            jnp.float32,
        )
        bias = self.param(
            "bias", nn.with_logical_partitioning(nn.initializers.zeros, (None,)), (1,), jnp.float32
        )
        return (x @ kernel + bias)[..., 0]
