"""Registered RL algorithm parts, chosen by name in the config (tunix ``function_registry`` style).

Two registries of small, pure, masked, jittable functions:

* ``ADVANTAGES`` (``ppo.advantage``): how a scored rollout batch becomes per-token advantages.
  ``fn(rewards, values, mask, valid, cfg, group_size) -> (advantages [B, T], returns [B, T])``
  with ``rewards`` the per-token rewards (the terminal score at the last valid token, minus
  ``beta * KL_t`` when the KL is in the reward), ``values`` the old value-head outputs, ``mask``
  the valid tokens, ``valid [B]`` the samples that take part, and ``group_size`` consecutive rows
  per prompt.  ``returns`` are the value head's regression targets.  Registered: ``gae`` (the
  paper: GAE with the value head), ``rloo`` (leave-one-out group mean), ``grpo`` (group
  z-score), ``dr_grpo`` (group mean, no std).
* ``LOSS_AGGREGATIONS`` (``ppo.loss_agg``): how per-token policy losses become one number.
  ``fn(x [B, T], mask [B, T], cfg) -> (sum, count)``, the loss being ``sum / count`` where both
  are sums over rows, so a minibatch's loss over micro-batches and devices stays exact:
  ``sum(sums) / sum(counts)`` (the train step takes ``count`` over the whole minibatch).
  Registered: ``token_mean`` (DAPO; TRL ``dapo``), ``seq_mean_token_mean`` (original GRPO;
  TRL ``grpo``), ``seq_mean_token_sum_norm`` (Dr. GRPO; TRL ``dr_grpo``).

A new one is one function plus its registration::

    @ADVANTAGES.register("my_estimator", group=True, whiten="none")
    def my_estimator(rewards, values, mask, valid, cfg, group_size): ...

An unknown name is a one-line ``UserError`` (exit 2) listing the registered ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from ppocoder_jax.errors import UserError
from ppocoder_jax.ppo import kernels as K

if TYPE_CHECKING:  # pragma: no cover
    from ppocoder_jax.config import Config, PPOConfig

Array = jax.Array

# Added to the group std by ``grpo`` (TRL's value; DeepSeekMath gives none).
GRPO_STD_EPS = 1e-4


@dataclass(frozen=True)
class Entry:
    name: str
    fn: Callable
    meta: dict = field(default_factory=dict)


class Registry:
    """Name -> function, with a one-line error for unknown names."""

    def __init__(self, what: str, config_key: str):
        self.what, self.config_key = what, config_key
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, **meta: Any) -> Callable[[Callable], Callable]:
        def deco(fn: Callable) -> Callable:
            if name in self._entries:
                raise ValueError(f"{self.what} {name!r} is already registered")
            self._entries[name] = Entry(name, fn, dict(meta))
            return fn

        return deco

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise UserError(
                f"config key {self.config_key!r}: unknown {self.what} {name!r} "
                f"(registered: {', '.join(self.names())})"
            ) from None


ADVANTAGES = Registry("advantage estimator", "ppo.advantage")
LOSS_AGGREGATIONS = Registry("loss aggregation", "ppo.loss_agg")


# ---------------------------------------------------------------------------------------------
# advantage estimators
#
# meta: group=True needs rollout.num_samples >= 2 rows per prompt; whiten is what
# ppo.whiten=auto resolves to ("batch": whiten over the batch as PPO does; "none": keep the
# estimator's own scale, as GRPO / Dr. GRPO / TRL do).


def reward_to_go(rewards: Array, mask: Array, gamma: float) -> Array:
    """``sum_{s >= t} gamma^(s-t) r_s`` over valid tokens (0 on padding)."""
    to_go, _ = K.gae(rewards, jnp.zeros_like(rewards), mask, gamma, 1.0)
    return to_go


@ADVANTAGES.register("gae", group=False, whiten="batch")
def gae_advantages(rewards, values, mask, valid, cfg: PPOConfig, group_size: int):
    """The paper's: GAE(gamma, lambda) with the value head as baseline."""
    del valid, group_size
    return K.gae(rewards, values, mask, cfg.gamma, cfg.lam)


@ADVANTAGES.register("rloo", group=True, whiten="batch")
def rloo_advantages(rewards, values, mask, valid, cfg: PPOConfig, group_size: int):
    """Reward-to-go minus the mean return of the prompt's *other* valid samples (Kool et al.
    2019; Ahmadian et al. 2024).  No critic in the advantages; the value head still learns the
    reward-to-go."""
    del values
    to_go = reward_to_go(rewards, mask, cfg.gamma)
    base = K.leave_one_out_baseline(to_go[:, 0], valid, group_size)
    return (to_go - base[:, None]) * mask, to_go


@ADVANTAGES.register("grpo", group=True, whiten="none")
def grpo_advantages(rewards, values, mask, valid, cfg: PPOConfig, group_size: int):
    """GRPO (DeepSeekMath): ``(R_t - mean(R)) / (std(R) + 1e-4)`` over the prompt's valid
    samples' returns, std Bessel-corrected (TRL's ``scale_rewards='group'``).  With no KL in the
    reward ``R_t`` is the sample's score at every token: one advantage per sample."""
    del values
    to_go = reward_to_go(rewards, mask, cfg.gamma)
    mean, std = K.group_mean_std(to_go[:, 0], valid, group_size, ddof=1)
    return (to_go - mean[:, None]) / (std[:, None] + GRPO_STD_EPS) * mask, to_go


@ADVANTAGES.register("dr_grpo", group=True, whiten="none")
def dr_grpo_advantages(rewards, values, mask, valid, cfg: PPOConfig, group_size: int):
    """Dr. GRPO (Liu et al. 2025): ``R_t - mean(R)`` over the prompt's valid samples, no
    division by the std (TRL's ``scale_rewards='none'``)."""
    del values
    to_go = reward_to_go(rewards, mask, cfg.gamma)
    mean, _ = K.group_mean_std(to_go[:, 0], valid, group_size)
    return (to_go - mean[:, None]) * mask, to_go


# ---------------------------------------------------------------------------------------------
# policy-loss aggregations: (sum, count), both additive over rows


@LOSS_AGGREGATIONS.register("token_mean")
def token_mean(x: Array, mask: Array, cfg: PPOConfig) -> tuple[Array, Array]:
    """DAPO's token-level loss: every valid token of the batch weighs the same."""
    del cfg
    mask = mask.astype(jnp.float32)
    return K.masked_sum(x, mask), jnp.sum(mask)


@LOSS_AGGREGATIONS.register("seq_mean_token_mean")
def seq_mean_token_mean(x: Array, mask: Array, cfg: PPOConfig) -> tuple[Array, Array]:
    """The original GRPO's: the mean over each sequence's tokens, then the mean over sequences
    (rows with no valid token are not sequences)."""
    del cfg
    mask = mask.astype(jnp.float32)
    n = jnp.sum(mask, axis=-1)
    per_row = K.masked_sum(x, mask, axis=-1) / jnp.maximum(n, 1.0)
    return jnp.sum(per_row), jnp.sum((n > 0).astype(jnp.float32))


@LOSS_AGGREGATIONS.register("seq_mean_token_sum_norm")
def seq_mean_token_sum_norm(x: Array, mask: Array, cfg: PPOConfig) -> tuple[Array, Array]:
    """Dr. GRPO's: the sum over all tokens divided by (sequences x a constant length), the
    constant being ``ppo.loss_agg_max_len`` or, when 0, the response width ``T`` (the
    trainer's responses are ``min(rollout.max_new_tokens, data.max_target_length)`` wide: the
    generation budget, TRL's ``max_completion_length``)."""
    mask = mask.astype(jnp.float32)
    length = cfg.loss_agg_max_len or x.shape[-1]
    rows = jnp.sum((jnp.sum(mask, axis=-1) > 0).astype(jnp.float32))
    return K.masked_sum(x, mask), rows * float(length)


# ---------------------------------------------------------------------------------------------
# config helpers


def advantage_entry(cfg: PPOConfig) -> Entry:
    return ADVANTAGES.get(cfg.advantage)


def loss_aggregation(cfg: PPOConfig) -> Callable:
    return LOSS_AGGREGATIONS.get(cfg.loss_agg).fn


def whiten_mode(cfg: PPOConfig) -> str:
    """``ppo.whiten``, with ``auto`` resolved by the estimator (``batch`` for gae / rloo,
    ``none`` for grpo / dr_grpo)."""
    if cfg.whiten != "auto":
        return cfg.whiten
    return advantage_entry(cfg).meta.get("whiten", "batch")


def check_ppo_config(cfg: Config) -> None:
    """``ppo.advantage`` and ``ppo.loss_agg`` name registered functions (UserError naming the
    key and the registered names otherwise). Not in ``PPOConfig.__post_init__``, so that loading
    a config does not import jax: a run calls it when it starts (the CLI's config commands right
    after loading, ``check_trainer_config`` before a PPO run)."""
    ADVANTAGES.get(cfg.ppo.advantage)
    LOSS_AGGREGATIONS.get(cfg.ppo.loss_agg)


def check_trainer_config(cfg: Config, num_batch_shards: int = 1) -> None:
    """Cross-section checks of the algorithm and batch settings, before a PPO run starts
    (UserError); `num_batch_shards`: the mesh's data x fsdp devices the batch is split over."""
    check_ppo_config(cfg)
    if cfg.train.batch_size % num_batch_shards:
        raise UserError(
            f"config key 'train.batch_size': {cfg.train.batch_size} must be divisible by the "
            f"{num_batch_shards} data shards of the mesh"
        )
    if (cfg.train.batch_size * cfg.rollout.num_samples) % cfg.ppo.num_minibatches:
        raise UserError(
            "config key 'ppo.num_minibatches': must divide train.batch_size * rollout.num_samples"
        )
    entry = advantage_entry(cfg.ppo)
    n = cfg.rollout.num_samples
    if entry.meta.get("group") and n < 2:
        key = "ppo.baseline" if cfg.ppo.baseline == "group" else "ppo.advantage"
        raise UserError(
            f"config key {key!r}: {cfg.ppo.advantage!r} compares the samples of one prompt and "
            f"needs rollout.num_samples >= 2 samples per prompt (got {n})"
        )
    if cfg.ppo.dynamic_sampling and n < 2:
        raise UserError(
            "config key 'ppo.dynamic_sampling': needs rollout.num_samples >= 2 samples per "
            f"prompt (a group of one always has equal rewards; got {n})"
        )
