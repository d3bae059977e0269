"""A guard against a policy collapsing into one repeated token (seen with GRPO + LoRA).

    repeat_collapse_frac(tokens [B,T], token_mask [B,T]) -> scalar fp32

The share of the batch's samples (those with at least `MIN_TOKENS` tokens) whose most frequent
token makes up more than half of their tokens. A healthy code sample repeats its most common
token (a space, a newline) far less; a collapsed one ("))))))...") is almost all one token.
Logged every iteration as `repeat_collapse_frac`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Shorter samples are not judged: "return x" is two thirds one token without any collapse.
MIN_TOKENS = 8


@jax.jit
def repeat_collapse_frac(tokens: jax.Array, token_mask: jax.Array) -> jax.Array:
    mask = token_mask.astype(jnp.float32)
    same = (tokens[:, :, None] == tokens[:, None, :]).astype(jnp.float32)
    # counts[b, i]: how often row b's token at i occurs among its real tokens
    counts = jnp.einsum("bij,bj->bi", same, mask)
    top = jnp.max(jnp.where(mask > 0, counts, 0.0), axis=1)
    length = jnp.sum(mask, axis=1)
    judged = length >= MIN_TOKENS
    collapsed = judged & (top > 0.5 * length)
    return jnp.sum(collapsed) / jnp.maximum(jnp.sum(judged), 1)
