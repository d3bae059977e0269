"""The matching rewards never raise on what a policy emits, and stay in [0, 1].

Mutated real programs (re-indented, truncated mid-token, dropped / duplicated lines, unbalanced
brackets and quotes, stray tokens, glued statement fragments; see helpers/code_mutations.py)
go through `match()` as candidate, as reference and against themselves, in all 7 languages,
and a share of them through the whole CodeBLEU metric and `ppocoder match`.
"""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from helpers.code_mutations import LANGS, fuzz_cases, real_programs

from ppocoder_jax.rewards.matching import match
from ppocoder_jax.rewards.matching.codebleu import codebleu
from ppocoder_jax.rewards.matching.dataflow import data_flow
from ppocoder_jax.rewards.matching.tree import build_program

CASES_PER_LANGUAGE = 400


def _in_unit_interval(result) -> bool:
    return all(0.0 <= v <= 1.0 for v in result)


@pytest.mark.parametrize("lang", LANGS)
def test_match_never_raises_on_mutated_programs(lang):
    rng = random.Random(f"refs-{lang}")
    programs = real_programs(lang)
    cases = fuzz_cases(lang, CASES_PER_LANGUAGE, seed=0)
    kinds = set()
    for kind, text in cases:
        kinds.update(kind.split("+"))
        ref = rng.choice(programs)
        for reference, candidate in ((ref, text), (text, ref), (text, text)):
            try:
                result = match(reference, candidate, lang)
            except Exception as err:  # report the input, not only the traceback
                raise AssertionError(
                    f"{lang} {kind}: match raised {err!r}\nreference={reference!r}\n"
                    f"candidate={candidate!r}"
                ) from err
            assert _in_unit_interval(result), (kind, reference, candidate, result)
    # every kind of damage was generated
    assert {"reindent", "truncate", "drop_or_duplicate", "unbalance", "stray", "glue"} <= kinds
    assert {"fragments", "empty", "blank"} <= kinds


@pytest.mark.parametrize("lang", LANGS)
def test_codebleu_never_raises_on_mutated_programs(lang):
    rng = random.Random(f"codebleu-{lang}")
    programs = real_programs(lang)
    for kind, text in fuzz_cases(lang, 60, seed=1):
        ref = rng.choice(programs)
        for reference, candidate in ((ref, text), (text, ref)):
            parts = codebleu(reference, candidate, lang)
            assert all(0.0 <= v <= 1.0 for v in parts.values()), (kind, candidate, parts)


# The shapes that crashed the Python data flow (`self.pattern = 'test*.py'` killed a run): an
# attribute target has three children, as many as a string in current grammars, and the
# element-wise pairing of `a, b = c, d` paired the target with the string's pieces.
CRASH_SHAPES = [
    'a.b = "s"',
    'self.x.y = "s"',
    'def f(self):\n    self.opts.name = "x"',
    "self.pattern = 'test*.py'",
    'a[0] = f"x{y}"',
    'a.b = b"raw"',
    'a.b = "x" "y"',
    "a[i] = g(x)",
    "a.b = [i for i in y]",
    'for a.b in "xyz":\n    pass',
]


@pytest.mark.parametrize("code", CRASH_SHAPES)
def test_python_attribute_and_subscript_targets(code):
    for reference, candidate in ((code, "x = 1"), ("x = 1", code), (code, code)):
        assert _in_unit_interval(match(reference, candidate, "python"))
    assert match(code, code, "python").dfg_match == 1.0


def test_attribute_target_takes_the_whole_string():
    """`a.b = "s"`: both names of the target are computed from the one string token (the
    string is never split into its quote and content pieces)."""
    flow = data_flow(build_program('a.b = "s"', "python", {}))
    assert flow == [
        ("a", 0, "computedFrom", ['"s"'], [2]),
        ("b", 1, "computedFrom", ['"s"'], [2]),
        ('"s"', 2, "comesFrom", [], []),
    ]
    # the tuple pairing stays element-wise
    flow = data_flow(build_program('a, b = "s", t', "python", {}))
    assert ("a", 0, "computedFrom", ['"s"'], [2]) in flow
    assert ("b", 1, "computedFrom", ["t"], [3]) in flow


def test_match_cli_on_the_issue_pair(tmp_path):
    ref = tmp_path / "ref.py"
    cand = tmp_path / "cand.py"
    ref.write_text("x = 1\n")
    cand.write_text('a.b = "s"\n')
    out = subprocess.run(
        [sys.executable, "-m", "ppocoder_jax", "match", "--lang", "python"]
        + ["--reference", str(ref), "--candidate", str(cand)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr


def test_deeply_nested_errors_are_keyed_within_the_budget():
    """`"/* " * n` as Python nests n error subtrees; printing each one's S-expression was
    quadratic (n = 2000: 7.5 s; a 3 MB program exhausted memory). Past the budget, error
    subtrees are keyed by structure, so the work stays linear in the program."""
    from ppocoder_jax.rewards.matching import tree

    intern: dict = {}
    prog = tree.build_program("/* " * 20000, "python", intern)
    printed = [k for k in intern if isinstance(k, tuple) and k and k[0] == "S"]
    structural = [k for k in intern if isinstance(k, tuple) and k and k[0] == "E"]
    assert printed and structural  # the budget was reached, and used before that
    assert sum(k[1].count("(") for k in printed) <= 2 * tree.ERROR_SEXP_BUDGET
    assert prog.subtree_keys
    for reference, candidate in (("x = 1", "/* " * 20000), ("/* " * 20000, "x = 1")):
        assert _in_unit_interval(match(reference, candidate, "python"))
