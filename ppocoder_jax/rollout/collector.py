"""`RolloutCollector`: prompts -> samples -> statistics -> rewards, one `Experience` per call.

    collector = RolloutCollector(cfg, policy, tokenizer, examples, mesh, reward, ref_params, ...)
    experience = collector.next(params)     # scored, ready for the learner
    collector.metrics                       # that batch's reward means, counts and timings

What one `next(params)` does:
  1. take the next `train.batch_size` prompts from the data stream (its position is saved in
     checkpoints, so a resumed run sees the same batches); every process knows the whole batch
     and feeds, decodes and scores only its own rows;
  2. sample `rollout.num_samples` outputs per prompt with the jitted sampler (the temperature of
     `rollout.temperature_cycle` when set), key fold_in(seed key, iteration);
  3. dispatch the statistics of the batch under the sampling parameters: the old log-probs and
     values (the sampler's own with `ppo.old_logprobs=sampler`, else one teacher-forced pass),
     the reference's log-probs and the exact KL when used (asynchronous on the device);
  4. decode and hand the programs to the reward pool (host threads), then wait for the parts;
     too many samples whose reward raised end the run (`reward.max_error_frac`).

With `train.overlap_rollouts`, step 2-4 for the batch of the next iteration run inside this
call too, with the same (not yet updated) parameters: the device samples it while the pool
scores this batch, and the pool scores it during the update. That batch waits in `pending`
(a checkpoint holds its unscored Experience: `restore_pending`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ppocoder_jax import faults
from ppocoder_jax.errors import UserError
from ppocoder_jax.ppo.experience import Experience
from ppocoder_jax.ppo.policy_apply import reference_logprobs, rollout_statistics
from ppocoder_jax.rollout.data_stream import DataStream
from ppocoder_jax.rollout.reward_columns import reward_metrics, with_rewards
from ppocoder_jax.rollout.scoring import Scoring, ThroughputMeter


def training_examples(cfg, examples: list) -> list:
    """The problems PPO samples from: with a unit-test reward, a problem without tests would
    score every program alike, so those are left out (said so)."""
    if cfg.reward.tests_weight and any(e.tests is None for e in examples):
        kept = [e for e in examples if e.tests is not None]
        print(f"PPO: skipping {len(examples) - len(kept)} training problems without tests")
        examples = kept
    if not examples:
        raise UserError(
            "the task has no training examples (with tests, when reward.tests_weight != 0)"
        )
    return examples


@dataclass
class _Sampled:
    """A sampled batch on its way to the update that learns from it."""

    iteration: int  # the update (0-based) that learns from it
    sampled_at: int  # updates the sampling parameters had had
    position: int  # data-stream position before its prompts were drawn
    examples: list  # this host's rows, rollout.num_samples per prompt
    experience: Experience  # unscored
    scoring: Scoring | None = None  # set once its programs went to the reward pool
    texts: list | None = None  # this host's outputs, when cut at stop strings


class RolloutCollector:
    def __init__(
        self,
        cfg,
        policy,
        tokenizer,
        examples,
        mesh,
        reward,
        ref_params=None,
        *,
        dtype,
        sample_key,
    ):
        from ppocoder_jax.rollout import Sampler

        self.cfg, self.policy, self.tokenizer, self.examples = cfg, policy, tokenizer, examples
        self.mesh, self.reward, self.ref_params = mesh, reward, ref_params
        self.dtype, self.sample_key = dtype, sample_key
        self.sampler = Sampler(
            policy,
            cfg.rollout,
            mesh=mesh,
            dtype=dtype,
            max_source_length=cfg.data.max_source_length,
        )
        self.stream = DataStream(len(examples), cfg.train.seed)
        self.iteration = 0  # the update the next batch is for
        self.pending: _Sampled | None = None  # train.overlap_rollouts: the next batch
        self.metrics: dict = {}
        executor = getattr(reward, "executor", None)
        self._busy_seconds = getattr(executor, "busy_seconds", lambda: 0.0)
        self._meter = ThroughputMeter(int(getattr(executor, "workers", 1)))
        self.turns = None  # rollout.turns > 1: the multi-turn runner (rollout/turns.py)
        if cfg.rollout.turns > 1:
            self.turns = self._turn_runner(executor)

    def _turn_runner(self, executor):
        from ppocoder_jax.rollout.environment import (
            CodeFeedbackEnv,
            chat_renderer,
            check_feedback_config,
        )
        from ppocoder_jax.rollout.turns import TurnRunner

        cfg = self.cfg
        check_feedback_config(cfg.rollout, self.examples)
        if cfg.train.overlap_rollouts:
            raise UserError(
                "config key 'train.overlap_rollouts': not available with rollout.turns > 1 "
                "(a batch's later turns need its earlier turns' feedback first)"
            )
        if executor is None:
            raise UserError("rollout.turns > 1 needs the sandboxed execution reward")
        env = CodeFeedbackEnv(
            executor, cfg.rollout, extract=getattr(self.reward, "extract", None),
            link=cfg.reward.link, chat=chat_renderer(cfg.data, self.tokenizer),
        )  # fmt: skip
        return TurnRunner(self, env)

    @property
    def length(self) -> int:
        return min(self.cfg.rollout.max_new_tokens, self.cfg.data.max_target_length)

    # -- one batch ----------------------------------------------------------------------------

    def next(self, params) -> Experience:
        """The scored batch update `self.iteration` learns from (sampled now with `params`, or
        waiting since the last call); samples the next one ahead under overlap."""
        if self.turns is not None:
            return self._next_turns(params)
        cfg = self.cfg
        t0 = time.perf_counter()
        batch, self.pending = self.pending, None
        if batch is None:
            batch = self._sample(params, self.iteration)
        if batch.scoring is None:
            self._submit(batch)
        ahead = None
        if cfg.train.overlap_rollouts and self.iteration + 1 < cfg.train.steps:
            ahead = self._sample(params, self.iteration + 1)
            self._submit(ahead)
        t_sampled = time.perf_counter()
        # Device work for this batch (and the next), dispatched before we block on the rewards.
        jax.block_until_ready((batch.experience, ahead.experience if ahead else None))
        t_device_done = time.perf_counter()
        parts = batch.scoring.results()
        t_rewards = time.perf_counter()
        experience = self._with_rewards(batch.experience, parts)
        self.metrics = self._reward_metrics(experience, parts)
        self.metrics["repeat_collapse_frac"] = _collapse(experience)
        # updates between the parameters that sampled the batch and this one (overlap: 1)
        self.metrics["rollout_lag"] = self.iteration - batch.sampled_at
        self._finish(batch.scoring, t0, t_sampled, t_device_done, t_rewards)
        self.pending = ahead
        return experience

    def _reward_metrics(self, experience: Experience, parts) -> dict:
        metrics, self.mean_score = reward_metrics(self.cfg, experience, parts, self.iteration)
        return metrics

    def _finish(self, scoring: Scoring, t0, t_sampled, t_device_done, t_rewards) -> None:
        """The batch's timings into the metrics, the clock for the trainer; the next iteration."""
        programs_per_s, busy_frac = self._meter.measure(scoring)
        self.metrics |= {
            # sampling (this batch, or the next one with overlap) and handing programs over
            "time_sample_s": t_sampled - t0,
            "time_rewards_s": t_rewards - t_sampled,
            # This host's programs of the batch per second of its scoring window, and the share
            # of the reward pool's workers' time spent in jobs over that window.
            "reward_programs_per_s": programs_per_s,
            "reward_busy_frac": busy_frac,
        }
        # perf_counter marks of this call, for the trainer's whole-iteration timings
        self.clock = {"start": t0, "device_done": t_device_done, "rewards_done": t_rewards}
        self.iteration += 1

    def _next_turns(self, params) -> Experience:
        """rollout.turns > 1: the batch's trajectories (rollout/turns.py), scored on the
        private tests, as one Experience of turns x B rows."""
        from ppocoder_jax.parallel.mesh import global_to_host_local, host_local_to_global
        from ppocoder_jax.rollout.turns import stack_turns, turn_metrics, turn_scores

        t0 = time.perf_counter()
        blocks, futures, info = self.turns.run(params, self.iteration)
        scoring = Scoring(futures, self._busy_seconds)
        t_sampled = time.perf_counter()
        experience = stack_turns(blocks, self.policy, self.mesh)
        jax.block_until_ready(experience)
        t_device_done = time.perf_counter()
        parts = scoring.results()
        t_rewards = time.perf_counter()
        final = self._with_rewards(blocks[0], parts)  # the trajectories' rewards, B rows
        metrics = self._reward_metrics(final, parts)
        total, valid = global_to_host_local((final.scores, final.valid))  # this host's rows
        per_turn = turn_scores(
            info, total, valid, self.cfg.rollout.turn_discount,
            self.cfg.reward.turn_shaping_weight,
        )  # fmt: skip
        scores = host_local_to_global(np.concatenate([s for s, _ in per_turn]), self.mesh)
        valids = host_local_to_global(np.concatenate([v for _, v in per_turn]), self.mesh)
        turns = len(per_turn)
        rewards = {k: jnp.tile(v, turns) for k, v in final.rewards.items()}
        experience = experience.replace(scores=scores, valid=valids, rewards=rewards)
        passed = np.asarray([p.passed for p in parts], np.float32)
        self.metrics = metrics | turn_metrics(info, passed, valid) | {"rollout_lag": 0}
        self.metrics["repeat_collapse_frac"] = _collapse(experience)
        self._finish(scoring, t0, t_sampled, t_device_done, t_rewards)
        # waiting for the public tests' feedback between turns idles the device too
        self.metrics["time_feedback_s"] = self.clock["feedback_wait_s"] = info["feedback_wait_s"]
        return experience

    def revalue(self, params, experience: Experience) -> Experience:
        """`experience` (and the batch waiting, if any) with the values of `params`: after the
        value head alone moved (ppo.value_bias_init), the log-probs stay the sampling policy's."""
        if self.pending is not None:
            waiting = self.pending.experience
            self.pending.experience = waiting.replace(values=self._values(params, waiting))
        return experience.replace(values=self._values(params, experience))

    def _values(self, params, e: Experience):
        rows = (e.prompt_ids, e.prompt_mask, e.tokens, e.token_mask)
        return rollout_statistics(
            params, self.ref_params, *rows, policy=self.policy, dtype=self.dtype, exact_kl=False
        )[1]

    def _with_rewards(self, experience: Experience, parts) -> Experience:
        names = getattr(self.reward, "column_names", None)
        return with_rewards(experience, parts, self.mesh, names() if names else None)

    # -- sampling -----------------------------------------------------------------------------

    def prompt_batch(self, examples):
        return self.sampler.prompt_arrays(
            self.sampler.encode(self.tokenizer, [e.prompt for e in examples])
        )

    def sample_arrays(
        self, params, prompt_ids, prompt_mask, key, iteration: int = 0, num_samples=None
    ):
        """The sampler's RolloutBatch for these prompts at `iteration`'s temperature."""
        r = self.cfg.rollout
        sampling = None  # the sampler's own, from the rollout config
        if r.temperature_cycle:
            from ppocoder_jax.rollout import SamplingParams

            temperature = r.temperature_cycle[iteration % len(r.temperature_cycle)]
            sampling = dataclasses.replace(
                SamplingParams.from_config(r), temperature=float(temperature)
            )
        return self.sampler.sample_arrays(
            params,
            prompt_ids,
            prompt_mask,
            key,
            sampling=sampling,
            max_new_tokens=self.length,
            num_samples=r.num_samples if num_samples is None else num_samples,
        )

    def _draw_prompts(self):
        """The next batch's prompts: (stream position before them, this host's examples with
        rollout.num_samples rows per prompt, global (prompt_ids, prompt_mask))."""
        from ppocoder_jax.parallel.mesh import host_local_to_global, process_batch_slice

        position = self.stream.position
        indices = self.stream.next_indices(self.cfg.train.batch_size)
        rows = process_batch_slice(len(indices), self.mesh)
        n = self.cfg.rollout.num_samples
        examples = [self.examples[i] for i in indices[rows] for _ in range(n)]
        prompt_ids, prompt_mask = self.prompt_batch([self.examples[i] for i in indices])
        prompts = host_local_to_global((prompt_ids[rows], prompt_mask[rows]), self.mesh)
        return position, examples, prompts

    def _sample(self, params, iteration: int) -> _Sampled:
        """Sample the batch update `iteration` learns from and dispatch its statistics under
        the same parameters (both asynchronous on the device)."""
        from ppocoder_jax.parallel.mesh import batch_sharding

        position, examples, prompts = self._draw_prompts()
        key = jax.random.fold_in(self.sample_key, iteration)
        out = self.sample_arrays(params, *prompts, key, iteration)
        faults.point("sample", iteration + 1)
        texts = None
        if self.cfg.rollout.stop:  # rows end at a stop string: the mask before the statistics
            out, texts = self._cut_at_stops(out)
        # split along the batch as the learner's inputs are (the sampler's output is not)
        rows = [out.prompt_ids, out.prompt_mask, out.tokens, out.token_mask]
        rows = [jax.device_put(x, batch_sharding(self.mesh, x.ndim)) for x in rows]
        experience = self._statistics(params, *rows, sampled=out)
        return _Sampled(iteration, self.iteration, position, examples, experience, texts=texts)

    def _cut_at_stops(self, out):
        """The sampler's output with rows ended at their stop string (waits for sampling):
        mask, sampler log-probs and values 0 after it; and this host's texts."""
        from ppocoder_jax.parallel.mesh import global_to_host_local, host_local_to_global

        tokens, token_mask = global_to_host_local((out.tokens, out.token_mask))
        mask, texts = self.sampler.cut_at_stops(self.tokenizer, tokens, token_mask)
        mask = host_local_to_global(np.asarray(mask, np.int32), self.mesh)
        keep = mask.astype(out.logprobs.dtype)
        cut = out._replace(
            token_mask=mask,
            logprobs=out.logprobs * keep,
            values=out.values * keep,
            lengths=mask.sum(axis=1),
        )
        return cut, list(texts)

    def _statistics(self, params, prompt_ids, prompt_mask, tokens, token_mask, sampled):
        """The unscored Experience of the rows under `params`. With ppo.old_logprobs=sampler
        (and no exact KL, which needs the policy's pass) the sampler's log-probs and values are
        the policy's and only the reference runs."""
        from ppocoder_jax.parallel.mesh import batch_sharding

        rows = (prompt_ids, prompt_mask, tokens, token_mask)
        exact_kl = self.cfg.kl.estimator == "exact"
        if self.cfg.ppo.old_logprobs == "sampler" and not exact_kl:
            logprobs, values = (
                jax.device_put(x, batch_sharding(self.mesh, x.ndim))
                for x in (sampled.logprobs, sampled.values)
            )
            ref_logprobs = logprobs  # no reference (no KL): as rollout_statistics
            if self.ref_params is not None:
                ref_logprobs = reference_logprobs(
                    self.ref_params, *rows, policy=self.policy, dtype=self.dtype
                )
            return Experience(*rows, logprobs, values, ref_logprobs, None)
        stats = rollout_statistics(
            params,
            self.ref_params,
            *rows,
            policy=self.policy,
            dtype=self.dtype,
            exact_kl=exact_kl,
        )
        return Experience(*rows, *stats)

    def _submit(self, batch: _Sampled) -> None:
        """Decode the batch (waits for its sampling) and hand its programs to the reward pool."""
        from ppocoder_jax.parallel.mesh import global_to_host_local

        outputs = batch.texts
        if outputs is None:
            e = batch.experience
            tokens, token_mask = global_to_host_local((e.tokens, e.token_mask))
            # (a batch restored from a checkpoint is already cut: this finds the same stop)
            _, outputs = self.sampler.cut_at_stops(self.tokenizer, tokens, token_mask)
        batch.scoring = Scoring(self.reward.submit(batch.examples, outputs), self._busy_seconds)
        faults.point("rewards", batch.iteration + 1)

    # -- checkpointing ------------------------------------------------------------------------

    def position_state(self) -> dict:
        """The data position a checkpoint records: the one after the last batch learned from
        (a waiting batch's prompts are drawn again on resume)."""
        if self.pending is not None:
            return {"position": self.pending.position, "pending": True}
        return {"position": self.stream.position}

    def waiting_experience(self) -> Experience | None:
        return None if self.pending is None else self.pending.experience.unscored()

    def restore(self, position: int, iteration: int) -> None:
        """Continue from a checkpoint: the stream at `position`, the next batch for update
        `iteration`."""
        self.stream.position = position
        self.iteration = iteration

    def restore_waiting(self, waiting: Experience) -> None:
        """The batch a checkpoint held sampled but not learned from: its prompts are drawn
        again from the stream (same position), and it is scored anew."""
        position, examples, _ = self._draw_prompts()
        it = self.iteration
        self.pending = _Sampled(it, it - 1, position, examples, waiting)

    def waiting_target(self):
        """The shapes and shardings of the batch a checkpoint holds (restore target): its
        prompts are drawn from the stream's current position to learn their padded width."""
        from ppocoder_jax.parallel.mesh import batch_sharding
        from ppocoder_jax.ppo.experience import abstract_unscored

        saved = self.stream.position
        _, _, prompts = self._draw_prompts()
        self.stream.position = saved
        rows = prompts[0].shape[0] * self.cfg.rollout.num_samples
        exact_kl = self.cfg.kl.estimator == "exact"
        sharding = batch_sharding(self.mesh, 2)
        return abstract_unscored(rows, prompts[0].shape[1], self.length, exact_kl, sharding)


def _collapse(experience: Experience) -> float:
    """The batch's share of samples collapsed into one repeated token (rollout/degeneration.py)."""
    from ppocoder_jax.rollout.degeneration import repeat_collapse_frac

    return float(repeat_collapse_frac(experience.tokens, experience.token_mask))
