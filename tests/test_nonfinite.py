"""No non-finite number ever reaches the parameters, and none is hidden.

- a reward plugin returning +inf / -inf / NaN for some samples, and a built-in reward part that
  is infinite: those samples are masked and counted by name; training goes on and every weight
  of the final model is finite;
- a reward object that hands the trainer an infinite total: the collector masks it
  (masked_nonfinite) before the learner sees it;
- a non-finite loss: the optimizer step is skipped (parameters and optimizer state unchanged),
  counted, and `train.max_skipped_updates` in a row end the run with a one-line error;
- metrics.jsonl spells NaN / inf as strings ("nan", "inf", "-inf"), never null.
"""

from __future__ import annotations

import json
import math

import jax
import numpy as np
import pytest
from helpers.fake_rewards import finished
from helpers.tiny_models import ppo_start
from test_pipeline_e2e import TINY

from ppocoder_jax.cli import main
from ppocoder_jax.config import load_config
from ppocoder_jax.errors import UserError
from ppocoder_jax.rewards.composite import RewardParts


def _ppo_rows(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["phase"] == "ppo"]


def _all_finite(model_dir) -> bool:
    from ppocoder_jax.model import load_model

    params, _, _ = load_model(str(model_dir))
    return all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))


def test_plugin_inf_and_nan_are_masked_counted_and_never_learned(tmp_path):
    run_dir = tmp_path / "run"
    args = ["train", "--config", "demo", *TINY, "train.steps=2", "ppo.value_warmup_iters=0"]
    args += ["reward.functions=[helpers.nonfinite_plugins:inf_some]"]
    assert main([*args, f"train.run_dir={run_dir}"]) == 0
    rows = _ppo_rows(run_dir)
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        # 16 samples a batch: +inf, -inf and NaN from the plugin for 3 of them
        assert r["masked_plugin"] == 3, r
        assert r["infra_errors"] == 0 and r["reward_errors"] == 0
        for key in ("score", "loss", "policy_loss", "value_loss", "grad_norm"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), (key, r[key])
        assert r["skipped_updates"] == 0
        assert math.isfinite(r["reward_plugin/inf_some"])
    assert _all_finite(run_dir / "final_model")


def test_an_infinite_builtin_part_is_masked_and_counted(tmp_path, monkeypatch):
    from ppocoder_jax.rewards import composite

    real = composite._match

    def inf_ast(reference, candidate, lang):
        matched = real(reference, candidate, lang)
        return matched._replace(ast_match=math.inf)

    monkeypatch.setattr(composite, "_match", inf_ast)
    run_dir = tmp_path / "run"
    args = ["train", "--config", "demo", *TINY, "train.steps=1", "ppo.value_warmup_iters=0"]
    args += ["reward.ast_weight=1.0", "reward.max_error_frac=1.0"]
    assert main([*args, f"train.run_dir={run_dir}"]) == 0
    (row,) = _ppo_rows(run_dir)
    assert row["masked_nonfinite"] == row["samples"] == 16
    assert row["skipped_updates"] == 0
    assert _all_finite(run_dir / "final_model")


class InfiniteTotals:
    """A reward object (not CompositeReward) whose totals are +inf for every `every`-th sample
    (none for 0) and that does not mark them masked: the collector must."""

    def __init__(self, every: int = 4):
        self.every = every

    def submit(self, examples, outputs):
        totals = [
            math.inf if self.every and i % self.every == 0 else 0.5 for i in range(len(outputs))
        ]
        return finished([RewardParts(t, 1.0, t, 0.0, 0.0, "PASS", False) for t in totals])


@pytest.fixture(scope="module")
def start():
    return ppo_start()


def _trainer(start, tmp_path, reward, *extra):
    from ppocoder_jax.pipeline.ppo_trainer import PPOTrainer

    cfg = load_config(
        "tiny",
        [f"train.run_dir={tmp_path}", "train.steps=2", "train.batch_size=4",
         "ppo.num_minibatches=2", "ppo.ppo_epochs=1", "ppo.value_warmup_iters=0",
         "train.tensorboard=false", *extra],
    )  # fmt: skip
    params, model_cfg, tokenizer, examples = start
    return PPOTrainer(cfg, params, model_cfg, tokenizer, examples, tmp_path, None, reward)


def test_the_collector_masks_an_infinite_total_the_reward_did_not(start, tmp_path):
    trainer = _trainer(start, tmp_path, InfiniteTotals())
    try:
        metrics = trainer.run_iteration()
    finally:
        trainer.ckpt.close()
    rows = metrics["samples"]
    assert metrics["masked_nonfinite"] == rows // 4
    assert math.isfinite(metrics["score"]) and math.isfinite(metrics["loss"])
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(trainer.params()))


def test_a_nonfinite_loss_is_skipped_and_stops_the_run(start, tmp_path, monkeypatch):
    from ppocoder_jax.rollout.collector import RolloutCollector

    real = RolloutCollector._statistics

    def nan_logprobs(self, *args, **kwargs):  # NaN old log-probs -> NaN ratios -> NaN loss
        e = real(self, *args, **kwargs)
        return e.replace(logprobs=e.logprobs * np.float32(np.nan))

    monkeypatch.setattr(RolloutCollector, "_statistics", nan_logprobs)

    trainer = _trainer(
        start,
        tmp_path,
        InfiniteTotals(every=0),
        "train.max_skipped_updates=3",
        "ppo.value_bias_init=zero",
    )
    before = jax.device_get(trainer.state)
    try:
        metrics = trainer.run_iteration()  # 2 steps, both skipped: not yet 3 in a row
        assert metrics["skipped_updates"] == 2
        assert metrics["loss"] != metrics["loss"]  # NaN, logged as such
        after = jax.device_get(trainer.state)
        for x, y in zip(jax.tree.leaves(after.params), jax.tree.leaves(before.params)):
            np.testing.assert_array_equal(x, y)
        for x, y in zip(jax.tree.leaves(after.opt_state), jax.tree.leaves(before.opt_state)):
            np.testing.assert_array_equal(x, y)
        with pytest.raises(UserError, match="3 optimizer steps in a row"):
            trainer.run_iteration()
    finally:
        trainer.ckpt.close()


def test_metrics_jsonl_spells_nonfinite_numbers(tmp_path):
    from ppocoder_jax.pipeline.run_dir import MetricsLogger, read_metrics

    logger = MetricsLogger(tmp_path)
    logger.log("ppo", 1, {"loss": math.nan, "a": math.inf, "b": -math.inf, "c": 1.5})
    logger.close()
    line = (tmp_path / "metrics.jsonl").read_text().strip()
    assert json.loads(line) == {
        "phase": "ppo", "step": 1, "loss": "nan", "a": "inf", "b": "-inf", "c": 1.5,
    }  # fmt: skip
    (row,) = read_metrics(tmp_path)
    assert math.isnan(row["loss"]) and row["a"] == math.inf and row["b"] == -math.inf
