"""Non-finite rewards are never scored: a NaN or an infinity from a plugin or a built-in part
masks the sample, is named (RewardParts.nonfinite, the masked_* columns), and the sample's
total and built-in columns stay finite."""

from __future__ import annotations

import concurrent.futures as cf
import math
from types import SimpleNamespace

import numpy as np
import pytest

from ppocoder_jax.config import RewardConfig
from ppocoder_jax.data import Example
from ppocoder_jax.rewards import composite
from ppocoder_jax.rewards.composite import BASE_COLUMNS, CompositeReward
from ppocoder_jax.rewards.plugins import call_reward_function, load_reward_functions

P = "helpers.reward_plugins:"
INF = math.inf


def _examples(n, tests=None):
    return [
        Example(id=f"e{i}", prompt=f"p{i}", target="y = 1\n", lang="python", tests=tests)
        for i in range(n)
    ]


def _cfg(**kw):
    base = dict(compile_weight=1.0, ast_weight=0.0, dfg_weight=0.0, workers=2)
    return RewardConfig(**{**base, **kw})


def _assert_finite_columns(reward, parts):
    """Every sample has the same fixed column names; nothing but a plugin's NaN is non-finite,
    also as the float32 arrays the collector builds."""
    names = reward.column_names()
    for p in parts:
        cols = p.columns()
        assert list(cols) == names
        arr = np.asarray([cols[n] for n in names], np.float32)
        plugin = np.array([n.startswith("plugin/") for n in names])
        assert np.isfinite(arr[~plugin]).all(), cols
        assert not np.isinf(arr).any(), cols


def test_a_plugins_inf_and_nan_mask_the_sample_by_name():
    outputs = ["y = 1  # 0.5\n", "y = 1  # inf\n", "y = 1  # -inf\n", "y = 1  # nan\n"]
    with CompositeReward(_cfg(functions=(P + "value_after_hash",))) as reward:
        parts = reward.score(_examples(4), outputs)
    fine, pos, neg, nan = parts
    assert not fine.masked and fine.total == pytest.approx(1.0 + 0.5)
    assert fine.columns()["plugin/value_after_hash"] == 0.5
    for p in (pos, neg, nan):
        cols = p.columns()
        assert p.masked and not p.infra_error and p.reward_error is None
        assert p.nonfinite == ("plugin/value_after_hash",)
        assert p.total == 0.0 and cols["valid"] == 0.0
        assert cols["masked_nonfinite"] == 1.0 and cols["masked_plugin"] == 1.0
        assert cols["masked_infra"] == 0.0 and cols["reward_error"] == 0.0
        assert math.isnan(cols["plugin/value_after_hash"])
        assert p.compile == 1.0  # the other parts are still reported
    assert fine.columns()["masked_nonfinite"] == fine.columns()["masked_plugin"] == 0.0
    _assert_finite_columns(reward, parts)


def test_call_reward_function_turns_infinities_into_none_unless_kept():
    (rf,) = load_reward_functions([P + "value_after_hash"])
    outs = ["# 2", "# inf", "# -inf", "# nan"]
    assert call_reward_function(rf, _examples(4), outs) == [2.0, None, None, None]
    kept = call_reward_function(rf, _examples(4), outs, keep_nonfinite=True)
    assert kept[:3] == [2.0, INF, -INF] and math.isnan(kept[3])


def test_a_plugins_none_is_masked_plugin_but_not_nonfinite():
    with CompositeReward(_cfg(functions=(P + "short_bonus",))) as reward:
        empty, fine = reward.score(_examples(2), ["   ", "y = 1\n"])
    cols = empty.columns()
    assert empty.masked and empty.nonfinite == () and empty.total == 0.0
    assert cols["masked_plugin"] == 1.0 and cols["masked_nonfinite"] == 0.0
    assert math.isnan(cols["plugin/short_bonus"])
    assert not fine.masked and fine.total == pytest.approx(1.0 + 0.5)


def _infinite_match(reference, candidate, lang):
    if "INF" in candidate:
        return SimpleNamespace(ast_match=INF, dfg_match=0.5)
    if "NAN" in candidate:
        return SimpleNamespace(ast_match=0.5, dfg_match=math.nan)
    return SimpleNamespace(ast_match=0.25, dfg_match=0.5)


def test_a_builtin_part_returning_inf_masks_the_sample(monkeypatch):
    monkeypatch.setattr(composite, "_match", _infinite_match)
    cfg = _cfg(ast_weight=1.0, dfg_weight=1.0, functions=(P + "exact_target",))
    with CompositeReward(cfg) as reward:
        parts = reward.score(_examples(3), ["y = 1\n", "INF = 1\n", "NAN = 1\n"])
    fine, inf, nan = parts
    assert not fine.masked and fine.total == pytest.approx(1.0 + 0.25 + 0.5 + 1.0)
    assert inf.nonfinite == ("ast",) and nan.nonfinite == ("dfg",)
    for p in (inf, nan):
        cols = p.columns()
        assert p.masked and p.total == 0.0 and cols["valid"] == 0.0
        assert cols["masked_nonfinite"] == 1.0 and cols["masked_plugin"] == 0.0
        assert cols["plugin/exact_target"] == 0.0  # the plugin scored it: not its mask
    assert (inf.ast, inf.dfg) == (0.0, 0.5) and (nan.ast, nan.dfg) == (0.5, 0.0)
    _assert_finite_columns(reward, parts)


class _FixedExecutor:
    """Execution results made up per program: a non-finite unit-test reward, an INFRA_ERROR."""

    def submit(self, lang, program, tests=None, link=False):
        future: cf.Future = cf.Future()
        if "INFRA" in program:
            result = SimpleNamespace(verdict="INFRA_ERROR", compiled=False, reward=None)
        elif "INF" in program:
            result = SimpleNamespace(verdict="PASS", compiled=True, reward=INF)
        else:
            result = SimpleNamespace(verdict="PASS", compiled=True, reward=1.0)
        future.set_result(result)
        return future

    def close(self):
        pass


def test_an_infinite_test_reward_and_the_infra_column():
    cfg = _cfg(tests_weight=1.0)
    tests = {"inputs": ["1"], "outputs": ["1"]}
    with CompositeReward(cfg, executor=_FixedExecutor()) as reward:
        parts = reward.score(_examples(3, tests), ["ok", "INF", "INFRA"])
    ok, inf, infra = parts
    assert not ok.masked and ok.total == pytest.approx(2.0)
    assert inf.masked and inf.nonfinite == ("tests",) and inf.tests == 0.0 and inf.total == 0.0
    assert inf.passed  # the verdict stands; its reward is not scored
    cols = infra.columns()
    assert infra.masked and cols["masked_infra"] == 1.0 and cols["masked_nonfinite"] == 0.0
    assert ok.columns()["masked_infra"] == 0.0
    _assert_finite_columns(reward, parts)


def test_a_total_overflowing_float32_is_nonfinite():
    big = 3e38  # finite as a float64 sum, an infinity in the trainer's float32 arrays
    cfg = _cfg(compile_weight=big, functions=(P + "exact_target",), function_weights=(big,))
    with CompositeReward(cfg) as reward:
        over, fine = reward.score(_examples(2), ["y = 1\n", "y = 2\n"])
    assert over.nonfinite == ("total",) and over.masked and over.total == 0.0
    assert not fine.masked and fine.total == pytest.approx(big)
    _assert_finite_columns(reward, [over, fine])


def test_column_names_are_fixed_for_the_configured_plugins():
    with CompositeReward(_cfg()) as reward:
        assert reward.column_names() == list(BASE_COLUMNS)
        (parts,) = reward.score(_examples(1), ["y = 1\n"])
    assert list(parts.columns()) == list(BASE_COLUMNS)
    assert BASE_COLUMNS[:9] == (
        "total", "valid", "compile", "tests", "ast", "dfg", "compiled", "passed", "reward_error",
    )  # fmt: skip
