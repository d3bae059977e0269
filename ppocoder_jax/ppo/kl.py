"""KL controllers (Ziegler et al. 2019) as pure functions over a small state pytree.

The state lives inside ``TrainState`` so a checkpoint/resume restores the coefficient exactly.
The controller *kind* (fixed / adaptive), target and horizon are static config (``KLConfig``);
only the evolving numbers are in the state.

Adaptive rule: ``beta <- beta * (1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon)`` where
``KL`` is the observed *sequence* KL (mean over samples of the per-sample summed per-token KL)
and ``n`` is the number of samples behind that observation (the batch size).
"""

from __future__ import annotations

import functools

import flax.struct
import jax
import jax.numpy as jnp

from ppocoder_jax.config import KLConfig

PROPORTIONAL_ERROR_CLIP = 0.2


@flax.struct.dataclass
class KLState:
    coef: jax.Array  # float32 scalar: the current beta
    last_kl: jax.Array  # float32 scalar: the KL of the last update (for logging)


def init_kl_state(cfg: KLConfig) -> KLState:
    return KLState(
        coef=jnp.asarray(cfg.init_coef, jnp.float32), last_kl=jnp.asarray(0.0, jnp.float32)
    )


def fixed_kl_update(state: KLState, observed_kl, n_steps, cfg: KLConfig) -> KLState:
    del n_steps, cfg
    return KLState(coef=state.coef, last_kl=jnp.asarray(observed_kl, jnp.float32))


def adaptive_kl_update(state: KLState, observed_kl, n_steps, cfg: KLConfig) -> KLState:
    observed_kl = jnp.asarray(observed_kl, jnp.float32)
    error = jnp.clip(
        observed_kl / cfg.target - 1.0, -PROPORTIONAL_ERROR_CLIP, PROPORTIONAL_ERROR_CLIP
    )
    mult = 1.0 + error * jnp.asarray(n_steps, jnp.float32) / cfg.horizon
    return KLState(coef=state.coef * mult, last_kl=observed_kl)


KL_CONTROLLERS = {"fixed": fixed_kl_update, "adaptive": adaptive_kl_update}


@functools.partial(jax.jit, static_argnames=("cfg",))
def update_kl_state(state: KLState, observed_kl, n_steps, cfg: KLConfig) -> KLState:
    """Advance the controller by one rollout batch (``cfg.kind`` picks the rule). Jitted over
    the controller's few scalars alone: a jit of the whole train state (not donated) would copy
    the parameters and the optimizer state every iteration."""
    return KL_CONTROLLERS[cfg.kind](state, observed_kl, n_steps, cfg)
