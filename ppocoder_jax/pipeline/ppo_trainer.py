"""The PPO loop: collect a scored batch, learn from it, log, checkpoint; resume and preemption.

    experience = collector.next(state.params)          # rollout/collector.py
    state, metrics = learner.learn(state, experience)  # ppo/learner.py

The collector owns the data stream, sampling, the statistics pass, the reward pool and the
overlap (`train.overlap_rollouts`: the next batch is sampled with the parameters before this
update and waits in the collector); the learner owns the train state and the update. This
module only runs them in turn and saves (state, data position, the batch waiting) so that a
resumed run learns from the same batches an uninterrupted run does.

The reference policy is the starting parameters, written once to `<run_dir>/reference_model`
(checkpoint/reference.py) so that a resumed run uses the same frozen copy.

With LoRA (`model.lora.rank > 0`, model/lora.py) those starting parameters are the frozen base:
the learner holds them once on the devices, the train state (and every checkpoint) holds only
the adapters and the value head, and the reference is the same base buffers with the adapters
off: no second copy.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
from tqdm import tqdm

from ppocoder_jax import faults
from ppocoder_jax.config import Config, to_dict
from ppocoder_jax.errors import UserError
from ppocoder_jax.model.common import compute_dtype
from ppocoder_jax.model.families import as_policy
from ppocoder_jax.model.lora import ADAPTERS, LoraPolicy, lora_reference, lora_start, with_lora


class PPOTrainer:
    def __init__(
        self, cfg: Config, params, model_cfg, tokenizer, train_examples, run_dir, logger, reward
    ):
        from ppocoder_jax.checkpoint.manager import CheckpointManager
        from ppocoder_jax.checkpoint.reference import load_reference, save_reference
        from ppocoder_jax.parallel.mesh import make_mesh, num_batch_shards
        from ppocoder_jax.ppo.learner import PPOLearner
        from ppocoder_jax.ppo.registry import check_trainer_config
        from ppocoder_jax.ppo.train_step import uses_reference
        from ppocoder_jax.rollout.collector import RolloutCollector, training_examples

        examples = training_examples(cfg, train_examples)
        self.cfg, self.run_dir, self.logger = cfg, Path(run_dir), logger
        policy = with_lora(as_policy(model_cfg, remat=cfg.model.remat), cfg.model.lora)
        dtype = compute_dtype(cfg)
        self.mesh = make_mesh(cfg.mesh)
        check_trainer_config(cfg, num_batch_shards(self.mesh))
        self.sample_key, state_key = jax.random.split(jax.random.PRNGKey(cfg.train.seed))
        self.learner = PPOLearner(cfg, policy, self.mesh, dtype)
        params = jax.device_get(params)  # host arrays (load_model / load_policy give these)
        save_reference(self.run_dir, params, model_cfg, tokenizer)
        self.ckpt = CheckpointManager(
            self.run_dir / "checkpoints", max_to_keep=cfg.train.keep_checkpoints
        )
        resuming = self.ckpt.latest_step() is not None
        self.lora = isinstance(policy, LoraPolicy)
        if self.lora:  # the base: the run's own copy on resume
            base = load_reference(self.run_dir) if resuming else params
            frozen, params = lora_start(policy, base, cfg.model.lora, self.sample_key)
            del base
            self.learner.place_frozen_part(frozen)
        self._abstract_state = self.learner.abstract_state(params, state_key)
        # No KL (kl.mode=none or beta 0): no reference on the device and no reference forward.
        ref_params = None
        if uses_reference(cfg.kl) and self.lora:
            # the same base buffers, adapters off (the value head is not read for log-probs)
            ref_params = lora_reference(self.learner.frozen, params, self.learner.shardings.params)
        elif uses_reference(cfg.kl):
            ref_params = self.learner.place_frozen(
                load_reference(self.run_dir) if resuming else params
            )
        self.state = None if resuming else self.learner.init_state(params, state_key)
        del params
        self.collector = RolloutCollector(
            cfg, policy, tokenizer, examples, self.mesh, reward, ref_params,
            dtype=dtype, sample_key=self.sample_key,
        )  # fmt: skip
        self.iteration = 0
        self._saved_iteration = None  # the iteration of the newest checkpoint (None: none yet)
        try:
            self._maybe_resume()
        except UserError:  # e.g. a checkpoint of other adapters: close Orbax's threads first
            self.ckpt.close()
            raise
        # Rows a killed run logged after its last checkpoint are logged again from here.
        if self.logger is not None:
            self.logger.rewind("ppo", self.iteration)

    # -- checkpoints --------------------------------------------------------------------------

    def _maybe_resume(self) -> None:
        step = self.ckpt.latest_step()
        if step is None:
            return
        # Orbax reads each device's shards straight into the target shardings.
        restored = self._restore("", lambda: self.ckpt.restore(self._abstract_state))
        self.state = restored.state
        self.iteration = self._saved_iteration = int(restored.data_state["iteration"])
        self.collector.restore(int(restored.data_state["position"]), self.iteration)
        if restored.data_state.get("pending"):
            target = self.collector.waiting_target()
            waiting = self._restore(
                "the sampled batch in ", lambda: self.ckpt.restore_rollout(restored.step, target)
            )
            self.collector.restore_waiting(waiting)
        print(f"resumed from {self.ckpt.directory} at iteration {self.iteration}")

    def _restore(self, what: str, restore):
        try:
            return restore()
        except (ValueError, FileNotFoundError) as err:
            first = str(err).strip().splitlines()[0]
            raise UserError(
                f"{what}checkpoint in {self.ckpt.directory} does not fit this configuration "
                f"(did the model, optimizer, rollout, data or kl settings change? compare its "
                f"config.yaml): {first}"
            ) from None

    def save(self) -> None:
        import yaml

        self.ckpt.save(
            self.iteration,
            self.state,
            data_state={**self.collector.position_state(), "iteration": self.iteration},
            config_yaml=yaml.safe_dump(to_dict(self.cfg), sort_keys=False),
            rollout=self.collector.waiting_experience(),
        )
        self._saved_iteration = self.iteration
        faults.point("saved", self.iteration)

    # -- one iteration ------------------------------------------------------------------------

    def run_iteration(self) -> dict:
        experience = self.collector.next(self.learner.policy_params(self.state))
        if self.learner.resets_value_bias(self.iteration):
            self.state = self.learner.init_value_bias(self.state, self.collector.mean_score)
            # the value head only moved: new values, the log-probs stay the sampling policy's
            experience = self.collector.revalue(self.learner.policy_params(self.state), experience)
        faults.point("update", self.iteration + 1)
        self.state, learned = self.learner.learn(self.state, experience, self.iteration)
        t_end = time.perf_counter()
        clock = self.collector.clock
        self.iteration += 1
        return {
            **self.collector.metrics,
            **learned,
            "time_update_s": t_end - clock["rewards_done"],
            # Share of the iteration the device sat idle waiting for the reward threads (and,
            # with several turns, for the feedback between them).
            "reward_wait_frac": (
                clock["rewards_done"] - clock["device_done"] + clock.get("feedback_wait_s", 0.0)
            )
            / max(t_end - clock["start"], 1e-9),
        }

    def train(self, stop=None) -> bool:
        """Run to train.steps; True when done. `stop()` (e.g. a PreemptionGuard) is polled
        after each iteration's update: once it says so, a checkpoint of the iteration reached
        is written and waited for, and train returns False (the run resumes from it; with
        train.overlap_rollouts the checkpoint holds the batch already sampled for the next
        update, whose reward jobs still finish before the reward pool closes)."""
        cfg = self.cfg
        progress = tqdm(
            total=cfg.train.steps, initial=self.iteration, desc="ppo", unit="it", mininterval=2.0
        )
        try:
            while self.iteration < cfg.train.steps:
                if stop is not None and stop():
                    if self._saved_iteration != self.iteration and self.iteration > 0:
                        self.save()
                    self.ckpt.wait_until_finished()
                    return False
                metrics = self.run_iteration()
                progress.update(1)
                progress.set_postfix(
                    score=f"{metrics['score']:.2f}",
                    pass_=f"{metrics['pass_rate']:.2f}",
                    kl=f"{metrics['kl']:.2f}",
                )
                if self.iteration % cfg.train.log_every == 0:
                    self.logger.log("ppo", self.iteration, metrics)
                if self.iteration % cfg.train.save_every == 0 or self.iteration == cfg.train.steps:
                    self.save()
        finally:
            progress.close()
            self.ckpt.close()
        return True

    def params(self):
        """The policy's parameters in its family's layout (LoRA: base + adapters merged)."""
        params = self.learner.policy_params(self.state)
        if self.lora:
            params = jax.jit(self.learner.policy.resolve)(params)
        return jax.device_get(params)

    def adapters(self):
        """LoRA's adapters (host arrays), None without LoRA."""
        return jax.device_get(self.state.params[ADAPTERS]) if self.lora else None


def summarize(metrics: dict) -> str:
    return json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})
