"""The policy as the PPO update sees it: one teacher-forced pass for the step and the statistics.

    make_apply_fn(policy, dtype, head_only=False, dropout=True)
        -> apply(params, batch: PPOBatch, rng) -> (logits [b,T,V] fp32, values [b,T] fp32)
    rollout_statistics(params, ref_params or None, prompt_ids, prompt_mask, tokens, token_mask,
                       *, policy, dtype, exact_kl) -> (logprobs, values, ref_logprobs, kl | None)

Both call `Policy.score` with the same masks, so the log-probs the PPO ratio starts from and the
ones the train step recomputes come from the same computation.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ppocoder_jax.model.policy import as_policy, backbone_frozen, token_logprobs


def make_apply_fn(policy, dtype=jnp.float32, head_only: bool = False, dropout: bool = True):
    """``apply(params, batch, rng)``: logits[:, t] produced tokens[:, t]; values[:, t] is the
    value of the state before it. ``dropout`` passes ``rng`` to the value-head dropout;
    ``head_only`` lets gradients reach only the value head (the value warm-up must not move
    the policy through the backbone; AdamW's decoupled weight decay still applies)."""
    policy = as_policy(policy)

    def apply(params, batch, rng):
        if head_only:
            params = backbone_frozen(params)
        return policy.score(
            params,
            batch.prompt_ids,
            batch.prompt_mask,
            batch.tokens,
            batch.token_mask,
            dtype,
            dropout_rng=rng if dropout else None,
        )

    return apply


@functools.partial(jax.jit, static_argnames=("policy", "dtype", "exact_kl"))
def rollout_statistics(
    params, ref_params, prompt_ids, prompt_mask, tokens, token_mask, *, policy, dtype, exact_kl
):
    """Teacher-forced log-probs / values of the policy, the reference's log-probs, and (when
    exact_kl) the full-vocabulary KL per token, else None; all 0 where token_mask == 0.

    ``ref_params=None`` (no KL: ``kl.mode=none`` or beta = 0) skips the reference forward: the
    reference log-probs are the policy's own and the KL is 0."""
    from ppocoder_jax.ppo import kernels as K

    policy = as_policy(policy)
    logits, values = policy.score(params, prompt_ids, prompt_mask, tokens, token_mask, dtype)
    mask = token_mask.astype(jnp.float32)
    logprobs = token_logprobs(logits, tokens) * mask
    if ref_params is None:
        kl = jnp.zeros_like(logprobs) if exact_kl else None
        return logprobs, values * mask, logprobs, kl
    ref_logits, _ = policy.score(ref_params, prompt_ids, prompt_mask, tokens, token_mask, dtype)
    ref_logprobs = token_logprobs(ref_logits, tokens) * mask
    kl = K.exact_kl_from_logits(logits, ref_logits) * mask if exact_kl else None
    return logprobs, values * mask, ref_logprobs, kl
