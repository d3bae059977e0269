"""Jitted batched sampling with a KV cache: token ids, masks, log-probs and values in one pass.

    SamplingParams(greedy=False, temperature=1.0, top_k=0, top_p=1.0, min_new_tokens=0,
                   draw="cdf")
    sample(params, cfg, prompt_ids [B,S], prompt_mask [B,S], rng, sampling, max_new_tokens,
           num_samples=1, dtype=jnp.float32) -> RolloutBatch

`cfg` is a `Policy` (ppocoder_jax.model.policy; a T5Config or DecoderConfig is wrapped in
one): the prompts are encoded (T5) or prefilled into the KV cache (decoder-only) once per
prompt, and the state is repeated per sample (sample j of prompt i is row i*n+j). Decoding runs
in a `lax.while_loop` over a preallocated cache of length `max_new_tokens` and stops as soon
as every row has emitted an end-of-sequence token (or after `max_new_tokens` steps).

Per step: the logits are divided by the temperature, filtered by top-k then top-p (top-p on the
renormalised top-k distribution, as transformers' warpers do) and a token is drawn; greedy is
argmax of the raw logits. `draw` is how: "gumbel" (`jax.random.categorical`: Gumbel-max, one
random number per vocabulary entry, so [rows, vocab] random draws per step, which on a CPU cost
far more than the LM head) or "cdf" (inverse CDF: one uniform per row against the cumulative
softmax, blocks first, then within the block, as `torch.multinomial` draws for transformers'
`generate`). Both draw from the same distribution; for a given key they draw different tokens.
The log-prob recorded for the token is always log_softmax(raw logits) at temperature 1 over the
whole vocabulary (the PPO policy log-prob), never the filtered one.

Randomness: row r at step t draws with `fold_in(fold_in(rng, r), t)`, so a row's samples do
not depend on the batch size, on padding rows appended after it, or on the sharding.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ppocoder_jax.model.common import token_logprobs
from ppocoder_jax.model.families import as_policy

Params = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """How to pick each token (hashable: a static jit argument).

    greedy: argmax (the other fields are ignored). top_k = 0 and top_p = 1.0 switch the filters
    off. min_new_tokens > 0 forbids `</s>` before that many tokens (as transformers'
    `min_new_tokens`); it changes what is drawn, not the recorded policy log-probs.
    """

    greedy: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_new_tokens: int = 0
    draw: str = "cdf"  # "cdf" | "gumbel" (see the module docstring)

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.min_new_tokens < 0:
            raise ValueError(f"min_new_tokens must be >= 0, got {self.min_new_tokens}")
        if self.draw not in ("gumbel", "cdf"):
            raise ValueError(f"draw must be 'gumbel' or 'cdf', got {self.draw!r}")

    @classmethod
    def from_config(cls, rollout_cfg, greedy: bool = False) -> SamplingParams:
        """From a `RolloutConfig` (temperature, top_k, top_p, draw)."""
        return cls(
            greedy=greedy,
            temperature=float(rollout_cfg.temperature),
            top_k=int(rollout_cfg.top_k),
            top_p=float(rollout_cfg.top_p),
            draw=str(getattr(rollout_cfg, "draw", "cdf")),
        )


GREEDY = SamplingParams(greedy=True)


class RolloutBatch(NamedTuple):
    """Device arrays; B = prompts * num_samples rows, T = max_new_tokens."""

    prompt_ids: jax.Array  # [B,S] int32
    prompt_mask: jax.Array  # [B,S] int32
    tokens: jax.Array  # [B,T] int32, pad (0) after </s>
    token_mask: jax.Array  # [B,T] int32, 1 on generated tokens including </s>
    logprobs: jax.Array  # [B,T] fp32, log pi(token) under the full temperature-1 policy; 0 on pad
    values: jax.Array  # [B,T] fp32, value head at the state that produced the token; 0 on pad
    lengths: jax.Array  # [B] int32 = token_mask.sum(1)


def _row_keys(rng: jax.Array, rows: int, step) -> jax.Array:
    per_row = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng, jnp.arange(rows))
    return jax.vmap(jax.random.fold_in, in_axes=(0, None))(per_row, step)


def choose_tokens(logits: jax.Array, keys: jax.Array, sampling: SamplingParams) -> jax.Array:
    """logits [B,V] fp32, keys [B] -> token ids [B] int32 (filters as in the module docstring)."""
    if sampling.greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    x = logits / jnp.float32(sampling.temperature)
    vocab = x.shape[-1]
    index = None
    if sampling.top_k > 0 or sampling.top_p < 1.0:
        k = min(sampling.top_k, vocab) if sampling.top_k > 0 else vocab
        x, index = jax.lax.top_k(x, k)  # sorted, most likely first
    if sampling.top_p < 1.0:
        probs = jax.nn.softmax(x, axis=-1)
        mass_before = jnp.cumsum(probs, axis=-1) - probs
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        x = jnp.where(mass_before < sampling.top_p, x, -jnp.inf)
    if sampling.draw == "cdf":
        choice = _inverse_cdf(keys, x)
    else:
        choice = jax.vmap(jax.random.categorical)(keys, x).astype(jnp.int32)
    if index is None:
        return choice
    return jnp.take_along_axis(index, choice[:, None], axis=-1)[:, 0].astype(jnp.int32)


def _inverse_cdf(keys: jax.Array, x: jax.Array, block: int = 128) -> jax.Array:
    """One draw per row from softmax(x) [B, V] (-inf = excluded): the first entry whose
    cumulative mass exceeds u * total, u uniform. Two levels, so no scan runs over the whole
    vocabulary (XLA:CPU's cumsum of [B, V] cost as much as the LM head): the cumulative mass of
    blocks of `block` entries picks the block, a cumsum inside it the entry. Only entries with
    mass can be drawn (rounding cannot pick an excluded one); u at the top of a cumulative sum
    (rounding) takes the last entry with mass there."""
    rows, vocab = x.shape
    block = min(block, vocab)
    n_blocks = -(-vocab // block)
    weights = jnp.exp(x - jnp.max(x, axis=-1, keepdims=True))  # unnormalised: u scales instead
    weights = jnp.pad(weights, ((0, 0), (0, n_blocks * block - vocab)))
    weights = weights.reshape(rows, n_blocks, block)

    def first_above(cdf, mass, target):
        """The first entry with mass whose cumulative sum exceeds target (else the last one
        with mass)."""
        live = mass > 0
        hit = (cdf > target[:, None]) & live
        last = cdf.shape[-1] - 1 - jnp.argmax(live[:, ::-1], axis=-1)
        return jnp.where(hit.any(axis=-1), jnp.argmax(hit, axis=-1), last)

    sums = weights.sum(axis=-1)  # [B, n_blocks]
    cdf = jnp.cumsum(sums, axis=-1)
    u = jax.vmap(jax.random.uniform)(keys) * cdf[:, -1]
    j = first_above(cdf, sums, u)
    before = jnp.take_along_axis(cdf - sums, j[:, None], axis=-1)[:, 0]
    inner = jnp.take_along_axis(weights, j[:, None, None], axis=1)[:, 0]  # [B, block]
    k = first_above(jnp.cumsum(inner, axis=-1), inner, u - before)
    return (j * block + k).astype(jnp.int32)


def _repeat_rows(x: jax.Array, n: int) -> jax.Array:
    return x if n == 1 else jnp.repeat(x, n, axis=0)


def _sample_impl(
    params: Params,
    prompt_ids: jax.Array,
    prompt_mask: jax.Array,
    rng: jax.Array,
    limit: jax.Array,
    *,
    cfg,
    sampling: SamplingParams,
    out_len: int,
    num_samples: int,
    dtype: str,
) -> RolloutBatch:
    """`out_len` (static) sizes the buffers and the cache; `limit` (traced) <= out_len stops.
    `cfg` is the Policy (or a model config it is made from)."""
    policy = as_policy(cfg)
    dtype = jnp.dtype(dtype)
    params = policy.cast_for_compute(params, dtype)
    prompt_ids = prompt_ids.astype(jnp.int32)
    prompt_mask = prompt_mask.astype(jnp.int32)
    # The prompt is encoded / prefilled once, then its state is repeated per sample.
    state, current = policy.prefill(params, prompt_ids, prompt_mask, out_len, dtype)
    state = jax.tree.map(partial(_repeat_rows, n=num_samples), state)
    current = _repeat_rows(current, num_samples)
    prompt_ids = _repeat_rows(prompt_ids, num_samples)
    prompt_mask = _repeat_rows(prompt_mask, num_samples)
    rows = prompt_ids.shape[0]
    eos_ids, pad = jnp.asarray(policy.eos_ids, jnp.int32), policy.pad_id
    limit = jnp.minimum(jnp.asarray(limit, jnp.int32), out_len)

    def cond(loop):
        step, done = loop[0], loop[1]
        return (step < limit) & ~jnp.all(done)

    def body(loop):
        step, done, current, lengths, state, tokens, logprobs, values = loop
        logits, value, state = policy.decode(params, current, step, state, dtype)
        draw_logits = logits
        if sampling.min_new_tokens > 0:
            is_eos = jnp.isin(jnp.arange(logits.shape[-1]), eos_ids)
            draw_logits = jnp.where((step < sampling.min_new_tokens) & is_eos, -jnp.inf, logits)
        keys = None if sampling.greedy else _row_keys(rng, rows, step)
        token = choose_tokens(draw_logits, keys, sampling)
        active = ~done
        token = jnp.where(active, token, pad)
        logprob = jnp.where(active, token_logprobs(logits, token), 0.0)
        value = jnp.where(active, value, 0.0)
        tokens = jax.lax.dynamic_update_slice(tokens, token[:, None], (0, step))
        logprobs = jax.lax.dynamic_update_slice(logprobs, logprob[:, None], (0, step))
        values = jax.lax.dynamic_update_slice(values, value[:, None], (0, step))
        lengths = lengths + active.astype(jnp.int32)
        done = done | (active & jnp.isin(token, eos_ids))
        return step + 1, done, token, lengths, state, tokens, logprobs, values

    loop = (
        jnp.int32(0),
        jnp.zeros((rows,), bool),
        current.astype(jnp.int32),
        jnp.zeros((rows,), jnp.int32),
        state,
        jnp.full((rows, out_len), pad, jnp.int32),
        jnp.zeros((rows, out_len), jnp.float32),
        jnp.zeros((rows, out_len), jnp.float32),
    )
    _, _, _, lengths, _, tokens, logprobs, values = jax.lax.while_loop(cond, body, loop)
    token_mask = (jnp.arange(out_len)[None, :] < lengths[:, None]).astype(jnp.int32)
    return RolloutBatch(prompt_ids, prompt_mask, tokens, token_mask, logprobs, values, lengths)


_sample_jit = jax.jit(
    _sample_impl, static_argnames=("cfg", "sampling", "out_len", "num_samples", "dtype")
)


def _as_key(rng) -> jax.Array:
    if isinstance(rng, int):
        return jax.random.PRNGKey(rng)
    return rng


def sample(
    params: Params,
    cfg,
    prompt_ids,
    prompt_mask,
    rng,
    sampling: SamplingParams,
    max_new_tokens: int,
    num_samples: int = 1,
    dtype=jnp.float32,
) -> RolloutBatch:
    """Sample `num_samples` continuations of each right-padded prompt (see module docstring).

    One compiled program per (cfg, sampling, shapes, max_new_tokens, num_samples, dtype); use
    `Sampler` to bucket shapes. `rng` is a PRNG key (or an int seed); greedy ignores it.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    return _sample_jit(
        params,
        prompt_ids,
        prompt_mask,
        _as_key(rng),
        max_new_tokens,
        cfg=cfg,
        sampling=sampling,
        out_len=int(max_new_tokens),
        num_samples=int(num_samples),
        dtype=jnp.dtype(dtype).name,
    )
