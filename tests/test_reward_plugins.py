"""Reward plugins (reward.functions, TRL's reward-function signature) in the composite reward:
weighted into the score, one call per batch, None masks the sample, bad plugins are one-line
errors (exit 2 from the CLI) at start-up."""

from __future__ import annotations

import math

import pytest
from helpers import reward_plugins
from test_pipeline_e2e import TINY

from ppocoder_jax.cli import main
from ppocoder_jax.config import RewardConfig, load_config
from ppocoder_jax.data import Example
from ppocoder_jax.errors import UserError
from ppocoder_jax.rewards.composite import CompositeReward
from ppocoder_jax.rewards.plugins import call_reward_function, load_reward_functions

P = "helpers.reward_plugins:"


def _examples(n=4):
    return [
        Example(id=f"e{i}", prompt=f"p{i}", target=f"y = {i}\n", lang="python") for i in range(n)
    ]


def _cfg(functions, weights=()):
    return RewardConfig(
        compile_weight=1.0,
        ast_weight=0.0,
        dfg_weight=0.0,
        workers=2,
        functions=tuple(functions),
        function_weights=tuple(weights),
    )


def test_plugins_add_weighted_values_to_the_score_end_to_end():
    reward_plugins.CALLS.clear()
    outputs = ["y = 0\n", "y = 7\n", "def f(:\n", "y = 3\nz = 1\n"]
    cfg = _cfg([P + "exact_target", P + "short_bonus"], [2.0, 0.5])
    with CompositeReward(cfg) as reward:
        parts = reward.score(_examples(), outputs)
    assert reward_plugins.CALLS == [4]  # one call for the whole batch
    match = [1.0, 0.0, 0.0, 0.0]
    short = [1 / 2, 1 / 2, 1 / 2, 1 / 3]
    compile_ = [1.0, 1.0, -1.0, 1.0]
    for p, m, s, c in zip(parts, match, short, compile_):
        assert p.functions == pytest.approx((m, s))
        assert p.compile == c
        assert p.total == pytest.approx(c + 2.0 * m + 0.5 * s)
        assert not p.masked and p.reward_error is None


def test_none_masks_the_sample_like_an_infra_error():
    with CompositeReward(_cfg([P + "short_bonus"])) as reward:
        empty, fine = reward.score(_examples(2), ["   ", "y = 1\n"])
    assert empty.functions == (None,) and empty.masked and not empty.infra_error
    assert fine.functions == (0.5,) and not fine.masked


@pytest.mark.parametrize(
    "spec, match",
    [
        ("no_such_module_xyz:f", r"cannot import 'no_such_module_xyz'.*ModuleNotFoundError"),
        (P + "missing", r"has no 'missing'"),
        (P + "NOT_CALLABLE", r"is not callable"),
        (P + "no_kwargs", r"wrong signature \(completions\).*TRL's signature"),
    ],
)
def test_bad_plugins_are_one_line_errors_at_construction(spec, match):
    with pytest.raises(UserError, match=match) as err:
        load_reward_functions([spec])
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match=match):
        CompositeReward(_cfg([spec]))


@pytest.mark.parametrize(
    "name, match",
    [
        ("one_short", r"returned 1 values for 2 completions"),
        ("not_numbers", r"returned 'good' \(str\)"),
        ("raises", r"raised on a probe batch.*RuntimeError: plugin failed on purpose"),
    ],
)
def test_the_start_up_probe_catches_wrong_results(name, match):
    with CompositeReward(_cfg([P + name])) as reward:
        with pytest.raises(UserError, match=match) as err:
            reward.check_functions(_examples())
    assert "\n" not in str(err.value) and "reward.functions" in str(err.value)


def test_a_wrong_length_in_training_masks_the_batch_as_reward_errors():
    with CompositeReward(_cfg([P + "one_short_in_big_batches"])) as reward:
        reward.check_functions(_examples())  # right on the two-sample probe
        parts = reward.score(_examples(4), ["y = 1\n"] * 4)
    for p in parts:
        assert p.masked and p.verdict == "REWARD_ERROR"
        assert "returned 3 values for 4 completions" in p.reward_error


def test_config_checks_of_the_plugin_keys():
    with pytest.raises(UserError, match="function_weights"):
        RewardConfig(functions=("a:b",), function_weights=(1.0, 2.0))
    with pytest.raises(UserError, match="not 'package.module:function'"):
        load_config(None, ["reward.functions=[just_a_module]"])
    cfg = load_config(None, [f"reward.functions=[{P}short_bonus]", "reward.function_weights=[2]"])
    assert cfg.reward.functions == (P + "short_bonus",) and cfg.reward.function_weights == (2.0,)


def test_values_are_checked_and_nan_is_none():
    (rf,) = load_reward_functions([P + "exact_target"])
    assert call_reward_function(rf, _examples(2), ["y = 0\n", "no"]) == [1.0, 0.0]
    (rf,) = load_reward_functions([P + "nan_second"])
    assert call_reward_function(rf, _examples(2), ["a", "b"]) == [0.25, None]  # numpy ok


def test_cli_exits_2_on_a_bad_plugin(tmp_path, capsys):
    args = ["train", "--config", "demo", *TINY, "train.steps=1", f"train.run_dir={tmp_path}/r"]
    assert main([*args, f"reward.functions=[{P}no_kwargs]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "wrong signature" in err[0]


def test_each_plugin_is_a_named_column_and_names_are_unique():
    from ppocoder_jax.rewards.plugins import plugin_column_names

    specs = [P + "exact_target", P + "Other.exact_target", P + "short_bonus"]
    with CompositeReward(_cfg(specs)) as reward:
        names = reward.column_names()
        parts = reward.score(_examples(2), ["y = 0\n", "   "])
    plugins = ["plugin/exact_target_0", "plugin/exact_target_1", "plugin/short_bonus"]
    assert names[-3:] == plugins and len(set(names)) == len(names)
    assert names[:12] == [
        "total", "valid", "compile", "tests", "ast", "dfg", "compiled", "passed",
        "reward_error", "masked_infra", "masked_nonfinite", "masked_plugin",
    ]  # fmt: skip
    good, empty = (p.columns() for p in parts)
    assert list(good) == names and list(empty) == names
    assert [good[n] for n in plugins] == [1.0, 0.5, 0.5]
    assert [empty[n] for n in plugins[:2]] == [0.0, 0.5]
    assert math.isnan(empty["plugin/short_bonus"]) and empty["masked_plugin"] == 1.0
    # a name that is already some plugin's suffixed name stays unique too
    fns = load_reward_functions([P + "exact_target", P + "Other.exact_target", P + "exact_target"])
    assert plugin_column_names(fns) == [
        "plugin/exact_target_0", "plugin/exact_target_1", "plugin/exact_target_2",
    ]  # fmt: skip
    assert plugin_column_names(load_reward_functions([P + "short_bonus"])) == ["plugin/short_bonus"]


def test_a_plugin_raising_in_a_batch_is_saved_once_and_named(tmp_path):
    import json

    cfg = _cfg([P + "exact_target", P + "raises"])
    with CompositeReward(cfg, error_dir=tmp_path / "errors") as reward:
        names = reward.column_names()
        parts = reward.score(_examples(4), ["y = 0\n", "y = 7\n", "y = 2\n", "def f(:\n"])
    (saved,) = sorted((tmp_path / "errors").glob("*.json"))  # one file for the batch call
    record = json.loads(saved.read_text())
    assert record["plugin"] == P + "raises" and record["batch_size"] == 4
    assert record["ids"] == ["e0", "e1", "e2", "e3"] and record["completions"][3] == "def f(:\n"
    assert "RuntimeError: plugin failed on purpose" in record["traceback"]
    for i, p in enumerate(parts):
        cols = p.columns()
        assert p.masked and p.verdict == "REWARD_ERROR" and p.total == 0.0
        assert p.reward_error == (
            f"reward function {P}raises raised on a batch of 4: RuntimeError: plugin failed on "
            f"purpose (saved to {saved})"
        )
        assert list(cols) == names and cols["reward_error"] == 1.0
        assert cols["masked_plugin"] == 0.0  # a failure is a reward error, not a plugin mask
        assert math.isnan(cols["plugin/raises"])
        assert cols["plugin/exact_target"] == [1.0, 0.0, 1.0, 0.0][i]  # the other plugin's


def test_a_per_sample_reward_error_keeps_the_plugin_columns(monkeypatch):
    from ppocoder_jax.rewards import composite

    def boom(reference, candidate, lang):
        raise RuntimeError("matcher raised on purpose")

    monkeypatch.setattr(composite, "_match", boom)
    cfg = RewardConfig(ast_weight=1.0, dfg_weight=0.0, workers=1, functions=(P + "short_bonus",))
    with CompositeReward(cfg) as reward:
        (p,) = reward.score(_examples(1), ["y = 1\n"])
    cols = p.columns()
    assert list(cols) == reward.column_names() and math.isnan(cols["plugin/short_bonus"])
    assert cols["reward_error"] == 1.0 and cols["masked_plugin"] == 0.0 and cols["valid"] == 0.0
