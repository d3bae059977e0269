"""The T5 policy (``ppocoder_jax.model``) as the train step's ``ApplyFn``."""

from __future__ import annotations

import jax.numpy as jnp

from ppocoder_jax.model import T5Config, forward, shift_right


def make_t5_apply_fn(cfg: T5Config, dtype=jnp.float32, dropout: bool = True):
    """``apply(params, batch: PPOBatch, rng) -> (logits [b,T,V] fp32, values [b,T] fp32)``.

    The decoder input is ``shift_right(tokens)`` (decoder start first), so ``logits[:, t]`` is the
    distribution that produced ``tokens[:, t]`` and ``values[:, t]`` is the value of the state
    before ``tokens[:, t]``, as at sampling time.  ``dropout=True`` passes ``rng`` to the model
    (its value-head dropout); ``dtype`` is the compute dtype (params stay fp32).
    """

    def apply(params, batch, rng):
        dec_in = shift_right(batch.tokens.astype(jnp.int32), cfg.decoder_start_token_id)
        # decoder position t is real when it predicts a real token (start position always is)
        dec_mask = shift_right(batch.token_mask.astype(jnp.int32), 1)
        return forward(
            params,
            cfg,
            batch.prompt_ids.astype(jnp.int32),
            batch.prompt_mask.astype(jnp.int32),
            dec_in,
            dec_mask,
            dtype=dtype,
            dropout_rng=rng if dropout else None,
        )

    return apply
