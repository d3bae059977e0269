"""Public / private tests: the data side of multi-turn RL with execution feedback.

A problem's tests can be split in two disjoint parts (docs/problems.md, "Public and private
tests"): the PUBLIC tests are run on each attempt and their failures are shown to the model as
feedback; the PRIVATE tests decide the final reward and are never shown. `Example.tests` always
keeps every test (single-turn training and evaluation do not depend on the split);
`Example.public_tests` / `Example.private_tests` hold the two parts, and
`Example.public_and_private_tests()` returns them, or `(tests, tests)` when there is no split.

Both test formats split (rewards/execution/harness.py, `parse_tests`):

* `{"inputs": [...], "outputs": [...][, "fn_name"]}`: by pair; each side keeps `fn_name`.
* `{"test_code": "..."}` (assert-style): by top-level statement that holds an `assert` (parsed
  with `ast`); every other line (imports, helper definitions, data, comments) is shared
  setup and stays on both sides, in its place. A block that cannot be split this way (a
  syntax error, a top-level call such as HumanEval's `check(candidate)` that may run any
  test, an assert sharing its line with another statement) is not split.

A problem with fewer than two tests is not split (both parts would have to be non-empty).
Which tests are public is a pure function of a key (the data seed and the problem's identity;
`seeded_rng`), never of load or batch order.
"""

from __future__ import annotations

import ast
import hashlib
import random

Tests = dict


def seeded_rng(*key) -> random.Random:
    """A `random.Random` seeded by the text of `key` (stable across runs and Python builds)."""
    text = "\x1f".join(str(k) for k in key)
    return random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))


# -- assert blocks -------------------------------------------------------------------------


def _holds_assert(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Assert) for n in ast.walk(node))


_SETUP = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def assert_block_units(test_code: str) -> tuple[list[str], list[tuple[int, int]]] | None:
    """(lines, units) of an assert block, or None when it cannot be split.

    `lines` are the block's lines (with their line ends); each unit is a half-open range of
    line indices holding one test: a top-level `assert`, or a top-level statement (not a
    definition) with an `assert` inside, e.g. a `for` loop of asserts. Lines in no unit are
    shared setup.
    """
    try:
        tree = ast.parse(test_code)
    except (SyntaxError, ValueError):
        return None
    lines = test_code.splitlines(keepends=True)
    units: list[list[int]] = []  # [start, end) line indices
    owner: dict[int, str] = {}  # line index -> "test" | "setup"
    for stmt in tree.body:
        start, end = stmt.lineno - 1, stmt.end_lineno or stmt.lineno
        if isinstance(stmt, _SETUP):
            kind = "setup"
            start = min([start] + [d.lineno - 1 for d in getattr(stmt, "decorator_list", ())])
        elif _holds_assert(stmt):
            kind = "test"
        elif isinstance(stmt, ast.Expr) and not isinstance(stmt.value, ast.Constant):
            return None  # a top-level call may run tests of its own: not ours to split
        else:
            kind = "setup"
        shared = {owner[i] for i in range(start, end) if i in owner}
        if shared and (kind == "test" or "test" in shared):
            if shared != {"test"} or kind != "test":
                return None  # an assert shares a line with setup
            units[-1][1] = max(units[-1][1], end)  # asserts on one line: one unit
        elif kind == "test":
            units.append([start, end])
        for i in range(start, end):
            owner[i] = kind
    return lines, [(a, b) for a, b in units]


def assert_statements(test_code: str) -> list[str]:
    """The text of each test unit of an assert block ([] when it cannot be split)."""
    parsed = assert_block_units(test_code)
    if parsed is None:
        return []
    lines, units = parsed
    return ["".join(lines[a:b]) for a, b in units]


def _assert_block(lines: list[str], units: list[tuple[int, int]], keep: set[int]) -> str:
    drop = {i for u, (a, b) in enumerate(units) if u not in keep for i in range(a, b)}
    return "".join(line for i, line in enumerate(lines) if i not in drop)


# -- any tests -----------------------------------------------------------------------------


def num_tests(tests: Tests | None) -> int:
    """How many separable tests `tests` has (0 for None; 0 for an unsplittable assert block)."""
    if not tests:
        return 0
    if "test_code" in tests:
        parsed = assert_block_units(tests["test_code"])
        return 0 if parsed is None else len(parsed[1])
    return len(tests.get("inputs") or [])


def split_tests(tests: Tests, public: list[int] | tuple[int, ...]) -> tuple[Tests, Tests]:
    """(public, private) parts of `tests`: the tests at indices `public`, and the others.

    Indices count the tests of `num_tests`. Both parts are in the format of `tests`.
    """
    parsed = assert_block_units(tests["test_code"]) if "test_code" in tests else None
    n = len(parsed[1]) if parsed is not None else num_tests(tests)
    keep = set(public)
    if not keep or len(keep) >= n or min(keep) < 0 or max(keep) >= n:
        raise ValueError(f"public tests {sorted(keep)} do not split {n} tests in two")
    if parsed is not None:
        lines, units = parsed
        rest = set(range(n)) - keep
        return (
            {"test_code": _assert_block(lines, units, keep)},
            {"test_code": _assert_block(lines, units, rest)},
        )
    extra = {"fn_name": tests["fn_name"]} if tests.get("fn_name") else {}
    sides = []
    for chosen in (sorted(keep), [i for i in range(n) if i not in keep]):
        part = {
            "inputs": [tests["inputs"][i] for i in chosen],
            "outputs": [tests["outputs"][i] for i in chosen],
        }
        sides.append({**part, **extra})
    return sides[0], sides[1]


def seeded_public_indices(n: int, n_public: int, *key) -> list[int]:
    """`n_public` of range(n), drawn by `seeded_rng(*key)`, in increasing order."""
    return sorted(seeded_rng(*key).sample(range(n), n_public))


def seeded_split(tests: Tests | None, max_public: int, *key) -> tuple[Tests | None, Tests | None]:
    """A seeded split: min(max_public, n // 2) tests public (at least one), the rest private.

    (None, None) when `tests` has fewer than two separable tests (no split).
    """
    n = num_tests(tests)
    if n < 2:
        return None, None
    k = max(1, min(max_public, n // 2))
    return split_tests(tests, seeded_public_indices(n, k, *key))  # type: ignore[arg-type]


def first_public_split(tests: Tests | None) -> tuple[Tests | None, Tests | None]:
    """The first test public, the rest private ((None, None) with fewer than two tests)."""
    if num_tests(tests) < 2:
        return None, None
    return split_tests(tests, [0])  # type: ignore[arg-type]
