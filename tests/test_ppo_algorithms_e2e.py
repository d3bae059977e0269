"""The registered algorithms through the real trainer (`ppocoder train`, tiny models): a
Dr. GRPO run with no KL (the reference forward is skipped), clip-higher, dual clip, dynamic
sampling and a reward plugin; a GRPO run with the KL in the loss on the decoder-only model."""

from __future__ import annotations

import json
import math

import pytest
from test_pipeline_e2e import TINY

from ppocoder_jax.cli import main
from ppocoder_jax.pipeline import ppo_trainer


@pytest.fixture
def reference_calls(monkeypatch):
    """Records, per rollout_statistics call of the trainer, whether it got reference params."""
    seen: list[bool] = []
    real = ppo_trainer.rollout_statistics

    def spy(params, ref_params, *args, **kwargs):
        seen.append(ref_params is not None)
        return real(params, ref_params, *args, **kwargs)

    monkeypatch.setattr(ppo_trainer, "rollout_statistics", spy)
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
