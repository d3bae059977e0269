"""`train.overlap_rollouts`: batch k+1 is sampled while batch k is scored and learned from.

Checked on the real trainer (tiny random model, a deterministic stand-in reward in-process):
- each update learns from the batch the parameters before the previous update sampled (the
  sampler's tokens for that key), with old log-probs, values and reference log-probs of those
  parameters (the behaviour policy); without the switch, from the current parameters;
- a checkpoint taken while a sampled batch waits (a preemption stop) holds it, and the resumed
  run ends bit for bit where an uninterrupted one ends (parameters, optimizer, every metric),
  on one device and sharded over 8 fake CPU devices (mesh.fsdp=8, a subprocess);
- `ppocoder demo ... train.overlap_rollouts=true` runs end to end on a tiny config.
The SIGKILL-anywhere resume of `ppocoder train` with the switch is in test_trainer_resume.py.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppocoder_jax.config import load_config
from ppocoder_jax.pipeline.policy_loader import load_policy
from ppocoder_jax.rewards.composite import RewardParts

TIMINGS = {
    "time_sample_s",
    "time_rewards_s",
    "time_update_s",
    "reward_wait_frac",
    "reward_programs_per_s",
    "reward_busy_frac",
}


class StandInReward:
    """Deterministic scores from the text (no sandbox): the loop, not the reward, is tested."""

    def submit(self, examples, outputs):
        futures = []
        for i, out in enumerate(outputs):
            score = (len(out) % 7) / 3.0 - 1.0
            parts = RewardParts(
                total=score,
                compile=1.0,
                tests=score,
                ast=0.0,
                dfg=0.0,
                verdict="PASS" if len(out) % 2 else "FAIL",
                infra_error=i == 3,  # one masked sample per batch
            )
            future: cf.Future = cf.Future()
            future.set_result(parts)
            futures.append(future)
        return futures


class Rows:
    def __init__(self):
        self.rows = []

    def log(self, phase, step, metrics):
        self.rows.append({"phase": phase, "step": step, **metrics})

    def rewind(self, phase, step):
        self.rows = [r for r in self.rows if not (r["phase"] == phase and r["step"] > step)]


def _cfg(run_dir, *extra):
    return load_config(
        "tiny",
        [
            f"train.run_dir={run_dir}",
            "train.steps=4",
            "train.save_every=100",
            "train.tensorboard=false",
            "train.overlap_rollouts=true",
            "train.batch_size=4",
            "ppo.num_minibatches=2",
            # test_..._on_8_devices runs this file again on 8 fake devices, sharded
            *os.environ.get("OVERLAP_TEST_OVERRIDES", "").split(),
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def start():
    from ppocoder_jax.data import load_task

    cfg = _cfg("unused")
    params, model_cfg, tokenizer = load_policy(cfg)
    examples = load_task(cfg.data, tokenizer).ppo_examples()
    return jax.device_get(params), model_cfg, tokenizer, examples


def _trainer(start, cfg, logger=None):
    from ppocoder_jax.pipeline.ppo_trainer import PPOTrainer

    params, model_cfg, tokenizer, examples = start
    return PPOTrainer(
        cfg, params, model_cfg, tokenizer, examples, cfg.train.run_dir, logger, StandInReward()
    )


@pytest.mark.parametrize("overlap", [True, False])
def test_each_update_learns_from_the_batch_its_sampling_parameters_gave(
    start, tmp_path, monkeypatch, overlap
):
    """Update k learns from the batch sampled by the parameters before update k-1 (overlap) or
    before update k (not), and its old log-probs / values / reference log-probs are those
    parameters' teacher-forced statistics."""
    from ppocoder_jax.ppo import train_step
    from ppocoder_jax.ppo.policy_apply import rollout_statistics
    from ppocoder_jax.rollout.data_stream import DataStream

    cfg = _cfg(tmp_path / "run", f"train.overlap_rollouts={str(overlap).lower()}")
    seen = []  # per update: (parameters before it, what it learned from)
    learn = train_step.learn_from_experience

    def spy(state, step, experience, **kw):
        arrays = ("tokens", "token_mask", "logprobs", "values", "ref_logprobs")
        got = {k: getattr(experience, k) for k in arrays}
        seen.append((jax.device_get(state.params), jax.device_get(got)))
        return learn(state, step, experience, **kw)

    monkeypatch.setattr(train_step, "learn_from_experience", spy)
    trainer = _trainer(start, cfg, Rows())
    collector = trainer.collector
    assert trainer.train()
    assert len(seen) == cfg.train.steps
    examples = start[3]
    stream = DataStream(len(examples), cfg.train.seed)
    r = cfg.rollout
    lag = []
    for k, (_, got) in enumerate(seen):
        sampled_by = seen[k - 1 if overlap and k > 0 else k][0]
        lag.append(k - (k - 1 if overlap and k > 0 else k))
        idx = stream.next_indices(cfg.train.batch_size)
        ids, mask = collector.prompt_batch([examples[i] for i in idx])
        out = collector.sampler.sample_arrays(
            sampled_by,
            jnp.asarray(ids),
            jnp.asarray(mask),
            jax.random.fold_in(trainer.sample_key, k),
            max_new_tokens=min(r.max_new_tokens, cfg.data.max_target_length),
            num_samples=r.num_samples,
        )
        np.testing.assert_array_equal(got["tokens"], out.tokens, err_msg=f"update {k}")
        np.testing.assert_array_equal(got["token_mask"], out.token_mask)
        logprobs, values, ref_logprobs, _ = rollout_statistics(
            sampled_by,
            jax.device_get(collector.ref_params),
            out.prompt_ids,
            out.prompt_mask,
            out.tokens,
            out.token_mask,
            policy=collector.policy,
            dtype=collector.dtype,
            exact_kl=False,
        )
        np.testing.assert_allclose(got["logprobs"], logprobs, atol=1e-5, err_msg=f"update {k}")
        np.testing.assert_allclose(got["ref_logprobs"], ref_logprobs, atol=1e-5)
        if k > 0:  # update 0's values are recomputed after value_bias_init=mean_score
            np.testing.assert_allclose(got["values"], values, atol=1e-5, err_msg=f"update {k}")
    rows = trainer.logger.rows
    assert [row["rollout_lag"] for row in rows] == lag == ([0, 1, 1, 1] if overlap else [0] * 4)
    # the last update samples nothing ahead: the final checkpoint holds no batch
    assert collector.pending is None
    assert (trainer.ckpt.directory / "4" / "rollout").exists() is False


def test_a_stop_with_a_sampled_batch_waiting_resumes_exactly(start, tmp_path):
    """Preemption after update 2: the checkpoint holds batch 3 (sampled before update 2); the
    resumed run learns from it and ends where the uninterrupted run ends. Here with the sampled
    KL (no KL array in the batch); on 8 devices (below) with the exact KL."""
    import orbax.checkpoint as ocp

    estimator = os.environ.get("OVERLAP_TEST_ESTIMATOR", "sampled")

    def run(run_dir, stop_after=None, check=None):
        cfg = _cfg(run_dir, f"kl.estimator={estimator}")
        logger = Rows()
        trainer = _trainer(start, cfg, logger)
        if check is not None:
            check(trainer)
        done = trainer.train(stop=None if stop_after is None else lambda: trainer.iteration >= 2)
        return trainer, done, logger.rows

    def spread(batch):  # the waiting batch's arrays over every device (8 in the sharded run)
        return {len(x.sharding.device_set) for x in jax.tree.leaves(batch.experience)}

    ref, done, ref_rows = run(tmp_path / "ref")
    assert done
    trainer, done, first_rows = run(tmp_path / "stopped", stop_after=2)
    assert not done and trainer.iteration == 2
    waiting = trainer.collector.pending
    assert waiting.iteration == 2 and spread(waiting) == {jax.device_count()}
    step2 = tmp_path / "stopped" / "checkpoints" / "2"
    meta = json.loads((step2 / "meta" / "metadata").read_text())
    batch = trainer.cfg.train.batch_size
    assert meta["data_state"] == {"position": 2 * batch, "iteration": 2, "pending": True}
    assert (step2 / "rollout").is_dir()

    def restored(t):
        waiting = t.collector.pending
        assert t.iteration == 2 and waiting.iteration == 2 and waiting.scoring is None
        assert spread(waiting) == {jax.device_count()}

    resumed, done, rows = run(tmp_path / "stopped", check=restored)
    assert done and resumed.iteration == 4

    got = jax.device_get(resumed.state)
    want = jax.device_get(ref.state)
    for (path, x), (_, y) in zip(
        jax.tree_util.tree_flatten_with_path(got)[0], jax.tree_util.tree_flatten_with_path(want)[0]
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=str(path))
    assert resumed.collector.stream.position == ref.collector.stream.position == 4 * batch
    rows = first_rows + rows
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows] == [1, 2, 3, 4]
    for g, w in zip(rows, ref_rows):
        assert {k: v for k, v in g.items() if k not in TIMINGS} == {
            k: v for k, v in w.items() if k not in TIMINGS
        }
    with ocp.StandardCheckpointer() as ck:
        saved = ck.restore(step2 / "rollout")
    # the unscored Experience: the KL array only when the exact KL is used, no rewards yet
    assert (saved.get("exact_kl") is not None) == (estimator == "exact")
    assert all(saved.get(k) is None for k in ("scores", "valid", "rewards"))


def test_the_waiting_batch_resumes_exactly_on_8_devices(tmp_path):
    """The same stop-and-resume with the state, the reference and the waiting batch sharded over
    8 fake CPU devices (mesh.fsdp=8), and the exact KL (one more array in the waiting batch): the
    batch is saved and read back in its shardings."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", OVERLAP_TEST_ESTIMATOR="exact")
    env["OVERLAP_TEST_OVERRIDES"] = "mesh.fsdp=8 train.batch_size=8 ppo.value_warmup_iters=0"
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    test = f"{Path(__file__)}::test_a_stop_with_a_sampled_batch_waiting_resumes_exactly"
    cmd = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider"]
    cmd += [test, f"--basetemp={tmp_path / 'inner'}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "1 passed" in proc.stdout


def test_demo_runs_end_to_end_with_overlapped_rollouts(tmp_path):
    from ppocoder_jax.cli import main

    run_dir = tmp_path / "demo"
    tiny = [
        "model.tiny_d_model=32", "model.tiny_d_ff=64", "model.tiny_num_layers=1",
        "model.tiny_num_decoder_layers=1", "model.tiny_num_heads=2", "model.tiny_d_kv=16",
        "data.synth_num_train=64", "data.synth_num_val=8", "data.synth_num_test=8",
        "data.synth_num_rl=40", "rollout.max_new_tokens=16", "rollout.length_buckets=[16,32]",
        "sft.length_buckets=[16,32]",
        "rollout.num_samples=2", "sft.steps=4", "sft.batch_size=8", "sft.warmup_steps=1",
        "train.batch_size=8", "train.save_every=2", "train.steps=3", "ppo.ppo_epochs=1",
        "ppo.num_minibatches=2", "ppo.value_warmup_iters=1", "eval.num_samples=2",
        "eval.batch_size=8", "reward.workers=2", "train.tensorboard=false",
    ]  # fmt: skip
    args = ["demo", "--config", "demo", *tiny, "train.overlap_rollouts=true"]
    assert main([*args, f"train.run_dir={run_dir}"]) == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert 0.0 <= results["after"]["greedy"]["pass@1"] <= 1.0
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    ppo = [r for r in map(json.loads, lines) if r["phase"] == "ppo"]
    assert [r["step"] for r in ppo] == [1, 2, 3]
    assert [r["rollout_lag"] for r in ppo] == [0, 1, 1]
    for row in ppo:
        assert row["reward_programs_per_s"] > 0
        assert 0.0 <= row["reward_busy_frac"] <= 1.05
        assert 0.0 <= row["reward_wait_frac"] <= 1.0
    assert (run_dir / "checkpoints" / "2" / "rollout").is_dir()  # a batch waited at step 2
    assert (run_dir / "final_model").is_dir()
    assert (run_dir / "plots" / "ppo.png").stat().st_size > 1000
