"""A reward failure masks one sample and is saved; it never ends a run (issue: one program must
never crash a run). Reward parts are made to raise on purpose: the matcher, the execution
harness, and the program builder."""

from __future__ import annotations

import concurrent.futures as cf
import json

import pytest
from test_pipeline_e2e import TINY as E2E_TINY

from ppocoder_jax.cli import main
from ppocoder_jax.config import RewardConfig
from ppocoder_jax.data import Example
from ppocoder_jax.pipeline.evaluate import completion_metrics, synthesis_metrics
from ppocoder_jax.rewards import composite
from ppocoder_jax.rewards.composite import CompositeReward, RewardParts
from ppocoder_jax.rewards.execution import Executor


class Boom(RuntimeError):
    pass


def _example(i: int = 0, tests=None) -> Example:
    return Example(
        id=f"e{i}", prompt="p", target="y = 2\n", lang="python", tests=tests, context_prefix=""
    )


def _raising_match(reference, candidate, lang):
    if "BOOM" in candidate:
        raise Boom("matcher raised on purpose")
    return composite._match.__wrapped__(reference, candidate, lang)


@pytest.fixture
def raising_matcher(monkeypatch):
    real = composite._match
    _raising_match.__wrapped__ = real
    monkeypatch.setattr(composite, "_match", _raising_match)


def test_a_raising_matcher_masks_and_saves_the_sample(tmp_path, raising_matcher):
    cfg = RewardConfig(compile_weight=1.0, ast_weight=1.0, dfg_weight=1.0, workers=2)
    with CompositeReward(cfg, error_dir=tmp_path / "reward_errors") as reward:
        outs = ["x = 1\n", "BOOM = 1\n", "z = 3\n"]
        parts = reward.score([_example(i) for i in range(3)], outs)
    good, bad, good2 = parts
    assert good.reward_error is None and good2.reward_error is None
    assert not good.masked and good.compiled and good.verdict == "COMPILED"
    assert bad.masked and not bad.infra_error and not bad.compiled and not bad.passed
    assert bad.verdict == "REWARD_ERROR" and "Boom: matcher raised on purpose" in bad.reward_error
    (saved,) = sorted((tmp_path / "reward_errors").glob("*.json"))
    assert str(saved) in bad.reward_error
    record = json.loads(saved.read_text())
    assert record["program"] == "BOOM = 1\n" and record["reference"] == "y = 2\n"
    assert "Boom: matcher raised on purpose" in record["traceback"]
    assert "_raising_match" in record["traceback"]
    assert not list((tmp_path / "reward_errors").glob("*.tmp"))


class _RaisingExecutor(Executor):
    """The execution harness fails for programs that contain BOOM, at submit or in the job."""

    def submit(self, lang, program, tests=None, link=False):
        if "BOOM_SUBMIT" in program:
            raise Boom("submit raised on purpose")
        if "BOOM" in program:
            failed: cf.Future = cf.Future()
            failed.set_exception(Boom("harness raised on purpose"))
            return failed
        return super().submit(lang, program, tests=tests, link=link)


def test_a_raising_harness_masks_the_sample_without_an_error_dir():
    cfg = RewardConfig(compile_weight=1.0, ast_weight=0.0, dfg_weight=0.0, workers=2)
    with _RaisingExecutor(workers=2) as ex, CompositeReward(cfg, executor=ex) as reward:
        parts = reward.score([_example(i) for i in range(3)], ["x = 1", "BOOM", "BOOM_SUBMIT"])
    assert [p.verdict for p in parts] == ["COMPILED", "REWARD_ERROR", "REWARD_ERROR"]
    assert "harness raised on purpose" in parts[1].reward_error
    assert "submit raised on purpose" in parts[2].reward_error
    assert "saved to" not in parts[1].reward_error  # no error_dir: nothing written


def test_keyboard_interrupt_still_reaches_the_caller(monkeypatch):
    def interrupted(reference, candidate, lang):
        raise KeyboardInterrupt

    monkeypatch.setattr(composite, "_match", interrupted)
    cfg = RewardConfig(compile_weight=1.0, ast_weight=1.0, dfg_weight=0.0, workers=1)
    with CompositeReward(cfg) as reward:
        (future,) = reward.submit([_example()], ["x = 1"])
        with pytest.raises(KeyboardInterrupt):
            future.result(timeout=60)


def _parts(verdict: str, reward_error=None, infra=False) -> RewardParts:
    passed = verdict == "PASS"
    return RewardParts(1.0 if passed else -1.0, 1.0 if passed else -1.0, 0.0, 0.0, 0.0, verdict,
                       infra, reward_error)  # fmt: skip


def test_evaluation_counts_a_reward_error_as_a_failure():
    examples = [_example(i) for i in range(2)]
    parts = [
        [_parts("PASS"), _parts("REWARD_ERROR", "Boom: x")],
        [_parts("PASS"), _parts("INFRA_ERROR", infra=True)],
    ]
    m = synthesis_metrics(examples, [["a", "b"], ["c", "d"]], parts, ks=(1,))
    # problem 0: 1 of 2 samples pass (the failed reward is a failure); problem 1: 1 of 1 valid
    assert m["pass@1"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["infra_errors"] == 1


def test_completion_metrics_count_a_reward_error_as_not_compiled():
    class NoFloors:
        def score(self, examples, outputs):
            return [_parts("OK" if o == "" else "COMPILE_ERROR") for o in outputs]

    examples = [_example(i) for i in range(2)]
    parts = [[_parts("PASS")], [_parts("REWARD_ERROR", "Boom: x")]]
    m = completion_metrics(examples, [["a"], ["b"]], parts, NoFloors())
    assert m["compile_rate"] == 0.5


# ------------------------------------------------------------------------ the real trainer
# the e2e tests' tiny setting, with one value-warm-up-free PPO setting
TINY = [o for o in E2E_TINY if not o.startswith(("sft.steps", "ppo.value_warmup_iters"))]
TINY += ["sft.steps=2", "ppo.value_warmup_iters=0"]


class _EveryNthFails(Executor):
    """Every `every`-th job's harness raises (counted over the whole run)."""

    every = 8
    count = 0

    def submit(self, lang, program, tests=None, link=False):
        type(self).count += 1
        if type(self).count % type(self).every == 0:
            failed: cf.Future = cf.Future()
            failed.set_exception(Boom("harness raised on purpose"))
            return failed
        return super().submit(lang, program, tests=tests, link=link)


@pytest.fixture(scope="module")
def sft_model(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sft")
    assert main(["sft", "--config", "demo", *TINY, f"train.run_dir={run_dir}"]) == 0
    return run_dir / "sft_model"


def _train(tmp_path, sft_model, monkeypatch, every: int, steps: int, extra=()):
    import ppocoder_jax.rewards.execution as execution

    _EveryNthFails.every, _EveryNthFails.count = every, 0
    monkeypatch.setattr(execution, "Executor", _EveryNthFails)
    run_dir = tmp_path / "ppo"
    args = ["train", "--config", "demo", *TINY, f"train.steps={steps}", "train.save_every=1"]
    code = main([*args, *extra, f"train.run_dir={run_dir}", f"model.path={sft_model}"])
    return code, run_dir


def test_the_trainer_masks_failed_rewards_and_goes_on(tmp_path, sft_model, monkeypatch):
    code, run_dir = _train(tmp_path, sft_model, monkeypatch, every=8, steps=2)
    assert code == 0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    ppo = [r for r in rows if r["phase"] == "ppo"]
    assert [r["step"] for r in ppo] == [1, 2]
    assert [r["reward_errors"] for r in ppo] == [2, 2]  # 16 samples, every 8th fails
    assert all(r["infra_errors"] == 0 for r in ppo)
    saved = sorted((run_dir / "reward_errors").glob("*.json"))
    assert len(saved) == 4
    record = json.loads(saved[0].read_text())
    assert "harness raised on purpose" in record["traceback"] and record["program"]
    assert (run_dir / "final_model").exists()


def test_too_many_failed_rewards_stop_the_run_naming_the_file(
    tmp_path, sft_model, monkeypatch, capsys
):
    # every 2nd sample fails: 50% > reward.max_error_frac, in the first iteration
    code, run_dir = _train(tmp_path, sft_model, monkeypatch, every=2, steps=2,
                           extra=["reward.max_error_frac=0.3"])  # fmt: skip
    assert code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("ppocoder train:")]
    assert len(err) == 1 and "reward.max_error_frac=0.3" in err[0]
    assert "harness raised on purpose" in err[0] and "saved to" in err[0]
    named = err[0].split("saved to ")[1].rstrip(")")
    assert json.loads(open(named).read())["program"]
