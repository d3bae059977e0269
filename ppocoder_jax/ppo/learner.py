"""`PPOLearner`: the train state and what one scored `Experience` does to it.

    learner = PPOLearner(cfg, policy, mesh, dtype)
    state = learner.init_state(host_params, key)      # built straight into its shardings
    state, metrics = learner.learn(state, experience, iteration)

`learn` runs the KL-penalised rewards -> advantages (`ppo.advantage`) -> whitening,
`ppo_epochs x num_minibatches` jitted optimizer steps (the value head alone during
`ppo.value_warmup_iters`), and the KL controller. `init_value_bias` sets the value head's bias
to the first batch's mean score (`ppo.value_bias_init=mean_score`). Model-free: the policy
enters through `Policy` methods and `make_apply_fn`.

Frozen parameters (LoRA's base): `place_frozen_part(host_frozen)` puts a dict of parameters on
the devices in the policy's shardings; the train state then holds only what trains (adapters
and value head), every step reads `{**state.params, **frozen}`, and `policy_params(state)` is
that same dict (no copy) for the sampler and the statistics.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ppocoder_jax.ppo.experience import Experience
from ppocoder_jax.ppo.policy_apply import make_apply_fn


class PPOLearner:
    def __init__(self, cfg, policy, mesh, dtype):
        from ppocoder_jax.ppo.state import make_optimizer

        self.cfg, self.policy, self.mesh, self.dtype = cfg, policy, mesh, dtype
        total_updates = max(cfg.train.steps, 1) * cfg.ppo.ppo_epochs * cfg.ppo.num_minibatches
        self.tx = make_optimizer(cfg.optim, total_updates)
        self.shardings = None  # the TrainState's, once init_state or abstract_state ran
        self._steps = None
        self._part_steps = None  # rollout.turns > 1: (full, head, width rule)
        self.frozen = None  # frozen parameters every step reads (LoRA's base), or None
        self.frozen_shardings = None
        self.skipped_in_row = 0  # optimizer steps skipped for a non-finite loss or gradient

    # -- the state ----------------------------------------------------------------------------

    def _build(self, params, key):
        from ppocoder_jax.ppo.state import init_train_state

        return init_train_state(params, self.tx, self.cfg.kl, key)

    def abstract_state(self, host_params, key):
        """The TrainState's shapes with their shardings (the restore target of a checkpoint)."""
        from ppocoder_jax.checkpoint.manager import abstract_with_shardings
        from ppocoder_jax.ppo.state import train_state_shardings

        abstract = jax.eval_shape(self._build, host_params, key)
        if self.shardings is None:
            axes = self.policy.param_logical_axes(host_params)
            self.shardings = train_state_shardings(abstract, axes, self.mesh, self.tx)
        return abstract_with_shardings(abstract, self.shardings)

    def init_state(self, host_params, key):
        """The one constructor of the train state: each device only ever receives its own
        shards of the parameters and the optimizer state (no whole copy on one device, which
        is what FSDP exists to avoid)."""
        self.abstract_state(host_params, key)
        placed = jax.device_put(host_params, self.shardings.params)
        return jax.jit(self._build, out_shardings=self.shardings)(placed, key)

    def place_frozen(self, host_params):
        """A device copy of host parameters in the policy's shardings that shares no buffer
        with anything else (the train step donates the state's buffers): the reference."""
        shardings = self.shardings.params
        placed = jax.device_put(host_params, shardings)
        copy = jax.jit(lambda p: jax.tree.map(jnp.copy, p), out_shardings=shardings)
        return copy(placed)

    def place_frozen_part(self, host_frozen):
        """Frozen parameters (e.g. {"base": backbone}) placed once in the policy's shardings;
        every train step and `policy_params` read them, nothing writes them."""
        from ppocoder_jax.parallel.rules import logical_to_shardings

        axes = self.policy.param_logical_axes(host_frozen)
        self.frozen_shardings = logical_to_shardings(axes, self.mesh, shapes=host_frozen)
        self.frozen = jax.device_put(host_frozen, self.frozen_shardings)
        self._steps = self._part_steps = None
        return self.frozen

    def policy_params(self, state):
        """What the policy's methods take: the state's params with the frozen part beside."""
        if self.frozen is None:
            return state.params
        return {**state.params, **self.frozen}

    # -- learning -----------------------------------------------------------------------------

    def _train_steps(self):
        """(policy + value step, value-head-only step), built once the shardings are known."""
        if self._steps is None:
            from ppocoder_jax.ppo.train_step import build_train_step

            cfg = self.cfg
            full = build_train_step(
                make_apply_fn(self.policy, self.dtype),
                self.tx,
                cfg.ppo,
                self.mesh,
                self.shardings,
                kl_cfg=cfg.kl,
                frozen_shardings=self.frozen_shardings,
            )
            head = build_train_step(
                make_apply_fn(self.policy, self.dtype, head_only=True),
                self.tx,
                cfg.ppo,
                self.mesh,
                self.shardings,
                value_only=True,
                frozen_shardings=self.frozen_shardings,
            )
            self._steps = (full, head)
            if cfg.rollout.turns > 1:
                self._part_steps = self._build_part_steps()
        return self._steps

    def _build_part_steps(self):
        """Multi-turn batches: (policy + value, value head only) steps that train every row
        at its own prompt width (`ppo/width_parts.py`), and the width rule (the sampler's)."""
        from ppocoder_jax.ppo.width_parts import PartSteps
        from ppocoder_jax.rollout.bucketed_sampler import bucket_length

        cfg = self.cfg
        common = dict(pad_side=self.policy.pad_side, frozen_shardings=self.frozen_shardings)
        full = PartSteps(make_apply_fn(self.policy, self.dtype), self.tx, cfg.ppo, self.mesh,
                         self.shardings, kl_cfg=cfg.kl, **common)  # fmt: skip
        head = PartSteps(make_apply_fn(self.policy, self.dtype, head_only=True), self.tx,
                         cfg.ppo, self.mesh, self.shardings, value_only=True, **common)  # fmt: skip
        buckets, cap = cfg.rollout.length_buckets, cfg.data.max_source_length
        return full, head, lambda n: bucket_length(n, buckets, max(cap, n))

    def resets_value_bias(self, iteration: int) -> bool:
        return iteration == 0 and self.cfg.ppo.value_bias_init == "mean_score"

    def init_value_bias(self, state, mean_score: float):
        """The value head's bias set to the first batch's mean score (the values of the batches
        already sampled must then be recomputed: `RolloutCollector.revalue`)."""
        return state.replace(params=self.policy.with_value_bias(state.params, mean_score))

    def learn(self, state, experience: Experience, iteration: int):
        """One iteration's update from a scored batch -> (state, metrics)."""
        from ppocoder_jax.ppo.train_step import learn_from_experience

        full, head = self._train_steps()
        warmup = iteration < self.cfg.ppo.value_warmup_iters
        update_fn = None
        if self._part_steps is not None:  # every row at its own prompt width
            from ppocoder_jax.ppo.width_parts import update_by_width

            part_full, part_head, width_of = self._part_steps
            update_fn = functools.partial(
                update_by_width, steps=part_head if warmup else part_full, width_of=width_of,
                cfg=self.cfg.ppo, frozen=self.frozen,
            )  # fmt: skip
        state, adv, update = learn_from_experience(
            state,
            head if warmup else full,
            experience,
            ppo_cfg=self.cfg.ppo,
            kl_cfg=self.cfg.kl,
            group_size=self.cfg.rollout.num_samples,
            frozen=self.frozen,
            update=update_fn,
        )
        skipped = update.pop("skipped_steps")
        self._check_skipped(skipped, iteration)
        metrics = {
            "score": float(adv["mean_score"]),
            "kl": float(adv["mean_kl"]),
            "mean_length": float(adv["mean_length"]),
            "explained_variance": float(adv["explained_variance"]),
            "value_warmup": int(warmup),
            "skipped_updates": sum(skipped),
            **update,
        }
        return state, metrics

    def _check_skipped(self, skipped: list[bool], iteration: int) -> None:
        """Skipped steps are said; `train.max_skipped_updates` of them in a row end the run."""
        for was_skipped in skipped:
            self.skipped_in_row = self.skipped_in_row + 1 if was_skipped else 0
            bound = self.cfg.train.max_skipped_updates
            if self.skipped_in_row >= bound:
                from ppocoder_jax.errors import UserError

                raise UserError(
                    f"PPO iteration {iteration}: {self.skipped_in_row} optimizer steps in a row "
                    f"had a non-finite loss or gradient and were skipped (train.max_skipped_"
                    f"updates={bound}); the parameters were never changed by them. Check the "
                    "rewards (metrics.jsonl) and the learning rate"
                )
        if any(skipped):
            print(
                f"PPO iteration {iteration}: skipped {sum(skipped)} of {len(skipped)} optimizer "
                "steps (non-finite loss or gradient)"
            )
