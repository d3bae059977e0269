"""End-to-end plumbing of the jobs on a tiny model: demo (SFT -> eval -> PPO -> eval), resume,
plots, and the eval / plot commands. Numbers are not judged here (the model is too small to
learn in a test); what is checked is that every stage runs and writes what it promises."""

from __future__ import annotations

import json
import math

import pytest
from helpers.tiny_models import TINY_MODEL_OVERRIDES

from ppocoder_jax.cli import main
from ppocoder_jax.config import load_config

TINY = [
    *TINY_MODEL_OVERRIDES,
    "data.synth_num_train=64",
    "data.synth_num_val=8",
    "data.synth_num_test=8",
    "rollout.max_new_tokens=16",
    "rollout.length_buckets=[16,32]",
    "sft.length_buckets=[16,32]",
    "sft.steps=4",
    "sft.batch_size=8",
    "sft.warmup_steps=1",
    "train.batch_size=8",
    "train.save_every=1",
    "ppo.ppo_epochs=1",
    "ppo.num_minibatches=2",
    "ppo.value_warmup_iters=1",
    "eval.num_samples=2",
    "rollout.num_samples=2",
    "data.synth_num_rl=40",
    "eval.batch_size=8",
    "reward.workers=2",
]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("demo")
    overrides = TINY + [f"train.run_dir={run_dir}", "train.steps=2"]
    assert main(["demo", *overrides]) == 0
    return run_dir, overrides


def test_demo_writes_everything(demo_run):
    run_dir, _ = demo_run
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "results.json",
        "sft_model",
        "reference_model",
        "final_model",
    ):
        assert (run_dir / name).exists(), name
    results = json.loads((run_dir / "results.json").read_text())
    for when in ("before", "after"):
        for mode in ("greedy", "sampled"):
            m = results[when][mode]
            assert m["num_problems"] == 8
            assert 0.0 <= m["pass@1"] <= 1.0 and math.isfinite(m["pass@1"])
            assert m["infra_errors"] == 0
    assert results["before"]["sampled"]["samples_per_problem"] == 2
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    ppo = [r for r in rows if r["phase"] == "ppo"]
    assert [r["step"] for r in ppo] == [1, 2]
    assert ppo[0]["value_warmup"] == 1 and ppo[1]["value_warmup"] == 0
    for key in (
        "score",
        "kl",
        "policy_loss",
        "value_loss",
        "clip_frac",
        "entropy",
        "reward_wait_frac",
    ):
        assert math.isfinite(ppo[1][key]), key
    assert (run_dir / "plots" / "ppo.png").stat().st_size > 1000
    saved = load_config(str(run_dir / "config.yaml"))
    assert saved.train.steps == 2


def test_train_resumes_from_checkpoint(demo_run):
    run_dir, overrides = demo_run
    # Same run dir, more steps: PPO must continue at iteration 2, not start over.
    more = [o for o in overrides if not o.startswith("train.steps")] + ["train.steps=3"]
    assert main(["train", "--config", "demo", *more, f"model.path={run_dir / 'sft_model'}"]) == 0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["phase"] == "ppo"] == [1, 2, 3]


def test_eval_and_plot_commands(demo_run, capsys):
    run_dir, overrides = demo_run
    assert (
        main(["eval", "--config", "demo", *overrides, f"model.path={run_dir / 'final_model'}"]) == 0
    )
    metrics = json.loads((run_dir / "eval_test.json").read_text())
    assert 0.0 <= metrics["pass@1"] <= 1.0
    assert main(["plot", str(run_dir)]) == 0
    assert "ppo.png" in capsys.readouterr().out


def test_resume_with_another_optimizer_is_a_clear_error(demo_run, capsys):
    run_dir, overrides = demo_run
    more = [o for o in overrides if not o.startswith(("train.steps", "data.synth_num_rl"))]
    more += ["train.steps=5"]
    # No preset: optim.max_grad_norm=0 drops the clipping stage of the optimizer state (and
    # there is no PPO problem pool, so data.synth_num_rl stays 0).
    assert main(["train", *more, f"model.path={run_dir / 'sft_model'}"]) == 2
    assert "does not fit this configuration" in capsys.readouterr().err


def test_bad_config_exits_2(tmp_path, capsys):
    assert main(["demo", "ppo.not_a_key=1", f"train.run_dir={tmp_path}/x"]) == 2
    assert "ppo.not_a_key" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_train_with_several_samples_per_prompt(demo_run, tmp_path):
    run_dir, overrides = demo_run
    more = [o for o in overrides if not o.startswith(("train.steps", "train.run_dir"))]
    out = tmp_path / "n2"
    args = ["train", "--config", "demo", *more, "train.steps=1", "rollout.num_samples=2"]
    args += ["ppo.baseline=group", "optim.value_head_lr_scale=10"]
    assert main([*args, f"train.run_dir={out}", f"model.path={run_dir / 'sft_model'}"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    (ppo,) = [r for r in rows if r["phase"] == "ppo"]
    assert ppo["samples"] == 16  # 8 prompts x 2 samples
    assert math.isfinite(ppo["score"]) and ppo["infra_errors"] == 0


def test_group_baseline_needs_several_samples(demo_run, tmp_path, capsys):
    run_dir, overrides = demo_run
    more = [o for o in overrides if not o.startswith(("train.steps", "train.run_dir"))]
    args = ["train", "--config", "demo", *more, "train.steps=1", "ppo.baseline=group"]
    args += ["rollout.num_samples=1"]
    out = tmp_path / "g1"
    code = main([*args, f"train.run_dir={out}", f"model.path={run_dir / 'sft_model'}"])
    assert code == 2
    assert "rollout.num_samples" in capsys.readouterr().err
