"""Why completions fail to compile (the completion setting's breakdown) and the ceiling."""

from __future__ import annotations

import pytest

from ppocoder_jax.data import Example
from ppocoder_jax.data.completion import syntax_error
from ppocoder_jax.pipeline.compile_failures import CAUSES, cause, failure_breakdown
from ppocoder_jax.pipeline.evaluate import completion_metrics
from ppocoder_jax.pipeline.jobs import format_demo_table
from ppocoder_jax.rewards.composite import RewardParts

PROMPT = "def f(x):\n    y = "


@pytest.mark.parametrize(
    "completion, hit_limit, expected",
    [
        ("(x + 1", False, "bracket"),
        ("x + 1)", False, "bracket"),
        ("[x, (1]", False, "bracket"),
        ("'abc", False, "string"),
        ('"""abc', False, "string"),
        ("x\n  return y", False, "indentation"),
        ("x\n    if y:\n    return y", False, "indentation"),
        ("x $ 2", False, "unknown_token"),
        ("1abc", False, "unknown_token"),
        ("x = = 2", False, "other"),
        ("(x + 1", True, "truncated"),
    ],
)
def test_each_failure_has_its_cause(completion, hit_limit, expected):
    err = syntax_error(PROMPT + completion)
    assert err is not None
    assert cause(err, hit_limit, PROMPT + completion) == expected


def test_breakdown_shares_add_up_to_the_failures():
    outs = ["x + 1\n    return y", "(x", "'a", "x $", "x + 1\n    return y\n", "(x + 1"]
    limits = [False, False, False, False, False, True]
    got = failure_breakdown([PROMPT] * len(outs), outs, limits)["per_compile_failure"]
    assert set(got) == set(CAUSES)
    assert got["truncated"] == pytest.approx(1 / 6) and got["bracket"] == pytest.approx(1 / 6)
    assert got["string"] == pytest.approx(1 / 6) and got["unknown_token"] == pytest.approx(1 / 6)
    assert sum(got.values()) == pytest.approx(4 / 6)  # two of six compile


def _parts(compiled: bool) -> RewardParts:
    return RewardParts(0.0, 1.0 if compiled else -1.0, 0.0, 0.0, 0.0,
                       "COMPILED" if compiled else "COMPILE_ERROR", False)  # fmt: skip


class _Compiler:
    """The reward's compile verdict by Python's compiler (what the sandbox's py_compile says)."""

    def score(self, examples, outputs):
        return [
            _parts(syntax_error(e.context_prefix + o) is None) for e, o in zip(examples, outputs)
        ]


def test_completion_metrics_carry_the_breakdown_and_the_ceiling():
    ex = [Example(id=str(i), prompt=PROMPT, target="x + 1\n    return y", lang="python",
                  context_prefix=PROMPT) for i in range(4)]  # fmt: skip
    outs = [["x + 1\n    return y"], ["(x"], ["'a"], ["(x + 1"]]
    limits = [[False], [False], [False], [True]]
    reward = _Compiler()
    parts = [reward.score([e], o) for e, o in zip(ex, outs)]
    m = completion_metrics(ex, outs, parts, reward, limits, [True, True, True, False])
    assert m["compile_rate"] == 0.25
    assert m["per_compile_failure"]["truncated"] == 0.25
    assert m["ceiling_compile_rate"] == 0.75 and m["unfixable_prompts"] == 1
    table = format_demo_table(
        {"before": {"greedy": m, "sampled": m}, "after": {"greedy": m, "sampled": m}}
    )
    assert "attainable ceiling" in table and "truncated" in table


def test_generation_flags_the_outputs_that_ran_out_of_tokens():
    """With a budget of one token, an output that ended (EOS first) is empty and unflagged;
    one that did not is flagged. The flags are what `truncated` counts."""
    from ppocoder_jax.config import load_config
    from ppocoder_jax.pipeline.evaluate import generate_outputs
    from ppocoder_jax.pipeline.policy_loader import load_policy

    tiny = ["model.tiny_d_model=32", "model.tiny_d_ff=64", "model.tiny_num_layers=1",
            "model.tiny_num_decoder_layers=1", "model.tiny_num_heads=2", "model.tiny_d_kv=16"]  # fmt: skip
    cfg = load_config("demo", [*tiny, "rollout.max_new_tokens=1"])
    params, model_cfg, tok = load_policy(cfg)
    exs = [Example(id=str(i), prompt=f"def f{i}(x):", target="", lang="python") for i in range(16)]
    outs, flags = generate_outputs(
        cfg, params, model_cfg, tok, exs, greedy=False, num_samples=4, with_limit_flags=True
    )
    assert [len(f) for f in flags] == [4] * 16
    pairs = [(o, f) for os_, fs in zip(outs, flags) for o, f in zip(os_, fs)]
    assert all(o == "" for o, f in pairs if not f)
    assert sum(f for _, f in pairs) > 0
