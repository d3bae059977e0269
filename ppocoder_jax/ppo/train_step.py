"""Advantages for a rollout batch and the sharded, jitted PPO train step.

Model-independent: the policy enters as an ``apply_fn``::

    apply_fn(params, batch: PPOBatch, rng)
        -> (logprobs [b, T], entropy [b, T], values [b, T]), fp32

the log-prob of ``batch.tokens[:, t]`` under the distribution that produced it, that
distribution's entropy and the value of the state before it (`Policy.token_stats` through
`policy_apply.make_apply_fn`: the fused LM head, no [b, T, V] logits); ``b`` is a micro-batch
of the rollout batch.

One PPO iteration (host loop, see ``ppo_update``; ``learn_from_experience`` is this sequence)::

    adv = compute_advantages(rollout.logprobs, ref_logprobs, rollout.values, rollout.token_mask,
                             scores, state.kl.coef, exact_kl=exact_kl, sample_valid=ok,
                             cfg=cfg.ppo)
    batch = PPOBatch(prompt_ids=..., prompt_mask=..., tokens=..., token_mask=adv["token_mask"],
                     old_logprobs=rollout.logprobs, ref_logprobs=ref_logprobs,
                     old_values=rollout.values, advantages=adv["advantages"],
                     returns=adv["returns"])
    state, metrics = ppo_update(state, batch, train_step, cfg.ppo)
    state = state.replace(kl=update_kl_state(state.kl, adv["mean_kl"], batch_size, cfg.kl))

Exact reductions: every loss is a ``(sum, count)`` pair; a minibatch's loss is
``(agg_pg + beta agg_kl) / agg_count + (vf_coef sum_vf - ent_coef sum_ent) / count`` with
``agg_*`` the policy-loss aggregation's ``(sum, count)`` (``ppo.loss_agg``, ``ppo/registry.py``;
``token_mean`` gives ``sum_pg / count``), ``agg_kl`` the k3 KL term when the KL is in the loss
(``kl.mode=loss``), and both counts taken over the *whole* minibatch, so gradient accumulation
over micro-batches and the split over devices give the same gradient as one big batch (up to
float rounding).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ppocoder_jax.config import KLConfig, PPOConfig
from ppocoder_jax.parallel.mesh import batch_sharding
from ppocoder_jax.ppo import kernels as K
from ppocoder_jax.ppo import registry as R
from ppocoder_jax.ppo.kl import update_kl_state
from ppocoder_jax.ppo.state import TrainState


class PPOBatch(NamedTuple):
    """One rollout batch as the update sees it (all ``[B, ...]``, batch-sharded)."""

    prompt_ids: jax.Array  # [B, S] int32
    prompt_mask: jax.Array  # [B, S]
    tokens: jax.Array  # [B, T] int32 generated tokens, pad after </s>
    token_mask: jax.Array  # [B, T] 1 on generated tokens incl. </s>; 0 rows = masked samples
    old_logprobs: jax.Array  # [B, T] log pi_old(token) (full distribution)
    ref_logprobs: jax.Array  # [B, T] log pi_ref(token)
    old_values: jax.Array  # [B, T]
    advantages: jax.Array  # [B, T] (whitened)
    returns: jax.Array  # [B, T]


ApplyFn = Callable[[Any, PPOBatch, jax.Array], tuple[jax.Array, jax.Array]]


def ppo_batch_shardings(mesh: Mesh) -> PPOBatch:
    return PPOBatch(*[batch_sharding(mesh, 2) for _ in PPOBatch._fields])


# ---------------------------------------------------------------------------------------------
# advantages


@functools.partial(jax.jit, static_argnames=("cfg", "group_size"))
def compute_advantages(
    logprobs: jax.Array,
    ref_logprobs: jax.Array,
    values: jax.Array,
    token_mask: jax.Array,
    score: jax.Array,
    kl_coef: jax.Array,
    exact_kl: jax.Array | None = None,
    sample_valid: jax.Array | None = None,
    *,
    cfg: PPOConfig,
    group_size: int = 1,
) -> dict[str, jax.Array]:
    """KL-penalised rewards -> advantages (``cfg.advantage``) -> whitening, for a whole
    (sharded) rollout batch.

    ``cfg.advantage`` names a registered estimator (``ppo/registry.py``): ``gae`` (the value
    head), or a group estimator over ``group_size`` consecutive rows per prompt: ``rloo``
    (leave-one-out mean of the other samples' returns), ``grpo`` (group z-score), ``dr_grpo``
    (group mean).  The group estimators give ``A_t = (reward-to-go from t) - baseline`` (scaled
    for grpo); the value head still learns the reward-to-go (``returns``) and
    ``explained_variance`` still reports how well it does.  ``kl_coef`` is beta in the reward;
    pass 0 when the KL is in the loss or off (``mean_kl`` is still measured).

    ``sample_valid [B]`` (optional, bool/0-1): samples whose reward hit an infrastructure error
    are 0; their rows of the returned ``token_mask`` are zeroed so they drop out of whitening,
    the KL statistic and the update.  With ``cfg.dynamic_sampling`` the rows of groups whose
    valid scores are all equal are zeroed in ``token_mask`` too (left out of the advantages and
    the update; still in the score and KL statistics), and counted in ``groups_dropped``.
    Whitening uses ``cfg.whiten`` ('auto' | 'batch' | 'sample' | 'none'; auto = the estimator's
    choice) and only touches the advantages; returns come from the raw advantages.

    Returns a dict: ``rewards, advantages, returns, token_mask`` ``[B, T]``, ``kl_per_row [B]``
    and scalars ``mean_kl`` (mean sequence KL over valid samples: what the adaptive controller
    sees), ``mean_score``, ``num_invalid``, ``explained_variance`` (old values vs returns),
    ``mean_length``, ``groups_dropped``.
    """
    mask = token_mask.astype(jnp.float32)
    if sample_valid is None:
        valid = jnp.ones(mask.shape[0], jnp.float32)
    else:
        valid = sample_valid.astype(jnp.float32)
    scored_mask = mask * valid[:, None]
    # where, not multiply: an invalid sample's score may be NaN
    score = jnp.where(valid > 0, score.astype(jnp.float32), 0.0)
    rewards, kl_rows = K.kl_penalised_rewards(
        logprobs, ref_logprobs, scored_mask, score, kl_coef, exact_kl
    )
    learn = valid
    groups_dropped = jnp.zeros((), jnp.float32)
    if cfg.dynamic_sampling:
        keep, groups_dropped = K.groups_with_spread(score, valid, group_size)
        learn = valid * keep
    mask = scored_mask * learn[:, None]
    estimator = R.advantage_entry(cfg).fn
    adv, returns = estimator(rewards * mask, values, mask, learn, cfg, group_size)
    white = K.whiten(adv, mask, R.whiten_mode(cfg))
    n_valid = jnp.maximum(jnp.sum(valid), 1.0)
    return {
        "rewards": rewards,
        "advantages": white,
        "returns": returns,
        "token_mask": mask,
        "kl_per_row": kl_rows,
        "mean_kl": jnp.sum(kl_rows * valid) / n_valid,
        "mean_score": jnp.sum(score) / n_valid,
        "num_invalid": jnp.sum(1.0 - valid),
        "explained_variance": K.explained_variance(values, returns, mask),
        "mean_length": jnp.sum(scored_mask) / n_valid,
        "groups_dropped": groups_dropped,
    }


# ---------------------------------------------------------------------------------------------
# loss


def ppo_loss_sums(
    params,
    batch: PPOBatch,
    rng: jax.Array,
    apply_fn: ApplyFn,
    cfg: PPOConfig,
    kl_in_loss: bool = False,
    kl_weighted: bool = False,
) -> dict[str, jax.Array]:
    """Forward the (micro-)batch and return the loss *sums* and counts.

    Token sums (over ``count`` valid tokens): ``policy_loss``, ``value_loss``, ``entropy``,
    ``clip_frac``, ``dual_clip_frac`` (with ``cfg.dual_clip``), ``approx_kl``, ``vf_clip_frac`` and, with
    ``kl_in_loss``, ``kl_loss`` (k3 against ``batch.ref_logprobs``; times the ratio
    pi / pi_old with ``kl_weighted``).  The policy-loss aggregation's pair (``cfg.loss_agg``):
    ``policy_loss_agg`` / ``agg_count``, and ``kl_loss_agg`` over the same count.
    """
    logprobs, entropy, values = apply_fn(params, batch, rng)
    mask = batch.token_mask.astype(jnp.float32)
    low, high = cfg.clip_range
    per_pg, ind = K.clipped_surrogate(
        logprobs, batch.old_logprobs, batch.advantages, mask, low, high, cfg.dual_clip
    )
    aggregate = R.loss_aggregation(cfg)
    pg_agg, agg_count = aggregate(per_pg, mask, cfg)
    vf_sum, _, vf_m = K.value_loss(values, batch.old_values, batch.returns, mask, cfg.value_clip)
    ent_sum, count = K.masked_sum(entropy, mask), jnp.sum(mask)
    out = {
        "policy_loss": K.masked_sum(per_pg, mask),
        "value_loss": vf_sum,
        "entropy": ent_sum,
        "count": count,
        "policy_loss_agg": pg_agg,
        "agg_count": agg_count,
        **{
            k: K.masked_sum(v, mask)
            for k, v in ind.items()
            if cfg.dual_clip or k != "dual_clip_frac"
        },
        **vf_m,
    }
    if kl_in_loss:
        k3 = K.k3_kl(logprobs, batch.ref_logprobs.astype(jnp.float32), mask)
        if kl_weighted:  # the ratio is differentiable: it changes the gradient even at 1
            k3 = k3 * jnp.exp(jnp.where(mask > 0, logprobs - batch.old_logprobs, 0.0))
        out["kl_loss"] = K.masked_sum(k3, mask)
        out["kl_loss_agg"], _ = aggregate(k3, mask, cfg)
    return out


def _combine(
    sums: dict[str, jax.Array], cfg: PPOConfig, denoms, value_only: bool, kl_coef=None
) -> jax.Array:
    tokens, agg_count = denoms
    if value_only:
        return sums["value_loss"] / tokens
    policy = sums["policy_loss_agg"]
    if kl_coef is not None:
        policy = policy + kl_coef * sums["kl_loss_agg"]
    rest = cfg.vf_coef * sums["value_loss"] - cfg.entropy_coef * sums["entropy"]
    return policy / agg_count + rest / tokens


def _denominators(batch: PPOBatch, cfg: PPOConfig):
    """The minibatch's token count and the aggregation's count (both >= 1): the denominators
    every micro-batch's sums are divided by, so accumulation stays exact."""
    mask = batch.token_mask.astype(jnp.float32)
    _, agg_count = R.loss_aggregation(cfg)(jnp.zeros_like(mask), mask, cfg)
    return jnp.maximum(jnp.sum(mask), 1.0), jnp.maximum(agg_count, 1.0)


def _split_micro(batch: PPOBatch, k: int) -> PPOBatch:
    """[b, ...] -> [k, b/k, ...] with micro-batch j = rows j, j+k, ... (keeps dim 0 sharded)."""

    def split(x):
        x = x.reshape((x.shape[0] // k, k) + x.shape[1:])
        return jnp.swapaxes(x, 0, 1)

    return jax.tree.map(split, batch)


def loss_and_grads(
    params,
    batch: PPOBatch,
    rng: jax.Array,
    apply_fn: ApplyFn,
    cfg: PPOConfig,
    value_only: bool = False,
    kl_coef=None,
    kl_weighted: bool = False,
    denoms=None,
):
    """Gradient of the minibatch loss, accumulated exactly over ``cfg.grad_accum_steps``.

    ``kl_coef`` (beta, a scalar) puts ``beta * k3`` against ``batch.ref_logprobs`` into the
    policy loss, aggregated like it (GRPO's KL in the loss); ``None``: no KL term;
    ``kl_weighted`` multiplies each token's k3 by pi / pi_old (``kl.loss_importance_weight``).
    ``denoms`` (tokens, aggregation count): a larger minibatch's, when ``batch`` is one part
    of it (``ppo/width_parts.py``); default this batch's own.
    Returns ``(loss, grads, sums)`` where ``sums`` are the metric sums over the minibatch.
    """
    if denoms is None:
        denoms = _denominators(batch, cfg)
    kl_in_loss = kl_coef is not None

    def micro_loss(p, mb, key):
        sums = ppo_loss_sums(p, mb, key, apply_fn, cfg, kl_in_loss, kl_weighted)
        return _combine(sums, cfg, denoms, value_only, kl_coef), sums

    grad_fn = jax.value_and_grad(micro_loss, has_aux=True)
    k = cfg.grad_accum_steps
    if k == 1:
        (loss, sums), grads = grad_fn(params, batch, rng)
        return loss, grads, sums
    if batch.tokens.shape[0] % k:
        raise ValueError(
            f"minibatch of {batch.tokens.shape[0]} rows not divisible by grad_accum_steps={k}"
        )
    micro = _split_micro(batch, k)

    def body(carry, xs):
        loss_acc, grad_acc, sums_acc = carry
        mb, j = xs
        (loss, sums), grads = grad_fn(params, mb, jax.random.fold_in(rng, j))
        grad_acc = jax.tree.map(jnp.add, grad_acc, grads)
        sums_acc = jax.tree.map(jnp.add, sums_acc, sums)
        return (loss_acc + loss, grad_acc, sums_acc), None

    zeros_g = jax.tree.map(jnp.zeros_like, params)
    zero_sums = jax.tree.map(
        lambda s: jnp.zeros(s.shape, s.dtype),
        jax.eval_shape(
            lambda: ppo_loss_sums(
                params,
                jax.tree.map(lambda x: x[0], micro),
                rng,
                apply_fn,
                cfg,
                kl_in_loss,
                kl_weighted,
            )
        ),
    )
    init = (jnp.zeros((), jnp.float32), zeros_g, zero_sums)
    (loss, grads, sums), _ = jax.lax.scan(body, init, (micro, jnp.arange(k)))
    return loss, grads, sums


# ---------------------------------------------------------------------------------------------
# the jitted step


def _train_step(
    state: TrainState,
    batch: PPOBatch,
    idx: jax.Array,
    frozen=None,
    *,
    apply_fn: ApplyFn,
    tx: optax.GradientTransformation,
    cfg: PPOConfig,
    mb_sharding: PPOBatch | None,
    value_only: bool,
    return_grads: bool = False,
    kl_in_loss: bool = False,
    kl_weighted: bool = False,
):
    mb = jax.tree.map(lambda x: jnp.take(x, idx, axis=0), batch)
    if mb_sharding is not None:
        mesh = mb_sharding.tokens.mesh
        if idx.shape[0] % (mesh.shape["data"] * mesh.shape["fsdp"]) == 0:
            mb = jax.lax.with_sharding_constraint(mb, mb_sharding)
        else:  # e.g. the authors' one-sample minibatches on a multi-device mesh
            mb = jax.lax.with_sharding_constraint(mb, NamedSharding(mesh, PartitionSpec()))
    rng, step_key = jax.random.split(state.rng)
    kl_coef = state.kl.coef if kl_in_loss and not value_only else None
    if frozen is not None:  # e.g. LoRA's base: read by the forward, never differentiated
        apply_fn = _with_frozen(apply_fn, frozen)
    loss, grads, sums = loss_and_grads(
        state.params, mb, step_key, apply_fn, cfg, value_only, kl_coef, kl_weighted
    )
    new_state, metrics = apply_gradients(state, tx, grads, loss, sums, rng)
    if return_grads:
        return new_state, metrics, grads
    return new_state, metrics


def apply_gradients(state: TrainState, tx, grads, loss, sums, rng):
    """The optimizer step from a minibatch's gradient -> (state, metric sums); the state's
    key becomes `rng`."""
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    # A non-finite loss or gradient never reaches the parameters: the step is skipped (the
    # parameters and the optimizer state stay as they were) and counted. The global gradient
    # norm is not finite exactly when some gradient entry is not (or their squares overflow).
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    params, opt_state = jax.tree.map(
        lambda new, old: jnp.where(finite, new, old),
        (params, opt_state),
        (state.params, state.opt_state),
    )
    metrics = dict(sums)
    metrics["loss"] = loss
    metrics["grad_norm"] = grad_norm
    metrics["skipped"] = 1.0 - finite.astype(jnp.float32)
    # the policy term as this step's loss holds it (ppo.loss_agg's aggregation; a value-only
    # warm-up step computes it without its gradient)
    metrics["policy_loss_optimised"] = sums["policy_loss_agg"] / jnp.maximum(sums["agg_count"], 1.0)
    new_state = state.replace(params=params, opt_state=opt_state, rng=rng, step=state.step + 1)
    return new_state, metrics


def _with_frozen(apply_fn: ApplyFn, frozen) -> ApplyFn:
    def apply(params, batch, rng):
        return apply_fn({**params, **frozen}, batch, rng)

    return apply


def build_train_step(
    apply_fn: ApplyFn,
    tx: optax.GradientTransformation,
    cfg: PPOConfig,
    mesh: Mesh | None = None,
    state_shardings: TrainState | None = None,
    *,
    donate: bool = True,
    value_only: bool = False,
    return_grads: bool = False,
    kl_cfg: KLConfig | None = None,
    frozen_shardings=None,
):
    """One optimizer step on a minibatch ``batch[idx]`` of a rollout batch, as one ``jax.jit``.

    ``step(state, batch: PPOBatch, idx: int32[mb]) -> (state, metric_sums)``.  With a mesh,
    the jit has explicit ``in_shardings`` (``state_shardings``; batch rows over
    ``('data','fsdp')``; ``idx`` replicated) and ``out_shardings`` (state keeps its shardings,
    metrics replicated); the state is donated (``donate_argnums=0``: its buffers are reused for
    the new state, so do not touch the old one after the call).  ``value_only=True`` trains
    the value loss alone (weight 1; for value warm-up iterations).  ``return_grads=True``
    (tests, debugging) makes the step return ``(state, metric_sums, grads)``, grads sharded
    like the params.  ``kl_cfg`` with ``mode='loss'`` (and beta > 0) adds ``state.kl.coef *
    k3`` to the policy loss; without it the KL stays out of the loss.

    ``metric_sums`` are sums over the minibatch's valid tokens plus ``count``, ``loss`` and
    ``grad_norm``; ``ppo_update`` turns them into means.

    ``frozen_shardings`` (the shardings of a dict of frozen parameters, e.g. LoRA's base)
    makes the step ``step(state, batch, idx, frozen)``: ``apply_fn`` sees
    ``{**state.params, **frozen}``; gradients and the optimizer cover ``state.params`` only,
    and ``frozen`` is neither donated nor changed.
    """
    kwargs = {}
    mb_sharding = None
    if mesh is not None:
        if state_shardings is None:
            raise ValueError("state_shardings are required with a mesh")
        repl = NamedSharding(mesh, PartitionSpec())
        mb_sharding = ppo_batch_shardings(mesh)
        out = (state_shardings, repl)
        if return_grads:
            out = out + (state_shardings.params,)
        ins = (state_shardings, mb_sharding, repl)
        if frozen_shardings is not None:
            ins = ins + (frozen_shardings,)
        kwargs = dict(in_shardings=ins, out_shardings=out)
    fn = functools.partial(
        _train_step,
        apply_fn=apply_fn,
        tx=tx,
        cfg=cfg,
        mb_sharding=mb_sharding,
        value_only=value_only,
        return_grads=return_grads,
        kl_in_loss=kl_placement(kl_cfg) == "loss",
        kl_weighted=kl_cfg is not None and kl_cfg.loss_importance_weight,
    )
    return jax.jit(fn, donate_argnums=(0,) if donate else (), **kwargs)


def build_loss_and_grads(
    apply_fn: ApplyFn,
    cfg: PPOConfig,
    mesh: Mesh | None = None,
    param_shardings=None,
    value_only: bool = False,
    kl_coef: float | None = None,
    kl_weighted: bool = False,
):
    """Jitted ``(params, minibatch, rng) -> (loss, grads, sums)`` with the step's shardings
    (grads come out sharded like the params); ``kl_coef`` puts the k3 KL in the loss
    (``kl_weighted``: times pi / pi_old).  For tests and debugging."""

    def fn(params, batch, rng):
        beta = None if kl_coef is None else jnp.asarray(kl_coef, jnp.float32)
        return loss_and_grads(params, batch, rng, apply_fn, cfg, value_only, beta, kl_weighted)

    if mesh is None:
        return jax.jit(fn)
    repl = NamedSharding(mesh, PartitionSpec())
    return jax.jit(
        fn,
        in_shardings=(param_shardings, ppo_batch_shardings(mesh), repl),
        out_shardings=(repl, param_shardings, repl),
    )


def kl_placement(kl_cfg: KLConfig | None) -> str:
    """Where the KL goes: 'reward', 'loss' or 'none' (``kl.mode``; beta = 0 is 'none')."""
    if kl_cfg is None:
        return "reward"
    if kl_cfg.mode == "none" or kl_cfg.init_coef == 0:
        return "none"
    return kl_cfg.mode


def uses_reference(kl_cfg: KLConfig) -> bool:
    """Whether the reference policy's forward pass is needed at all."""
    return kl_placement(kl_cfg) != "none"


# ---------------------------------------------------------------------------------------------
# epochs x minibatches


@functools.partial(jax.jit, static_argnames=("batch_size", "epochs", "num_minibatches"))
def minibatch_indices(key, batch_size: int, epochs: int, num_minibatches: int) -> jax.Array:
    """``[epochs, num_minibatches, batch_size // num_minibatches]``: a fresh permutation of the
    rollout batch per epoch, cut into minibatches."""
    keys = jax.random.split(key, epochs)
    perms = jax.vmap(lambda k: jax.random.permutation(k, batch_size))(keys)
    return perms.reshape(epochs, num_minibatches, batch_size // num_minibatches)


_PERM_SALT = 0x5EED


def ppo_update(
    state: TrainState,
    batch: PPOBatch,
    train_step,
    cfg: PPOConfig,
    shuffle: bool = True,
    frozen=None,
) -> tuple[TrainState, dict[str, float]]:
    """``cfg.ppo_epochs`` x ``cfg.num_minibatches`` optimizer steps over one rollout batch.

    The permutations are a function of ``state.rng`` (so a resumed run repeats them exactly);
    ``shuffle=False`` uses the rows in order.  Returns the new state and metric *means* over
    every valid token of every minibatch step: ``policy_loss, value_loss, entropy, approx_kl,
    clip_frac, vf_clip_frac`` (per token), ``loss, grad_norm`` (mean over steps), ``kl_coef``
    and ``num_steps``.
    """
    b = batch.tokens.shape[0]
    n_mb = cfg.num_minibatches
    if b % n_mb:
        raise ValueError(f"rollout batch {b} not divisible by num_minibatches={n_mb}")
    if shuffle:
        key = jax.random.fold_in(state.rng, _PERM_SALT)
        idx = np.asarray(minibatch_indices(key, b, cfg.ppo_epochs, n_mb))
    else:
        idx = np.tile(
            np.arange(b, dtype=np.int32).reshape(1, n_mb, b // n_mb), (cfg.ppo_epochs, 1, 1)
        )
    idx = idx.astype(np.int32)
    totals, skipped = None, []
    extra = () if frozen is None else (frozen,)  # a step built with frozen_shardings
    for e in range(cfg.ppo_epochs):
        for m in range(n_mb):
            state, sums = train_step(state, batch, idx[e, m], *extra)
            skipped.append(sums.pop("skipped"))
            totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    metrics = summarize_metrics(totals, cfg.ppo_epochs * n_mb, state)
    metrics["skipped_steps"] = [bool(x) for x in jax.device_get(skipped)]
    return state, metrics


def learn_from_experience(
    state: TrainState,
    train_step,
    experience,
    *,
    ppo_cfg: PPOConfig,
    kl_cfg: KLConfig,
    group_size: int = 1,
    frozen=None,
    update=None,
) -> tuple[TrainState, dict[str, jax.Array], dict[str, float]]:
    """One iteration's learning from a scored ``Experience`` (``ppo/experience.py``):
    ``compute_advantages`` -> ``PPOBatch`` -> ``ppo_update`` -> KL controller (observed KL over
    every row).

    The learner and ``scripts/bench_ppo_step.py`` both call this, so the benchmark times the
    trainer's own path. Returns ``(state, advantages dict, update metric means)``; the KL
    goes where ``kl_cfg.mode`` says (the train step must be built with the same ``kl_cfg``).
    ``update(state, batch) -> (state, metrics)`` replaces ``ppo_update`` with ``train_step``
    (multi-turn batches: ``ppo/width_parts.update_by_width``, every row at its own width).
    """
    e = experience
    in_reward = kl_placement(kl_cfg) == "reward"
    adv = compute_advantages(
        e.logprobs,
        e.ref_logprobs,
        e.values,
        e.token_mask.astype(jnp.float32),
        e.scores,
        state.kl.coef if in_reward else jnp.zeros((), jnp.float32),
        e.exact_kl,
        e.valid,
        cfg=ppo_cfg,
        group_size=group_size,
    )
    batch = PPOBatch(
        prompt_ids=e.prompt_ids,
        prompt_mask=e.prompt_mask,
        tokens=e.tokens,
        token_mask=adv["token_mask"],
        old_logprobs=e.logprobs,
        ref_logprobs=e.ref_logprobs,
        old_values=e.values,
        advantages=adv["advantages"],
        returns=adv["returns"],
    )
    if update is None:
        state, metrics = ppo_update(state, batch, train_step, ppo_cfg, frozen=frozen)
    else:
        state, metrics = update(state, batch)
    state = state.replace(kl=update_kl_state(state.kl, adv["mean_kl"], e.tokens.shape[0], kl_cfg))
    if ppo_cfg.dynamic_sampling:
        metrics["groups_dropped"] = int(jax.device_get(adv["groups_dropped"]))
    return state, adv, metrics


def summarize_metrics(totals: dict, num_steps: int, state: TrainState) -> dict[str, float]:
    totals = jax.device_get(totals)
    count = max(float(totals["count"]), 1.0)
    names = ["value_loss", "entropy", "approx_kl", "clip_frac", "vf_clip_frac"]
    names += [n for n in ("dual_clip_frac", "kl_loss") if n in totals]
    out = {name: float(totals[name]) / count for name in names}
    # policy_loss: the policy term as optimised (ppo.loss_agg), averaged over the steps;
    # policy_loss_token_mean: the clipped surrogate per valid token, whatever the aggregation.
    out["policy_loss"] = float(totals["policy_loss_optimised"]) / num_steps
    out["policy_loss_token_mean"] = float(totals["policy_loss"]) / count
    out["loss"] = float(totals["loss"]) / num_steps
    out["grad_norm"] = float(totals["grad_norm"]) / num_steps
    out["kl_coef"] = float(jax.device_get(state.kl.coef))
    out["num_steps"] = num_steps
    return out
