"""The registered algorithms through the real trainer (`ppocoder train`, tiny models): a
Dr. GRPO run with no KL (the reference forward is skipped), clip-higher, dual clip, dynamic
sampling and a reward plugin; a GRPO run with the KL in the loss on the decoder-only model."""

from __future__ import annotations

import json
import math

import pytest
from test_pipeline_e2e import TINY

from ppocoder_jax.cli import main
from ppocoder_jax.rollout import collector as collector_module


@pytest.fixture
def reference_calls(monkeypatch):
    """Records, per rollout_statistics call of the trainer, whether it got reference params."""
    seen: list[bool] = []
    real = collector_module.rollout_statistics

    def spy(params, ref_params, *args, **kwargs):
        seen.append(ref_params is not None)
        return real(params, ref_params, *args, **kwargs)

    monkeypatch.setattr(collector_module, "rollout_statistics", spy)
    return seen


def _ppo_rows(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["phase"] == "ppo"]


def _train(tmp_path, name, *more):
    run_dir = tmp_path / name
    args = ["train", "--config", "demo", *TINY, "train.steps=2", "ppo.value_warmup_iters=0"]
    assert main([*args, *more, f"train.run_dir={run_dir}"]) == 0
    return run_dir


def test_dr_grpo_without_kl_skips_the_reference(tmp_path, reference_calls):
    run_dir = _train(
        tmp_path,
        "dr_grpo",
        "kl.mode=none",
        "ppo.advantage=dr_grpo",
        "ppo.loss_agg=seq_mean_token_sum_norm",
        "ppo.clip_high=0.28",
        "ppo.dual_clip=3",
        "ppo.dynamic_sampling=true",
        "reward.functions=[helpers.reward_plugins:short_bonus]",
        "reward.function_weights=[0.1]",
    )
    assert reference_calls and not any(reference_calls)  # never a reference forward
    rows = _ppo_rows(run_dir)
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert r["kl"] == 0.0
        assert isinstance(r["groups_dropped"], int) and 0 <= r["groups_dropped"] <= 8
        for key in ("policy_loss", "loss", "clip_frac", "dual_clip_frac", "score"):
            assert math.isfinite(r[key]), key
        assert "kl_loss" not in r


def test_grpo_with_kl_in_the_loss_on_the_decoder(tmp_path, reference_calls):
    run_dir = _train(
        tmp_path,
        "grpo",
        "model.family=decoder",
        "kl.mode=loss",
        "kl.kind=fixed",
        "kl.init_coef=0.04",
        "ppo.advantage=grpo",
        "ppo.loss_agg=seq_mean_token_mean",
    )
    assert reference_calls and all(reference_calls)
    rows = _ppo_rows(run_dir)
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert r["kl_loss"] >= 0 and math.isfinite(r["kl_loss"])
        assert r["kl_coef"] == pytest.approx(0.04)
        assert "groups_dropped" not in r and "dual_clip_frac" not in r


def test_old_logprobs_from_the_sampler_skip_the_policy_pass(tmp_path, monkeypatch):
    """ppo.old_logprobs=sampler: the batch's log-probs and values are the sampler's (equal to
    the recomputed ones within 1e-4 in fp32) and only the reference runs teacher-forced."""
    import numpy as np

    real_stats, real_ref = collector_module.rollout_statistics, collector_module.reference_logprobs
    calls = {"policy": 0, "reference": 0}

    def stats_spy(*args, **kwargs):
        calls["policy"] += 1
        return real_stats(*args, **kwargs)

    def ref_spy(*args, **kwargs):
        calls["reference"] += 1
        return real_ref(*args, **kwargs)

    monkeypatch.setattr(collector_module, "rollout_statistics", stats_spy)
    monkeypatch.setattr(collector_module, "reference_logprobs", ref_spy)
    Collector = collector_module.RolloutCollector
    real = Collector._statistics
    compared = []

    def both(self, params, *rows, sampled):
        before = dict(calls)
        got = real(self, params, *rows, sampled=sampled)
        assert calls["policy"] == before["policy"]  # no policy pass for a sampled batch
        assert calls["reference"] == before["reference"] + 1
        # the teacher-forced pass, for comparison
        want = collector_module.rollout_statistics(
            params, self.ref_params, *rows, policy=self.policy, dtype=self.dtype, exact_kl=False
        )
        mask = np.asarray(rows[3]) == 1
        for a, b in zip((got.logprobs, got.values, got.ref_logprobs), want[:3]):
            np.testing.assert_allclose(np.asarray(a)[mask], np.asarray(b)[mask], atol=1e-4)
        compared.append(int(mask.sum()))
        return got

    monkeypatch.setattr(Collector, "_statistics", both)
    run_dir = _train(
        tmp_path,
        "sampler_logprobs",
        "model.family=decoder",
        "kl.mode=loss",
        "kl.kind=fixed",
        "kl.init_coef=0.04",
        "kl.estimator=sampled",
        "ppo.advantage=grpo",
        "ppo.old_logprobs=sampler",
    )
    assert len(compared) == 2 and all(compared)
    rows = _ppo_rows(run_dir)
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert math.isfinite(r["kl_loss"]) and math.isfinite(r["policy_loss"])


def test_old_logprobs_from_the_sampler_on_8_devices(tmp_path):
    """ppo.old_logprobs=sampler with the state and the batch sharded over 8 fake CPU devices
    (mesh.fsdp=8, a subprocess): the sampler's log-probs and values go on the batch sharding
    as the rows do, so the train step takes them."""
    import os
    import subprocess
    import sys

    run_dir = tmp_path / "run"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    cmd = [sys.executable, "-m", "ppocoder_jax", "train", "--config", "tiny"]
    cmd += ["model.family=decoder", "mesh.fsdp=8", "train.steps=2", "ppo.value_warmup_iters=0"]
    cmd += ["kl.mode=loss", "kl.kind=fixed", "kl.init_coef=0.04", "kl.estimator=sampled"]
    cmd += ["ppo.advantage=grpo", "ppo.old_logprobs=sampler", f"train.run_dir={run_dir}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = _ppo_rows(run_dir)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["kl_loss"]) for r in rows)
