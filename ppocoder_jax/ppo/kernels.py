"""Pure PPO numerics over masked ``[B, T]`` arrays (purejaxrl / tunix style).

Every function here is a pure function of arrays, safe under ``jax.jit`` and under any sharding
of the batch axis: reductions are plain ``jnp.sum`` over the (global) arrays, so XLA inserts the
cross-device collectives.  Conventions:

* ``mask`` is ``1`` on generated tokens (including the ``</s>``) and ``0`` on padding.  It need
  not be a prefix; "the last valid position" of a row is the largest index with ``mask == 1``.
* Losses return ``(sum, count)`` pairs (plus metric *sums* over the same count) instead of
  means, so that a mean over several minibatches / micro-batches / devices is exact:
  ``sum(sums) / sum(counts)``.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

Array = jax.Array

_EPS = 1e-8


# ---------------------------------------------------------------------------------------------
# masked reductions


def masked_sum(x: Array, mask: Array, axis=None) -> Array:
    """Sum of ``x`` where ``mask > 0`` (``where``, so NaN/inf on padding cannot leak in)."""
    return jnp.sum(jnp.where(mask > 0, x, 0.0), axis=axis)


def masked_mean(x: Array, mask: Array, axis=None) -> Array:
    """Mean of ``x`` over ``mask == 1``; 0 where the mask is empty."""
    count = jnp.sum(mask, axis=axis)
    return masked_sum(x, mask, axis) / jnp.maximum(count, 1.0)


def masked_var(x: Array, mask: Array, axis=None) -> Array:
    """Population variance (no Bessel correction) over ``mask == 1``; 0 where empty."""
    mean = masked_mean(x, mask, axis=axis)
    if axis is not None:
        mean = jnp.expand_dims(mean, axis)
    return masked_mean(jnp.square(x - mean), mask, axis=axis)


# ---------------------------------------------------------------------------------------------
# KL and rewards


def exact_kl_from_logits(logits: Array, ref_logits: Array) -> Array:
    """Full-vocabulary KL(pi || pi_ref) per token: ``sum_v p (log p - log q)`` -> ``[B, T]``.

    ``logits``/``ref_logits`` are ``[B, T, V]`` (the *untruncated* policy and reference
    distributions, before top-k).  Always >= 0 (up to rounding); computed in fp32.
    """
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    logq = jax.nn.log_softmax(ref_logits.astype(jnp.float32), axis=-1)
    return jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1)


def last_valid_index(mask: Array) -> Array:
    """Index of the last position with ``mask == 1`` in each row (``[B]``, int32); -1 if none."""
    t = mask.shape[-1]
    positions = jnp.arange(t, dtype=jnp.int32)
    return jnp.max(jnp.where(mask > 0, positions, -1), axis=-1)


def kl_penalised_rewards(
    logprobs: Array,
    ref_logprobs: Array,
    mask: Array,
    score: Array,
    kl_coef: Array | float,
    exact_kl: Array | None = None,
) -> tuple[Array, Array]:
    """Per-token rewards ``-beta * KL_t`` plus the terminal ``score`` at the last valid token.

    Args:
      logprobs, ref_logprobs: ``[B, T]`` log-probs of the sampled tokens under the policy that
        sampled them and under the frozen reference.
      mask: ``[B, T]`` 1 on generated tokens (the ``</s>`` included), 0 on padding.
      score: ``[B]`` terminal score of each sample (added at the ``</s>``, or at the last token
        when the sample has none: both are "the last valid position" of the mask).
      kl_coef: beta (scalar).
      exact_kl: optional ``[B, T]`` full-vocabulary KL per token (``exact_kl_from_logits``);
        when ``None`` the sampled estimate ``logprobs - ref_logprobs`` is used.

    Returns:
      ``(rewards [B, T], kl_per_row [B])``: rewards are 0 on padding; ``kl_per_row`` is the
      masked sum over tokens of the per-token KL used (the sequence KL fed to the controller).
      Rows with an empty mask get no score and zero KL.
    """
    mask = mask.astype(jnp.float32)
    if exact_kl is None:
        kl = logprobs.astype(jnp.float32) - ref_logprobs.astype(jnp.float32)
    else:
        kl = exact_kl.astype(jnp.float32)
    kl = jnp.where(mask > 0, kl, 0.0)
    rewards = -jnp.asarray(kl_coef, jnp.float32) * kl
    last = last_valid_index(mask)
    at_last = jnp.arange(mask.shape[-1])[None, :] == last[:, None]
    rewards = rewards + jnp.where(at_last, score.astype(jnp.float32)[:, None], 0.0)
    return rewards, jnp.sum(kl, axis=-1)


# ---------------------------------------------------------------------------------------------
# advantages


def gae(
    rewards: Array, values: Array, mask: Array, gamma: float, lam: float
) -> tuple[Array, Array]:
    """Generalised advantage estimation as one reverse ``lax.scan`` over time.

    ``delta_t = r_t + gamma * m_{t+1} V_{t+1} - V_t`` and
    ``A_t = delta_t + gamma * lam * m_{t+1} A_{t+1}``, i.e. the bootstrap value after the last
    valid token of a row is 0 (the episode ends there).  Masked positions get ``A = 0`` and
    ``returns = 0``.

    Returns ``(advantages [B, T], returns [B, T])`` with ``returns = advantages + values`` on
    valid positions.
    """
    mask = mask.astype(jnp.float32)
    rewards = jnp.where(mask > 0, rewards.astype(jnp.float32), 0.0)
    values = jnp.where(mask > 0, values.astype(jnp.float32), 0.0)
    # next-step value and mask (0 beyond the end of the array)
    next_values = jnp.concatenate([values[:, 1:], jnp.zeros_like(values[:, :1])], axis=1)
    next_mask = jnp.concatenate([mask[:, 1:], jnp.zeros_like(mask[:, :1])], axis=1)
    deltas = rewards + gamma * next_mask * next_values - values

    def step(carry, xs):
        delta, nmask, m = xs
        adv = (delta + gamma * lam * nmask * carry) * m
        return adv, adv

    init = jnp.zeros(rewards.shape[0], jnp.float32)
    xs = (deltas.T, next_mask.T, mask.T)  # scan over time
    _, adv_t = jax.lax.scan(step, init, xs, reverse=True)
    advantages = adv_t.T
    returns = (advantages + values) * mask
    return advantages, returns


def leave_one_out_baseline(returns: Array, valid: Array, group_size: int) -> Array:
    """Mean return of the *other* valid samples of the same prompt (RLOO, Kool et al. 2019).

    ``returns [B]`` with ``B = prompts * group_size`` and sample ``j`` of prompt ``i`` at row
    ``i * group_size + j``; ``valid [B]`` 0/1.  A sample with no valid sibling gets its own
    return as baseline (advantage 0: the group says nothing about it).
    """
    r = jnp.where(valid > 0, returns, 0.0).reshape(-1, group_size)
    v = valid.astype(jnp.float32).reshape(-1, group_size)
    others_sum = jnp.sum(r, axis=1, keepdims=True) - r
    others_n = jnp.sum(v, axis=1, keepdims=True) - v
    base = jnp.where(others_n > 0, others_sum / jnp.maximum(others_n, 1.0), r)
    return base.reshape(-1)


def group_mean_std(
    returns: Array, valid: Array, group_size: int, ddof: int = 1
) -> tuple[Array, Array]:
    """Mean and standard deviation of the valid returns of each row's group, per row (``[B]``).

    Rows as in ``leave_one_out_baseline``.  ``ddof=1`` is the Bessel-corrected (sample) std, as
    ``torch.std`` and TRL's ``nanstd``; a group with at most ``ddof`` valid samples has std 0.
    """
    v = valid.astype(jnp.float32).reshape(-1, group_size)
    r = jnp.where(v > 0, returns.reshape(-1, group_size), 0.0)
    n = jnp.sum(v, axis=1, keepdims=True)
    mean = jnp.sum(r, axis=1, keepdims=True) / jnp.maximum(n, 1.0)
    sq = jnp.sum(jnp.where(v > 0, jnp.square(r - mean), 0.0), axis=1, keepdims=True)
    std = jnp.where(n > ddof, jnp.sqrt(sq / jnp.maximum(n - ddof, 1.0)), 0.0)
    shape = (v.shape[0], group_size)
    return jnp.broadcast_to(mean, shape).reshape(-1), jnp.broadcast_to(std, shape).reshape(-1)


def groups_with_spread(score: Array, valid: Array, group_size: int) -> tuple[Array, Array]:
    """DAPO's dynamic-sampling filter: ``(keep [B], dropped_groups)``.

    ``keep`` is 1 on the rows of groups whose valid scores are not all equal (a group whose
    samples all scored alike has zero advantage under any group baseline: no signal), 0
    elsewhere; ``dropped_groups`` counts the groups with at least one valid sample that were
    dropped so.  Equality is exact (scores are sums of the same few reward values).
    """
    v = valid.astype(jnp.float32).reshape(-1, group_size)
    s = score.astype(jnp.float32).reshape(-1, group_size)
    hi = jnp.max(jnp.where(v > 0, s, -jnp.inf), axis=1)
    lo = jnp.min(jnp.where(v > 0, s, jnp.inf), axis=1)
    has_valid = jnp.sum(v, axis=1) > 0
    spread = has_valid & (hi > lo)
    keep = jnp.repeat(spread.astype(jnp.float32), group_size)
    return keep, jnp.sum((has_valid & ~spread).astype(jnp.float32))


def whiten(
    x: Array,
    mask: Array,
    mode: Literal["batch", "sample", "none"] = "batch",
    shift_mean: bool = True,
    eps: float = _EPS,
) -> Array:
    """Masked whitening: ``(x - mean) / sqrt(var + eps)`` over valid positions.

    ``mode='batch'``: one mean/std over every valid token of the batch (the corrected default);
    ``mode='sample'``: per row (the authors' per-sample whitening); ``'none'``: ``x * mask``.
    With ``shift_mean=False`` the mean is added back (scale only).  Padding stays 0.  A row or
    batch with a single valid token has variance 0 and whitens to ``0`` (or to its mean with
    ``shift_mean=False``) instead of dividing by zero.
    """
    mask = mask.astype(jnp.float32)
    x = x.astype(jnp.float32)
    if mode == "none":
        return jnp.where(mask > 0, x, 0.0)
    if mode == "batch":
        axis = None
        mean = masked_mean(x, mask)
        var = masked_var(x, mask)
    elif mode == "sample":
        axis = -1
        mean = masked_mean(x, mask, axis=axis)[:, None]
        var = masked_var(x, mask, axis=axis)[:, None]
    else:  # pragma: no cover - guarded by the config Literal
        raise ValueError(f"unknown whiten mode {mode!r}")
    out = (x - mean) * jax.lax.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return jnp.where(mask > 0, out, 0.0)


# ---------------------------------------------------------------------------------------------
# losses


def clipped_surrogate(
    logprobs_new: Array,
    logprobs_old: Array,
    advantages: Array,
    mask: Array,
    clip_low: float,
    clip_high: float | None = None,
    dual_clip: float = 0.0,
) -> tuple[Array, dict[str, Array]]:
    """Per-token clipped PPO loss ``max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high))``.

    ``clip_high=None`` is the symmetric clip (``clip_low`` both ways); DAPO's clip-higher uses
    e.g. 0.2 / 0.28.  ``dual_clip = c > 1`` (Ye et al. 2020, dual-clip PPO) bounds the loss of
    negative-advantage tokens by ``-c A``: for ``A < 0`` the loss is
    ``min(max(-A r, -A clip(r)), -c A)``, so a huge ratio on a bad action cannot dominate the
    update (the bounded tokens get no gradient); ``0`` turns it off.

    Returns ``(per_token [B, T], indicators)``: the loss is 0 on padding; ``indicators`` holds
    per-token 0/1 (or value) arrays, masked: ``clip_frac`` (the clipped branch is the active one,
    i.e. strictly larger), ``dual_clip_frac`` (the dual bound is active) and ``approx_kl``, the
    k3 estimator of KL(pi_old || pi_new), ``(r - 1) - log r`` (>= 0; Schulman 2020).
    """
    clip_high = clip_low if clip_high is None else clip_high
    mask = mask.astype(jnp.float32)
    log_ratio = jnp.where(mask > 0, logprobs_new - logprobs_old, 0.0)
    ratio = jnp.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high)
    per_token = jnp.maximum(unclipped, clipped)
    clip_frac = (clipped > unclipped).astype(jnp.float32)
    if dual_clip:
        bound = -dual_clip * advantages
        dual = (advantages < 0) & (per_token > bound)
        per_token = jnp.where(dual, bound, per_token)
        dual_frac = dual.astype(jnp.float32)
    else:
        dual_frac = jnp.zeros_like(per_token)
    approx_kl = (ratio - 1.0) - log_ratio
    indicators = {"clip_frac": clip_frac, "dual_clip_frac": dual_frac, "approx_kl": approx_kl}
    indicators = {k: jnp.where(mask > 0, v, 0.0) for k, v in indicators.items()}
    return jnp.where(mask > 0, per_token, 0.0), indicators


def policy_loss(
    logprobs_new: Array,
    logprobs_old: Array,
    advantages: Array,
    mask: Array,
    clip: float,
    clip_high: float | None = None,
    dual_clip: float = 0.0,
) -> tuple[Array, Array, dict[str, Array]]:
    """``clipped_surrogate`` summed over valid tokens: ``(loss_sum, count, metric_sums)``.

    ``metric_sums`` holds, over the same ``count``: ``clip_frac``, ``dual_clip_frac`` and
    ``approx_kl`` (see ``clipped_surrogate``).  ``sum / count`` is the token-mean loss; other
    aggregations (per-sequence means, a constant normaliser) are in ``ppo/registry.py``.
    """
    mask = mask.astype(jnp.float32)
    per_token, ind = clipped_surrogate(
        logprobs_new, logprobs_old, advantages, mask, clip, clip_high, dual_clip
    )
    metrics = {k: masked_sum(v, mask) for k, v in ind.items()}
    return masked_sum(per_token, mask), jnp.sum(mask), metrics


def k3_kl(logprobs: Array, ref_logprobs: Array, mask: Array) -> Array:
    """Per-token k3 estimator of KL(pi || pi_ref) for tokens sampled from pi:
    ``exp(ref - logp) - (ref - logp) - 1`` (>= 0, unbiased; Schulman 2020).  GRPO's KL term in
    the loss (DeepSeekMath; TRL ``GRPOTrainer``).  0 on padding."""
    d = jnp.where(mask > 0, ref_logprobs - logprobs, 0.0)
    return jnp.where(mask > 0, jnp.exp(d) - d - 1.0, 0.0)


def value_loss(
    values_new: Array,
    values_old: Array,
    returns: Array,
    mask: Array,
    clip: float,
) -> tuple[Array, Array, dict[str, Array]]:
    """Clipped value loss ``0.5 * max((V - R)^2, (V_clip - R)^2)`` summed over valid tokens.

    ``V_clip = V_old + clip(V - V_old, -clip, clip)``.  Returns ``(loss_sum, count,
    metric_sums)`` with ``vf_clip_frac`` (tokens where the clipped error is strictly larger).
    """
    mask = mask.astype(jnp.float32)
    v_clipped = values_old + jnp.clip(values_new - values_old, -clip, clip)
    unclipped = jnp.square(values_new - returns)
    clipped = jnp.square(v_clipped - returns)
    per_token = 0.5 * jnp.maximum(unclipped, clipped)
    metrics = {"vf_clip_frac": masked_sum((clipped > unclipped).astype(jnp.float32), mask)}
    return masked_sum(per_token, mask), jnp.sum(mask), metrics


def token_logprobs(logits: Array, ids: Array) -> Array:
    """``log_softmax(logits)[..., ids]`` in fp32 (the full, temperature-1 softmax). The same two
    lines as ``ppocoder_jax.model.common.token_logprobs`` (the sampler's), held here so that
    these kernels import nothing of the model."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return jnp.take_along_axis(logp, ids[..., None].astype(jnp.int32), axis=-1)[..., 0]


def entropy_from_logits(logits: Array, mask: Array) -> tuple[Array, Array]:
    """Entropy of the full softmax per token, ``(masked sum, count)``."""
    logits = logits.astype(jnp.float32)
    logp = jax.nn.log_softmax(logits, axis=-1)
    ent = -jnp.sum(jnp.exp(logp) * logp, axis=-1)
    mask = mask.astype(jnp.float32)
    return masked_sum(ent, mask), jnp.sum(mask)


def explained_variance(values: Array, returns: Array, mask: Array) -> Array:
    """``1 - Var[R - V] / Var[R]`` over valid tokens (NaN-free: 0 when Var[R] == 0)."""
    mask = mask.astype(jnp.float32)
    var_r = masked_var(returns, mask)
    var_err = masked_var(returns - values, mask)
    return jnp.where(var_r > 0, 1.0 - var_err / jnp.where(var_r > 0, var_r, 1.0), 0.0)
