"""The PPO train state (one pytree: everything a resume needs on device) and the optimizer.

``TrainState`` holds only arrays, so it can be sharded, donated to ``jax.jit`` and saved/restored
by Orbax as one pytree.  The optimizer (an ``optax.GradientTransformation``) is static and is
rebuilt from ``OptimConfig`` on resume.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ppocoder_jax.config import KLConfig, OptimConfig
from ppocoder_jax.parallel.rules import DEFAULT_RULES, Rules, logical_to_shardings
from ppocoder_jax.ppo.kl import KLState, init_kl_state


@flax.struct.dataclass
class TrainState:
    params: Any  # {'t5': ..., 'value_head': ...} for the real policy; any pytree here
    opt_state: Any  # optax state (contains the optimizer step count)
    kl: KLState  # KL controller state
    rng: jax.Array  # raw uint32[2] PRNG key (jax.random.PRNGKey), advanced by every step
    step: jax.Array  # int32 scalar: optimizer steps taken


def make_schedule(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
    """Linear warm-up from 0 over ``warmup_steps``, then constant / linear-to-0 / cosine-to-0.

    ``total_steps`` counts optimizer updates (iterations x epochs x minibatches); it only
    matters for the decaying schedules.
    """
    lr = cfg.learning_rate
    decay_steps = max(total_steps - cfg.warmup_steps, 1)
    if cfg.schedule == "constant":
        main = optax.constant_schedule(lr)
    elif cfg.schedule == "linear":
        main = optax.linear_schedule(lr, 0.0, decay_steps)
    elif cfg.schedule == "cosine":
        main = optax.cosine_decay_schedule(lr, decay_steps)
    else:  # pragma: no cover - guarded by the config Literal
        raise ValueError(cfg.schedule)
    if cfg.warmup_steps == 0:
        return main
    warm = optax.linear_schedule(0.0, lr, cfg.warmup_steps)
    return optax.join_schedules([warm, main], [cfg.warmup_steps])


def make_optimizer(cfg: OptimConfig, total_steps: int = 1) -> optax.GradientTransformation:
    """AdamW (b1, b2, eps, weight decay on every parameter, like torch AdamW) with the schedule,
    optionally preceded by global-norm clipping (``max_grad_norm > 0``); the value head's
    updates are multiplied by ``value_head_lr_scale``.

    Gradient accumulation is done exactly inside the train step (``PPOConfig.grad_accum_steps``
    micro-batches, sums divided by the minibatch's token count), not by ``optax.MultiSteps``.
    """
    tx = optax.adamw(
        make_schedule(cfg, total_steps),
        b1=cfg.b1,
        b2=cfg.b2,
        eps=cfg.eps,
        weight_decay=cfg.weight_decay,
    )
    if cfg.value_head_lr_scale != 1.0:
        # Scaling Adam's output (not the gradient, which Adam would normalise away).
        tx = optax.chain(tx, optax.masked(optax.scale(cfg.value_head_lr_scale), _value_head_mask))
    if cfg.max_grad_norm > 0:
        tx = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), tx)
    return tx


def _value_head_mask(params):
    """True on the leaves of ``params['value_head']`` (the policy layout), False elsewhere."""
    if not isinstance(params, dict) or "value_head" not in params:
        return jax.tree.map(lambda _: False, params)
    return {
        k: jax.tree.map(lambda _, is_head=(k == "value_head"): is_head, v)
        for k, v in params.items()
    }


def init_train_state(
    params, tx: optax.GradientTransformation, kl_cfg: KLConfig, rng: jax.Array
) -> TrainState:
    """The state of ``params`` (traced inside ``PPOLearner.init_state``'s jit, whose
    out_shardings place every leaf straight into its shards)."""
    return TrainState(
        params=params,
        opt_state=tx.init(params),
        kl=init_kl_state(kl_cfg),
        rng=jnp.asarray(rng, jnp.uint32),
        step=jnp.zeros((), jnp.int32),
    )


def train_state_shardings(
    abstract_state: TrainState,
    param_logical_axes,
    mesh: Mesh,
    tx: optax.GradientTransformation,
    rules: Rules = DEFAULT_RULES,
) -> TrainState:
    """``NamedSharding`` pytree for a ``TrainState``.

    Params follow the rules table; optimizer leaves that mirror a parameter (Adam's ``mu``,
    ``nu``) get that parameter's sharding (via ``optax.tree_map_params``); every other leaf
    (counts, KL state, rng, step) is replicated.
    """
    repl = NamedSharding(mesh, PartitionSpec())
    param_sh = logical_to_shardings(param_logical_axes, mesh, rules, abstract_state.params)
    opt_sh = optax.tree_map_params(
        tx,
        lambda _, sh: sh,
        abstract_state.opt_state,
        param_sh,
        transform_non_params=lambda _: repl,
    )
    return TrainState(
        params=param_sh,
        opt_state=opt_sh,
        kl=jax.tree.map(lambda _: repl, abstract_state.kl),
        rng=repl,
        step=repl,
    )


def frozen_copy(params):
    """A separate on-device copy of ``params`` with the same shardings: the frozen reference
    policy.  It must be a copy, not an alias, because the train step donates the state's
    buffers (an aliased reference would be deleted by the first update)."""
    return jax.tree.map(jnp.copy, params)
