"""`ppocoder demo` prints the right table for every task kind it accepts (a completion run once
ended in a KeyError on `num_problems` after all its work)."""

from __future__ import annotations

from ppocoder_jax.data import Example
from ppocoder_jax.pipeline.evaluate import (
    completion_metrics,
    synthesis_metrics,
    translation_metrics,
)
from ppocoder_jax.pipeline.jobs import format_demo_table
from ppocoder_jax.rewards.composite import RewardParts


def _parts(compiled: bool, passed: bool = False) -> RewardParts:
    verdict = "PASS" if passed else ("COMPILED" if compiled else "COMPILE_ERROR")
    return RewardParts(1.0, 1.0 if compiled else -1.0, 0.0, 0.0, 0.0, verdict, False)


class _Floors:
    """Stands in for the reward when computing the trivial floors: '' compiles, others not."""

    def score(self, examples, outputs):
        return [_parts(o == "") for o in outputs]


def _examples(n: int, lang: str = "python") -> list[Example]:
    return [Example(id=str(i), prompt="p", target="x = 1", lang=lang) for i in range(n)]


def _results(metric_fn):
    return {"before": {m: metric_fn(False) for m in ("greedy", "sampled")},
            "after": {m: metric_fn(True) for m in ("greedy", "sampled")}}  # fmt: skip


def test_completion_table():
    ex = _examples(4)

    def metrics(after: bool):
        outs = [["x = 1"], ["x = 2"], [""], ["x"]]
        parts = [[_parts(after or i < 2)] for i in range(4)]
        return completion_metrics(ex, outs, parts, _Floors())

    table = format_demo_table(_results(metrics))
    assert "held-out (4 examples)" in table
    lines = {line[:30].strip(): line for line in table.splitlines()}
    assert "50.0%  100.0%  +50.0" in lines["compile rate greedy"]
    assert "25.0%" in lines["exact match greedy"]
    assert "edit similarity greedy" in lines and "output chars greedy" in lines
    assert "100.0%" in lines["empty completion"]
    assert "pass@1 greedy" not in lines


def test_synthesis_table():
    ex = [Example(id=str(i), prompt="p", target="", lang="python", meta={"template": "t"})
          for i in range(2)]  # fmt: skip

    def metrics(after: bool):
        parts = [[_parts(True, passed=after or i == 0)] for i in range(2)]
        return synthesis_metrics(ex, [["a"], ["b"]], parts, ks=(1,))

    table = format_demo_table(_results(metrics))
    assert "held-out (2 problems)" in table
    assert "pass@1 greedy" in table and "+50.0" in table
    assert "greedy pass rate per template" in table


def test_translation_table():
    ex = _examples(2, "java")

    def metrics(after: bool):
        outs = [["int x = 1;"], ["x"]]
        return translation_metrics(ex, outs, [[_parts(after)], [_parts(True)]])

    table = format_demo_table(_results(metrics))
    assert "held-out (2 examples)" in table
    assert "CodeBLEU greedy" in table and "compile rate greedy" in table


def test_synthesis_metrics_per_difficulty():
    ex = [Example(id=str(i), prompt="p", target="", lang="python", meta={"difficulty": d})
          for i, d in enumerate(["interview", "introductory", "interview"])]  # fmt: skip
    parts = [[_parts(True, passed=p)] for p in (True, False, False)]
    m = synthesis_metrics(ex, [["a"], ["b"], ["c"]], parts, ks=(1,))
    assert m["per_difficulty_pass"] == {"interview": 0.5, "introductory": 0.0}
    assert "per_template_pass" not in m
