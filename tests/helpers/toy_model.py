"""A tiny encoder-decoder-shaped policy with a value head, for the tests of
the model-independent PPO machinery (the real policies are in ``ppocoder_jax.model``).

It follows the same contract as the T5 policy: params ``{'body': ..., 'value_head': ...}``, a
logical-axes pytree using the t5x names, and ``toy_apply(params, batch, rng) -> (logprobs,
entropy, values)`` matching ``ApplyFn`` (decoder input = tokens shifted right with start token 0).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def init_toy_params(key, vocab: int = 16, d_model: int = 8, d_ff: int = 16):
    k = jax.random.split(key, 6)
    n = jax.random.normal
    return {
        "body": {
            "embed": n(k[0], (vocab, d_model)) * 0.5,
            "wi": n(k[1], (d_model, d_ff)) / np.sqrt(d_model),
            "wo": n(k[2], (d_ff, d_model)) / np.sqrt(d_ff),
            "enc": n(k[3], (d_model, d_model)) / np.sqrt(d_model),
            "lm_head": n(k[4], (d_model, vocab)) / np.sqrt(d_model),
        },
        "value_head": {
            "kernel": n(k[5], (d_model, 1)) / np.sqrt(d_model),
            "bias": jnp.zeros((1,), jnp.float32),
        },
    }


def toy_logical_axes(params):
    del params
    return {
        "body": {
            "embed": ("vocab", "embed"),
            "wi": ("embed", "mlp"),
            "wo": ("mlp", "embed"),
            "enc": ("embed", "mlp"),
            "lm_head": ("embed", "vocab"),
        },
        "value_head": {"kernel": ("embed", None), "bias": (None,)},
    }


def shift_right(tokens, start_id: int = 0):
    return jnp.concatenate([jnp.full_like(tokens[:, :1], start_id), tokens[:, :-1]], axis=1)


def toy_forward(params, prompt_ids, prompt_mask, decoder_input_ids):
    p = params["body"]
    pm = prompt_mask.astype(jnp.float32)
    enc = jnp.take(p["embed"], prompt_ids, axis=0)  # [B,S,D]
    enc = jnp.tanh(enc @ p["enc"])
    ctx = jnp.sum(enc * pm[..., None], axis=1) / jnp.maximum(pm.sum(1, keepdims=True), 1.0)
    h = jnp.take(p["embed"], decoder_input_ids, axis=0) + ctx[:, None, :]
    # a causal running mean so every position sees its prefix
    t = h.shape[1]
    h = jnp.cumsum(h, axis=1) / jnp.arange(1, t + 1, dtype=h.dtype)[None, :, None]
    h = h + jax.nn.gelu(h @ p["wi"]) @ p["wo"]
    logits = h @ p["lm_head"]
    values = (h @ params["value_head"]["kernel"])[..., 0] + params["value_head"]["bias"][0]
    return logits.astype(jnp.float32), values.astype(jnp.float32)


def toy_apply(params, batch, rng):
    """``ApplyFn`` for ``PPOBatch``-like batches: (log-probs, entropy, values) of the taken
    tokens from the whole logits (``rng`` unused: no dropout)."""
    del rng
    logits, values = toy_forward(
        params, batch.prompt_ids, batch.prompt_mask, shift_right(batch.tokens)
    )
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    taken = jnp.take_along_axis(logp, batch.tokens[..., None].astype(jnp.int32), axis=-1)
    return taken[..., 0], -jnp.sum(jnp.exp(logp) * logp, axis=-1), values


def random_ppo_batch(seed: int, batch: int, prompt_len: int, length: int, vocab: int):
    """A deterministic random ``PPOBatch`` (numpy) with ragged masks: some rows end with
    ``</s>`` (id 2) before ``length``, some have none, and the last row is fully masked."""
    from ppocoder_jax.ppo.train_step import PPOBatch

    rng = np.random.default_rng(seed)
    prompt_ids = rng.integers(3, vocab, size=(batch, prompt_len)).astype(np.int32)
    plen = rng.integers(1, prompt_len + 1, size=batch)
    prompt_mask = (np.arange(prompt_len)[None] < plen[:, None]).astype(np.int32)
    prompt_ids = prompt_ids * prompt_mask
    tokens = rng.integers(3, vocab, size=(batch, length)).astype(np.int32)
    lens = rng.integers(1, length + 1, size=batch)
    token_mask = (np.arange(length)[None] < lens[:, None]).astype(np.float32)
    for i in range(batch):
        if lens[i] < length:  # ends with </s>
            tokens[i, lens[i] - 1] = 2
    token_mask[-1] = 0.0
    tokens = (tokens * token_mask).astype(np.int32)

    def f(scale=1.0):
        return (rng.normal(size=(batch, length)) * scale).astype(np.float32) * token_mask

    return PPOBatch(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        tokens=tokens,
        token_mask=token_mask,
        old_logprobs=f(0.5) - 2.5 * token_mask,
        ref_logprobs=f(0.5) - 2.5 * token_mask,
        old_values=f(),
        advantages=f(),
        returns=f(),
    )
