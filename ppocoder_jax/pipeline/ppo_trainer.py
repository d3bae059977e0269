"""The PPO loop: sample on device, score on host threads, update on device, checkpoint.

One iteration:
  1. take the next `train.batch_size` prompts from the data stream (position saved in
     checkpoints, so a resumed run sees the same batches);
  2. sample outputs with the jitted sampler (device);
  3. hand the decoded programs to the reward threads (compilers, tests, matching) and, while
     they run, let the device compute teacher-forced log-probs, values, reference log-probs and
     the exact per-token KL for the same batch (JAX dispatch is asynchronous);
  4. KL-penalised rewards -> GAE -> whitening -> `ppo_epochs x num_minibatches` jitted steps;
  5. advance the KL controller; log; save every `train.save_every` iterations.

With `train.overlap_rollouts`, step 2 for batch k+1 runs during iteration k, right after batch
k's programs went to the reward pool and before update k: batch k+1 is sampled with the
parameters before update k, its teacher-forced statistics (old log-probs, values, reference
log-probs, KL) are computed with those same parameters (the behaviour policy), and its programs
are handed to the reward pool behind batch k's, so the pool scores while the device updates and
samples. A checkpoint holds that sampled-but-unlearned batch (its tokens and statistics, the
`rollout` item), so a resumed run learns from the same batch an uninterrupted run does.

The reference policy is the starting parameters, written once to `<run_dir>/reference_model`
so that a resumed run uses the same frozen copy.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from ppocoder_jax.config import Config, to_dict
from ppocoder_jax.data import Example
from ppocoder_jax.errors import UserError
from ppocoder_jax.model.policy import as_policy
from ppocoder_jax.pipeline import faults
from ppocoder_jax.ppo.policy_apply import make_apply_fn, reference_logprobs, rollout_statistics

REFERENCE_DIR = "reference_model"


def compute_dtype(cfg: Config):
    return jnp.bfloat16 if cfg.model.compute_dtype == "bfloat16" else jnp.float32


@dataclass
class DataStream:
    """Deterministic order over the training examples: epoch e is permutation(seed, e)."""

    n: int
    seed: int
    position: int = 0

    def next_indices(self, batch_size: int) -> np.ndarray:
        out = []
        while len(out) < batch_size:
            epoch, offset = divmod(self.position, self.n)
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            take = min(batch_size - len(out), self.n - offset)
            out.extend(perm[offset : offset + take].tolist())
            self.position += take
        return np.asarray(out)


class _Rows(NamedTuple):
    """A sampled batch's device arrays: B = prompts x rollout.num_samples rows."""

    prompt_ids: Any  # [B, S]
    prompt_mask: Any  # [B, S]
    tokens: Any  # [B, T]
    token_mask: Any  # [B, T]


class _Scoring:
    """One batch's reward futures, timed: when they were handed over and when the last one came
    back, each with the reward pool's busy seconds at that moment."""

    def __init__(self, futures: list, busy_seconds):
        self.futures = futures
        self._busy_seconds = busy_seconds
        self.submitted = (time.perf_counter(), busy_seconds())
        self.done: tuple[float, float] | None = None
        self._all_done = threading.Event()
        self._left = len(futures)
        self._lock = threading.Lock()
        if not futures:
            self._finish()
        for future in futures:
            future.add_done_callback(self._one_done)

    def _one_done(self, _future) -> None:
        with self._lock:
            self._left -= 1
            if self._left:
                return
        self._finish()

    def _finish(self) -> None:
        self.done = (time.perf_counter(), self._busy_seconds())
        self._all_done.set()

    def results(self) -> list:
        parts = [f.result() for f in self.futures]
        self._all_done.wait()  # the done callbacks run just after result() returns
        return parts


@dataclass
class _Batch:
    """A sampled batch on its way to the update that learns from it."""

    iteration: int  # the update (0-based) that learns from it
    sampled_at: int  # updates the sampling parameters had had
    position: int  # data-stream position before its prompts were drawn
    examples: list  # this host's rows, rollout.num_samples per prompt
    rows: _Rows
    stats: tuple  # (logprobs, values, ref_logprobs, exact KL | None) of the sampling parameters
    scoring: _Scoring | None = None  # set once its programs went to the reward pool


class PPOTrainer:
    def __init__(
        self,
        cfg: Config,
        params,
        model_cfg,
        tokenizer,
        train_examples: list[Example],
        run_dir: Path,
        logger,
        reward,
    ):
        from ppocoder_jax.checkpoint.manager import CheckpointManager
        from ppocoder_jax.parallel.mesh import make_mesh, num_batch_shards
        from ppocoder_jax.ppo.state import init_train_state, make_optimizer, train_state_shardings
        from ppocoder_jax.ppo.train_step import build_train_step

        if cfg.reward.tests_weight and any(e.tests is None for e in train_examples):
            # With a unit-test reward, a problem without tests scores every program alike.
            kept = [e for e in train_examples if e.tests is not None]
            print(
                f"PPO: skipping {len(train_examples) - len(kept)} training problems without tests"
            )
            train_examples = kept
        if not train_examples:
            raise UserError(
                "the task has no training examples (with tests, when reward.tests_weight != 0)"
            )
        self.cfg, self.model_cfg, self.tokenizer = cfg, model_cfg, tokenizer
        self.policy = as_policy(model_cfg, remat=cfg.model.remat)
        self.examples = train_examples
        self.run_dir, self.logger, self.reward = Path(run_dir), logger, reward
        self.dtype = compute_dtype(cfg)
        self.mesh = make_mesh(cfg.mesh)
        shards = num_batch_shards(self.mesh)
        if cfg.train.batch_size % shards:
            raise UserError(
                f"config key 'train.batch_size': {cfg.train.batch_size} must be divisible by the {shards} data shards of the mesh"
            )
        from ppocoder_jax.ppo.registry import check_trainer_config
        from ppocoder_jax.ppo.train_step import uses_reference

        check_trainer_config(cfg)  # group estimators / dynamic sampling need >= 2 samples
        rows = cfg.train.batch_size * cfg.rollout.num_samples
        if rows % cfg.ppo.num_minibatches:
            raise UserError(
                "config key 'ppo.num_minibatches': must divide train.batch_size * rollout.num_samples"
            )
        total_updates = max(cfg.train.steps, 1) * cfg.ppo.ppo_epochs * cfg.ppo.num_minibatches
        self.tx = make_optimizer(cfg.optim, total_updates)
        rng = jax.random.PRNGKey(cfg.train.seed)
        self.sample_key, state_key = jax.random.split(rng)

        # Everything on the devices is created or loaded straight into its shardings: each
        # device only ever receives its own shards of the parameters, the optimizer state and
        # the reference (no whole copy on one device, which is what FSDP exists to avoid).
        params = jax.device_get(params)  # host arrays (load_model / load_policy give these)
        self._save_reference(params)

        def build(p, key):
            return init_train_state(p, self.tx, cfg.kl, key)

        self._abstract_state = jax.eval_shape(build, params, state_key)
        self.shardings = train_state_shardings(
            self._abstract_state, self.policy.param_logical_axes(params), self.mesh, self.tx
        )
        self.ckpt = CheckpointManager(
            self.run_dir / "checkpoints", max_to_keep=cfg.train.keep_checkpoints
        )
        resuming = self.ckpt.latest_step() is not None
        # No KL (kl.mode=none or beta 0): no reference on the device and no reference forward.
        # The reference is its own device copy (the train step donates the state's buffers).
        self.ref_params = None
        if uses_reference(cfg.kl):
            self.ref_params = self._place(self._load_reference() if resuming else params)
        self.state = None  # restored below when resuming
        if not resuming:
            placed = jax.device_put(params, self.shardings.params)
            self.state = jax.jit(build, out_shardings=self.shardings)(placed, state_key)
            del placed
        del params
        apply_fn = make_apply_fn(self.policy, self.dtype)
        self.train_step = build_train_step(
            apply_fn, self.tx, cfg.ppo, self.mesh, self.shardings, kl_cfg=cfg.kl
        )
        self.value_step = build_train_step(
            make_apply_fn(self.policy, self.dtype, head_only=True),
            self.tx,
            cfg.ppo,
            self.mesh,
            self.shardings,
            value_only=True,
        )
        from ppocoder_jax.rollout import Sampler

        self.sampler = Sampler(
            self.policy,
            cfg.rollout,
            mesh=self.mesh,
            dtype=self.dtype,
            max_source_length=cfg.data.max_source_length,
        )
        self.stream = DataStream(len(train_examples), cfg.train.seed)
        self.iteration = 0
        self._saved_iteration = None  # the iteration of the newest checkpoint (None: none yet)
        # train.overlap_rollouts: the next batch, sampled before the last update (None: none)
        self._pending: _Batch | None = None
        self._last_scoring: _Scoring | None = None
        executor = getattr(reward, "executor", None)
        self._busy_seconds = getattr(executor, "busy_seconds", lambda: 0.0)
        self._reward_workers = int(getattr(executor, "workers", 1))
        self._maybe_resume()
        # Rows a killed run logged after its last checkpoint are logged again from here.
        if self.logger is not None:
            self.logger.rewind("ppo", self.iteration)

    # -- reference / resume -------------------------------------------------------------------

    def _save_reference(self, params) -> None:
        from ppocoder_jax.model import save_model

        path = self.run_dir / REFERENCE_DIR
        if not path.exists() and jax.process_index() == 0:
            # Written beside, then renamed: a run killed mid-write leaves no half reference.
            import shutil

            tmp = path.with_name(path.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            save_model(tmp, jax.device_get(params), self.model_cfg, self.tokenizer)
            tmp.rename(path)

    def _load_reference(self):
        from ppocoder_jax.model import load_model

        params, _, _ = load_model(str(self.run_dir / REFERENCE_DIR))
        return params

    def _place(self, host_params):
        """A fresh device copy of host parameters in the policy's shardings (each device gets
        its shards only), sharing no buffer with anything else."""
        shardings = self.shardings.params
        placed = jax.device_put(host_params, shardings)
        copy = jax.jit(lambda p: jax.tree.map(jnp.copy, p), out_shardings=shardings)
        return copy(placed)

    def _maybe_resume(self) -> None:
        from ppocoder_jax.checkpoint.manager import abstract_with_shardings

        if self.ckpt.latest_step() is None:
            return
        # Orbax reads each device's shards straight into the target shardings.
        target = abstract_with_shardings(self._abstract_state, self.shardings)
        try:
            restored = self.ckpt.restore(target)
        except ValueError as err:
            first = str(err).strip().splitlines()[0]
            raise UserError(
                f"checkpoint in {self.ckpt.directory} does not fit this configuration (did the "
                f"model, optimizer or preset change? compare its config.yaml): {first}"
            ) from None
        self.state = restored.state
        self.stream.position = int(restored.data_state["position"])
        self.iteration = int(restored.data_state["iteration"])
        self._saved_iteration = self.iteration
        if restored.data_state.get("pending"):
            self._pending = self._restore_pending(restored.step)
        print(f"resumed from {self.ckpt.directory} at iteration {self.iteration}")

    def _restore_pending(self, step: int) -> _Batch:
        """The batch a checkpoint holds sampled but not learned from: its prompts are drawn
        from the data stream again (same position), its tokens and statistics are read back."""
        from ppocoder_jax.parallel.mesh import batch_sharding

        position, examples, prompts = self._draw_prompts()
        n = self.cfg.rollout.num_samples
        rows, width = prompts[0].shape[0] * n, prompts[0].shape[1]
        length = min(self.cfg.rollout.max_new_tokens, self.cfg.data.max_target_length)
        sharding = batch_sharding(self.mesh, 2)

        def spec(cols, dtype):
            return jax.ShapeDtypeStruct((rows, cols), dtype, sharding=sharding)

        target = {k: spec(width, jnp.int32) for k in ("prompt_ids", "prompt_mask")}
        target |= {k: spec(length, jnp.int32) for k in ("tokens", "token_mask")}
        stats = ["logprobs", "values", "ref_logprobs"]
        stats += ["exact_kl"] if self.cfg.kl.estimator == "exact" else []
        target |= {k: spec(length, jnp.float32) for k in stats}
        try:
            saved = self.ckpt.restore_rollout(step, target)
        except (ValueError, FileNotFoundError) as err:
            first = str(err).strip().splitlines()[0]
            raise UserError(
                f"the sampled batch in checkpoint {step} of {self.ckpt.directory} does not fit "
                f"this configuration (did rollout, data or kl settings change?): {first}"
            ) from None
        return _Batch(
            iteration=self.iteration,
            sampled_at=self.iteration - 1,
            position=position,
            examples=examples,
            rows=_Rows(*(saved[k] for k in _Rows._fields)),
            stats=(
                saved["logprobs"],
                saved["values"],
                saved["ref_logprobs"],
                saved.get("exact_kl"),
            ),
        )

    def save(self) -> None:
        import yaml

        # The data position is the one after the last batch learned from; a batch already
        # sampled for the next update is saved beside the state and its prompts drawn again.
        pending, rollout = self._pending, None
        data_state = {"position": self.stream.position, "iteration": self.iteration}
        if pending is not None:
            data_state.update(position=pending.position, pending=True)
            logprobs, values, ref_logprobs, exact_kl = pending.stats
            rollout = dict(pending.rows._asdict(), logprobs=logprobs, values=values)
            rollout["ref_logprobs"] = ref_logprobs
            if exact_kl is not None:
                rollout["exact_kl"] = exact_kl
        self.ckpt.save(
            self.iteration,
            self.state,
            data_state=data_state,
            config_yaml=yaml.safe_dump(to_dict(self.cfg), sort_keys=False),
            rollout=rollout,
        )
        self._saved_iteration = self.iteration
        faults.point("saved", self.iteration)

    # -- one iteration ------------------------------------------------------------------------

    def _prompt_batch(self, examples: list[Example]):
        return self.sampler.prompt_arrays(
            self.sampler.encode(self.tokenizer, [e.prompt for e in examples])
        )

    def _sample(self, prompt_ids, prompt_mask, key, iteration: int = 0):
        r = self.cfg.rollout
        sampling = None  # the sampler's own, from the rollout config
        if r.temperature_cycle:
            from ppocoder_jax.rollout import SamplingParams

            temperature = r.temperature_cycle[iteration % len(r.temperature_cycle)]
            sampling = dataclasses.replace(
                SamplingParams.from_config(r), temperature=float(temperature)
            )
        return self.sampler.sample_arrays(
            self.state.params,
            prompt_ids,
            prompt_mask,
            key,
            sampling=sampling,
            max_new_tokens=min(r.max_new_tokens, self.cfg.data.max_target_length),
            num_samples=r.num_samples,
        )

    def _draw_prompts(self):
        """The next batch's prompts: (stream position before them, this host's examples with
        rollout.num_samples rows per prompt, global (prompt_ids, prompt_mask))."""
        from ppocoder_jax.parallel.mesh import host_local_to_global, process_batch_slice

        position = self.stream.position
        # Every process knows the whole batch (same seed and position); it feeds, decodes and
        # scores only its own rows, the ones the batch sharding puts on its devices.
        indices = self.stream.next_indices(self.cfg.train.batch_size)
        rows = process_batch_slice(len(indices), self.mesh)
        # rollout.num_samples outputs per prompt: sample j of prompt i is row i * n + j.
        n = self.cfg.rollout.num_samples
        examples = [self.examples[i] for i in indices[rows] for _ in range(n)]
        prompt_ids, prompt_mask = self._prompt_batch([self.examples[i] for i in indices])
        prompts = host_local_to_global((prompt_ids[rows], prompt_mask[rows]), self.mesh)
        return position, examples, prompts

    def _sample_batch(self, iteration: int) -> _Batch:
        """Sample the batch update `iteration` learns from, with the current parameters, and
        dispatch its statistics under the same parameters (both asynchronous on the device)."""
        from ppocoder_jax.parallel.mesh import batch_sharding

        position, examples, prompts = self._draw_prompts()
        key = jax.random.fold_in(self.sample_key, iteration)
        rollout = self._sample(*prompts, key, iteration)
        faults.point("sample", iteration + 1)
        rows = _Rows(rollout.prompt_ids, rollout.prompt_mask, rollout.tokens, rollout.token_mask)
        # split along the batch as the train step's inputs are (the sampler's output is not)
        rows = _Rows(*(jax.device_put(x, batch_sharding(self.mesh, x.ndim)) for x in rows))
        stats = self._statistics(rows, exact_kl=self.cfg.kl.estimator == "exact", sampled=rollout)
        return _Batch(iteration, self.iteration, position, examples, rows, stats)

    def _submit(self, batch: _Batch) -> None:
        """Decode the batch (waits for its sampling) and hand its programs to the reward pool."""
        from ppocoder_jax.parallel.mesh import global_to_host_local

        tokens, token_mask = global_to_host_local((batch.rows.tokens, batch.rows.token_mask))
        outputs = self.sampler.decode(self.tokenizer, tokens, token_mask)
        batch.scoring = _Scoring(self.reward.submit(batch.examples, outputs), self._busy_seconds)
        faults.point("rewards", batch.iteration + 1)

    def _throughput(self, scoring: _Scoring) -> tuple[float, float]:
        """(programs scored per second, reward pool busy fraction) over the batch's scoring
        window: from its hand-over, or from when the batch before it was done if that was
        later (the pool works through batches in order), to its last result."""
        start = scoring.submitted
        before = self._last_scoring
        if before is not None and before.done is not None and before.done[0] > start[0]:
            start = before.done
        self._last_scoring = scoring
        window = max(scoring.done[0] - start[0], 1e-3)
        busy = (scoring.done[1] - start[1]) / (self._reward_workers * window)
        return len(scoring.futures) / window, busy

    def run_iteration(self) -> dict:
        from ppocoder_jax.parallel.mesh import host_local_to_global
        from ppocoder_jax.ppo.train_step import learn_from_rollout

        cfg = self.cfg
        t0 = time.perf_counter()
        batch, self._pending = self._pending, None
        if batch is None:
            batch = self._sample_batch(self.iteration)
        if batch.scoring is None:
            self._submit(batch)
        ahead = None
        if cfg.train.overlap_rollouts and self.iteration + 1 < cfg.train.steps:
            # The next batch, from the parameters before this update; the device samples it
            # while the pool scores this one, and the pool scores it during this update.
            ahead = self._sample_batch(self.iteration + 1)
            self._submit(ahead)
        t_sampled = time.perf_counter()
        # Device work for this batch (and the next), dispatched before we block on the rewards.
        jax.block_until_ready((batch.stats, ahead.stats if ahead is not None else None))
        t_device_done = time.perf_counter()
        parts = batch.scoring.results()
        t_rewards = time.perf_counter()
        programs_per_s, busy_frac = self._throughput(batch.scoring)
        logprobs, values, ref_logprobs, exact_kl = batch.stats
        local_table = np.asarray(
            [
                [p.total, not p.masked, p.compile, p.tests, p.ast, p.dfg, p.compiled, p.passed]
                + [p.reward_error is not None]
                for p in parts
            ],
            np.float32,
        )
        table = host_local_to_global(local_table, self.mesh)  # [B, 9], global
        scores, valid = table[:, 0], table[:, 1]
        n_valid = jnp.maximum(valid.sum(), 1.0)
        means = jax.device_get((table * valid[:, None]).sum(axis=0) / n_valid)
        reward_errors = int(jax.device_get(table[:, 8].sum()))
        self._check_reward_errors(reward_errors, int(table.shape[0]), parts)

        if self.iteration == 0 and cfg.ppo.value_bias_init == "mean_score":
            self._init_value_bias(float(means[0]))
            # the value head only moved: new values, the log-probs stay the sampling policy's
            _, values, _, _ = self._statistics(batch.rows, exact_kl=False)
            if ahead is not None:
                _, ahead_values, _, _ = self._statistics(ahead.rows, exact_kl=False)
                ahead.stats = (ahead.stats[0], ahead_values, *ahead.stats[2:])
        warmup = self.iteration < cfg.ppo.value_warmup_iters
        faults.point("update", self.iteration + 1)
        self.state, adv, update_metrics = learn_from_rollout(
            self.state,
            self.value_step if warmup else self.train_step,
            prompt_ids=batch.rows.prompt_ids,
            prompt_mask=batch.rows.prompt_mask,
            tokens=batch.rows.tokens,
            token_mask=batch.rows.token_mask,
            logprobs=logprobs,
            ref_logprobs=ref_logprobs,
            values=values,
            scores=scores,
            sample_valid=valid,
            exact_kl=exact_kl,
            ppo_cfg=cfg.ppo,
            kl_cfg=cfg.kl,
            group_size=cfg.rollout.num_samples,
        )
        self._pending = ahead
        t_end = time.perf_counter()

        metrics = {
            "score": float(adv["mean_score"]),
            "reward_compile": float(means[2]),
            "reward_tests": float(means[3]),
            "reward_ast": float(means[4]),
            "reward_dfg": float(means[5]),
            "compile_rate": float(means[6]),
            "pass_rate": float(means[7]),
            "samples": int(table.shape[0]),
            "infra_errors": int(adv["num_invalid"]) - reward_errors,
            "reward_errors": reward_errors,
            "kl": float(adv["mean_kl"]),
            "mean_length": float(adv["mean_length"]),
            "explained_variance": float(adv["explained_variance"]),
            "value_warmup": int(warmup),
            # updates between the parameters that sampled the batch and this one (overlap: 1)
            "rollout_lag": self.iteration - batch.sampled_at,
            # sampling (this batch, or the next one with overlap) and handing programs over
            "time_sample_s": t_sampled - t0,
            "time_rewards_s": t_rewards - t_sampled,
            "time_update_s": t_end - t_rewards,
            # Share of the iteration the device sat idle waiting for the reward threads.
            "reward_wait_frac": (t_rewards - t_device_done) / max(t_end - t0, 1e-9),
            # This host's programs of the batch per second of its scoring window, and the share
            # of the reward pool's workers' time spent in jobs over that window.
            "reward_programs_per_s": programs_per_s,
            "reward_busy_frac": busy_frac,
            **update_metrics,
        }
        self.iteration += 1
        return metrics

    def _check_reward_errors(self, count: int, total: int, parts) -> None:
        """Masked samples whose reward raised are logged; too many in one batch end the run."""
        if not count:
            return
        first = next((p.reward_error for p in parts if p.reward_error is not None), None)
        bound = self.cfg.reward.max_error_frac
        if count > bound * total:
            raise UserError(
                f"{count} of {total} samples' rewards raised in PPO iteration {self.iteration} "
                f"(more than reward.max_error_frac={bound}); first on this host: {first}"
            )
        print(f"PPO iteration {self.iteration}: {count} sample(s) masked, reward raised: {first}")

    def _statistics(self, rollout, exact_kl: bool, sampled=None):
        """(log-probs, values, reference log-probs, exact KL | None) of the batch's rows under
        the current parameters. With ppo.old_logprobs=sampler, `sampled` (the sampler's output
        for these rows, drawn with these parameters) gives the policy's log-probs and values,
        and only the reference runs (unless the exact KL needs the policy's pass)."""
        rows = (rollout.prompt_ids, rollout.prompt_mask, rollout.tokens, rollout.token_mask)
        if sampled is not None and self.cfg.ppo.old_logprobs == "sampler" and not exact_kl:
            from ppocoder_jax.parallel.mesh import batch_sharding

            # split along the batch as the rows are (the sampler's output is not)
            logprobs, values = (
                jax.device_put(x, batch_sharding(self.mesh, x.ndim))
                for x in (sampled.logprobs, sampled.values)
            )
            ref_logprobs = logprobs  # no reference (no KL): as rollout_statistics
            if self.ref_params is not None:
                ref_logprobs = reference_logprobs(
                    self.ref_params, *rows, policy=self.policy, dtype=self.dtype
                )
            return logprobs, values, ref_logprobs, None
        return rollout_statistics(
            self.state.params,
            self.ref_params,
            *rows,
            policy=self.policy,
            dtype=self.dtype,
            exact_kl=exact_kl,
        )

    def _init_value_bias(self, mean_score: float) -> None:
        params = self.state.params
        bias = params["value_head"]["bias"]
        new_bias = jax.device_put(jnp.full(bias.shape, mean_score, bias.dtype), bias.sharding)
        params = {**params, "value_head": {**params["value_head"], "bias": new_bias}}
        self.state = self.state.replace(params=params)

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
        return jax.device_get(self.state.params)


def summarize(metrics: dict) -> str:
    return json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})
