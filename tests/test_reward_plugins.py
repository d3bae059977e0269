"""Reward plugins (reward.functions, TRL's reward-function signature) in the composite reward:
weighted into the score, one call per batch, None masks the sample, bad plugins are one-line
errors (exit 2 from the CLI) at start-up."""

from __future__ import annotations

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
