"""Sharded TrainState constructors for tests that have no Policy (toy parameter trees, a
random init inside the jit). The product builds its state in one place: `PPOLearner.init_state`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from ppocoder_jax.config import KLConfig
from ppocoder_jax.parallel.rules import DEFAULT_RULES, Rules
from ppocoder_jax.ppo.state import TrainState, init_train_state, train_state_shardings


def create_sharded_train_state(
    init_params_fn,
    param_logical_axes_fn,
    tx: optax.GradientTransformation,
    kl_cfg: KLConfig,
    rng: jax.Array,
    mesh: Mesh,
    rules: Rules = DEFAULT_RULES,
) -> tuple[TrainState, TrainState]:
    """Initialise a ``TrainState`` directly in its sharded layout (no host-side full copy).

    ``init_params_fn(key) -> params``; ``param_logical_axes_fn(params) -> logical tree``.
    Returns ``(state, state_shardings)``.  ``rng`` is split: one key initialises the params,
    the other becomes ``state.rng``.
    """
    init_key, state_key = jax.random.split(rng)

    def build(k_init, k_state):
        return init_train_state(init_params_fn(k_init), tx, kl_cfg, k_state)

    abstract = jax.eval_shape(build, init_key, state_key)
    shardings = train_state_shardings(
        abstract, param_logical_axes_fn(abstract.params), mesh, tx, rules
    )
    state = jax.jit(build, out_shardings=shardings)(init_key, state_key)
    return state, shardings


def create_train_state_from_params(
    params,
    param_logical_axes,
    tx: optax.GradientTransformation,
    kl_cfg: KLConfig,
    rng: jax.Array,
    mesh: Mesh,
    rules: Rules = DEFAULT_RULES,
) -> tuple[TrainState, TrainState]:
    """Like ``create_sharded_train_state`` for params that already exist (loaded weights, or
    an init that runs on the host): params are placed onto their shardings, then the optimizer
    state is built on device directly in its sharded layout.  ``param_logical_axes`` is the
    logical tree (or a function of the params returning it).  ``rng`` becomes ``state.rng``
    as is.  Returns ``(state, state_shardings)``.
    """
    if callable(param_logical_axes):
        param_logical_axes = param_logical_axes(params)

    def build(p, k):
        return init_train_state(p, tx, kl_cfg, k)

    abstract = jax.eval_shape(build, params, rng)
    shardings = train_state_shardings(abstract, param_logical_axes, mesh, tx, rules)
    params = jax.device_put(params, shardings.params)
    rng = jax.device_put(jnp.asarray(rng, jnp.uint32), shardings.rng)
    state = jax.jit(build, out_shardings=shardings)(params, rng)
    return state, shardings
