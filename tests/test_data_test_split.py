"""Public / private tests (data/public_private.py): seeded, stable, disjoint, covering, and
`Example.tests` exactly as before the split existed."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter

import pytest

from ppocoder_jax.config import load_config
from ppocoder_jax.data import Example, load_task
from ppocoder_jax.data.apps import load_apps
from ppocoder_jax.data.mbpp import load_mbpp
from ppocoder_jax.data.public_private import (
    assert_block_units,
    assert_statements,
    first_public_split,
    num_tests,
    seeded_split,
    split_tests,
)
from ppocoder_jax.data.synthesis_demo import SynthesisDemoConfig, build_synthesis_demo
from ppocoder_jax.errors import UserError

# sha256 of (split, id, tests) and of every other field, computed on the code before the
# public / private split was added (commit b716625): the split must not change them.
BEFORE = {
    SynthesisDemoConfig(): (
        "532d84c0a31c73c199a974668b2eef928e038a52906ee163d6c07970114e84f3",
        "a20e0bf9e0cd0a6b0e9257c64c787254b67d33da4b7fc2ba4dd982d33d5bf064",
    ),
    SynthesisDemoConfig(
        num_train=300, num_val=20, num_test=60, seed=3, rl_fraction=0.1, num_rl=50
    ): (
        "b69d2c93bb59dfb679c3614ba1991012399fd148dcd8ebb55a5bc0d14d6b4006",
        "f24f67de6da5500bbf1091d658003b7fa8b5c74c1a8e711cffaadf9ea82ee90e",
    ),
}
EXAMPLE_FILE_BEFORE = "1ba5448b8c8f2a77b5cdf456bd82de4d6312c70e1681f2e1c2c9b5fb4f9fb79e"
SPLITS = ("train", "val", "test", "rl")


def _fingerprints(task) -> tuple[str, str]:
    tests, rest = hashlib.sha256(), hashlib.sha256()
    for split in SPLITS:
        for e in getattr(task, split):
            tests.update(json.dumps([split, e.id, e.tests], sort_keys=True).encode())
            old_fields = (e.prompt, e.target, e.lang, e.tests, e.context_prefix, e.meta)
            rest.update(repr((split, e.id, *old_fields, e.messages)).encode())
    return tests.hexdigest(), rest.hexdigest()


def _examples(task) -> list[Example]:
    return [e for split in SPLITS for e in getattr(task, split)]


def _runs(program: str, test_code: str) -> bool:
    ns: dict = {}
    try:
        exec(compile(program + "\n" + test_code, "<t>", "exec"), ns)  # trusted generated code
    except Exception:
        return False
    return True


def _check_sides(tests: dict, public: dict, private: dict) -> None:
    """Disjoint, covering, both non-empty, no private text in the public tests."""
    if "test_code" in tests:
        whole = assert_statements(tests["test_code"])
        pub = assert_statements(public["test_code"])
        priv = assert_statements(private["test_code"])
        assert pub and priv
        assert Counter(pub) + Counter(priv) == Counter(whole)
        assert not set(pub) & set(priv)
        for text in priv:
            assert text not in public["test_code"]
        # setup lines are shared: removing the asserts leaves the same text on both sides
        lines, units = assert_block_units(tests["test_code"])
        setup = [ln for i, ln in enumerate(lines) if not any(a <= i < b for a, b in units)]
        for side in (public, private):
            side_lines, side_units = assert_block_units(side["test_code"])
            rest = [
                ln.rstrip("\n")
                for i, ln in enumerate(side_lines)
                if not any(a <= i < b for a, b in side_units)
            ]
            assert rest == [ln.rstrip("\n") for ln in setup]
    else:
        pairs = list(zip(map(repr, tests["inputs"]), map(repr, tests["outputs"]), strict=True))
        pub = list(zip(map(repr, public["inputs"]), map(repr, public["outputs"]), strict=True))
        priv = list(zip(map(repr, private["inputs"]), map(repr, private["outputs"]), strict=True))
        assert pub and priv and len(pub) + len(priv) == len(pairs)
        assert sorted(pub + priv) == sorted(pairs)
        assert public.get("fn_name") == private.get("fn_name") == tests.get("fn_name")
        # kept in their order: each side is a subsequence of the tests
        it = iter(pairs)
        assert all(p in it for p in pub)


# -- Example -------------------------------------------------------------------------------


def test_example_fields_and_helper():
    tests = {"test_code": "assert f(1) == 1\nassert f(2) == 2\n"}
    plain = Example("a", "p", "", "python", tests, "", {})
    assert plain.public_tests is None and plain.private_tests is None
    assert plain.public_and_private_tests() == (tests, tests)
    assert Example("b", "p", "", "python").public_and_private_tests() == (None, None)
    pub, priv = split_tests(tests, [1])
    split = Example("a", "p", "", "python", tests, public_tests=pub, private_tests=priv)
    assert split.public_and_private_tests() == (pub, priv) and split.tests == tests


# -- the splitting helpers ------------------------------------------------------------------


BLOCK = (
    "import math\n"
    "\n"
    "@staticmethod\n"
    "def helper(x):\n"
    "    assert x  # a definition, not a test\n"
    "    return x\n"
    "# data\n"
    "XS = [1, 2]\n"
    "assert f(1) == 2\n"
    "assert f(\n"
    "    2) == 3  # two lines\n"
    "for x in XS:\n"
    "    assert f(x) > 0\n"
    "assert f(3) == 4; assert f(4) == 5\n"
    "assert f(math.pi) > 0"
)


def test_assert_block_units_and_split():
    lines, units = assert_block_units(BLOCK)
    texts = assert_statements(BLOCK)
    assert len(units) == 5 == num_tests({"test_code": BLOCK})
    assert texts[1] == "assert f(\n    2) == 3  # two lines\n"
    assert texts[2].startswith("for x in XS:") and texts[3].count("assert") == 2
    pub, priv = split_tests({"test_code": BLOCK}, [0, 4])
    _check_sides({"test_code": BLOCK}, pub, priv)
    assert pub["test_code"] == (
        "import math\n\n@staticmethod\ndef helper(x):\n    assert x  # a definition, not a test\n"
        "    return x\n# data\nXS = [1, 2]\nassert f(1) == 2\nassert f(math.pi) > 0"
    )
    assert "assert f(3) == 4; assert f(4) == 5\n" in priv["test_code"]
    program = "def f(x):\n    return x + 1\n"
    assert _runs(program, pub["test_code"]) and _runs(program, priv["test_code"])


@pytest.mark.parametrize(
    "code",
    [
        "def check(c):\n    assert c(1)\n\ncheck(f)\n",  # HumanEval: a call runs the tests
        "assert f(1)\ncheck(f)\n",
        "x = 1; assert f(x)\n",  # an assert sharing its line with setup
        "assert f(1\n",  # not Python
    ],
)
def test_unsplittable_blocks_are_not_split(code):
    assert assert_block_units(code) is None and num_tests({"test_code": code}) == 0
    assert seeded_split({"test_code": code}, 3, "k") == (None, None)
    assert first_public_split({"test_code": code}) == (None, None)


def test_split_tests_rejects_a_one_sided_split():
    tests = {"inputs": ["1", "2"], "outputs": ["1", "2"]}
    for bad in ([], [0, 1], [2], [-1]):
        with pytest.raises(ValueError, match="do not split"):
            split_tests(tests, bad)


def test_seeded_split_counts_stability_and_properties():
    rng = random.Random(0)
    for n in range(0, 40):
        io = {"inputs": [f"{i}\n" for i in range(n)], "outputs": [str(i) for i in range(n)]}
        if n % 3 == 0:
            io["fn_name"] = "g"
        pub, priv = seeded_split(io, 3, "seed", f"id{n}")
        if n < 2:
            assert pub is priv is None
            continue
        assert len(pub["inputs"]) == max(1, min(3, n // 2))
        _check_sides(io, pub, priv)
        assert seeded_split(io, 3, "seed", f"id{n}") == (pub, priv)  # a pure function of the key
        code = "".join(f"assert f({i}) == {rng.randint(0, 9)}\n" for i in range(n))
        pub_a, priv_a = seeded_split({"test_code": code}, 2, "seed", n)
        _check_sides({"test_code": code}, pub_a, priv_a)
    io = {"inputs": [str(i) for i in range(20)], "outputs": [str(i) for i in range(20)]}
    draws = {json.dumps(seeded_split(io, 3, "seed", f"p{i}")[0]) for i in range(10)}
    assert len(draws) > 1  # the key changes the draw


# -- synthesis demo ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo():
    return {cfg: build_synthesis_demo(cfg) for cfg in BEFORE}


def test_synthesis_tests_unchanged(demo):
    for cfg, task in demo.items():
        assert _fingerprints(task) == BEFORE[cfg], cfg


def test_synthesis_split_is_sound(demo):
    for task in demo.values():
        for ex in _examples(task):
            assert num_tests(ex.tests) >= 2
            pub, priv = ex.public_and_private_tests()
            assert (pub, priv) == (ex.public_tests, ex.private_tests)
            _check_sides(ex.tests, pub, priv)
            assert len(assert_statements(pub["test_code"])) == 1
            ref = ex.meta["reference"]
            assert _runs(ref, pub["test_code"]) and _runs(ref, priv["test_code"]), ex.id
            # the private asserts alone still reject every plausible bug of the problem
            for kind, program in ex.meta["bug_variants"]:
                assert not _runs(program, priv["test_code"]), (ex.id, kind)


def test_synthesis_split_is_a_function_of_seed_and_problem(demo):
    default = SynthesisDemoConfig()
    big = demo[default]
    by_problem: dict = {}
    for ex in _examples(big):
        key = (ex.meta["template"], tuple(sorted(ex.meta["params"].items())))
        by_problem.setdefault(key, set()).add(ex.public_tests["test_code"])
    assert all(len(v) == 1 for v in by_problem.values())  # the same problem splits one way
    # another batch order / size of the same seed: the same problems split the same way
    small = build_synthesis_demo(SynthesisDemoConfig(num_train=200, num_val=10, num_test=30))
    for ex in _examples(small):
        key = (ex.meta["template"], tuple(sorted(ex.meta["params"].items())))
        if key in by_problem:
            assert by_problem[key] == {ex.public_tests["test_code"]}
    again = build_synthesis_demo(SynthesisDemoConfig(num_train=200, num_val=10, num_test=30))
    assert [(e.public_tests, e.private_tests) for e in _examples(again)] == [
        (e.public_tests, e.private_tests) for e in _examples(small)
    ]


# -- MBPP ----------------------------------------------------------------------------------


def _mbpp(task_id, n_asserts=3, setup=""):
    return {
        "task_id": task_id,
        "text": f"Write a function to add {task_id}.",
        "code": f"def add_k(x):\n    return x + {task_id}",
        "test_list": [f"assert add_k({i}) == {i + task_id}" for i in range(n_asserts)],
        "test_setup_code": setup,
        "challenge_test_list": [],
    }


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_mbpp_first_assert_public(tmp_path):
    recs = [_mbpp(11), _mbpp(12, setup="import math\nK = 0"), _mbpp(13, n_asserts=1)]
    task = load_mbpp(str(_write_jsonl(tmp_path / "mbpp.jsonl", recs)))
    a, b, one = task.test
    # tests are what they always were
    assert a.tests == {"test_code": "assert add_k(0) == 11\nassert add_k(1) == 12\n"
                       "assert add_k(2) == 13\n"}  # fmt: skip
    assert a.public_tests == {"test_code": "assert add_k(0) == 11\n"}
    assert a.private_tests == {"test_code": "assert add_k(1) == 12\nassert add_k(2) == 13\n"}
    assert b.public_tests["test_code"] == "import math\nK = 0\nassert add_k(0) == 12\n"
    assert b.private_tests["test_code"].startswith("import math\nK = 0\nassert add_k(1)")
    for ex in (a, b):
        _check_sides(ex.tests, ex.public_tests, ex.private_tests)
        assert _runs(ex.reference_program(), ex.private_tests["test_code"])
    assert one.public_tests is one.private_tests is None
    assert one.public_and_private_tests() == (one.tests, one.tests)


def test_mbpp_prompt_can_list_only_the_public_assert(tmp_path):
    path = str(_write_jsonl(tmp_path / "mbpp.jsonl", [_mbpp(11), _mbpp(13, n_asserts=1)]))
    every = load_mbpp(path).test[0]
    assert all(f"assert add_k({i}) == {i + 11}" in every.prompt for i in range(3))  # the paper's
    public, one = load_mbpp(path, prompt_tests="public").test
    assert "assert add_k(0) == 11" in public.prompt
    for line in public.private_tests["test_code"].splitlines():
        assert line not in public.prompt
    assert public.tests == every.tests and public.private_tests == every.private_tests
    assert "assert add_k(0) == 13" in one.prompt  # no split: its one assert is shown
    with pytest.raises(UserError, match="prompt_tests"):
        load_mbpp(path, prompt_tests="some")


# -- APPS ----------------------------------------------------------------------------------


def _apps_problem(d, n_pairs, fn_name=None):
    d.mkdir(parents=True)
    (d / "question.txt").write_text("Echo.")
    io = {
        "inputs": [f"{i}\n" for i in range(n_pairs)],
        "outputs": [f"{i}\n" for i in range(n_pairs)],
    }
    if fn_name:
        io = {
            "inputs": [[i] for i in range(n_pairs)],
            "outputs": list(range(n_pairs)),
            "fn_name": fn_name,
        }
    (d / "input_output.json").write_text(json.dumps(io))
    (d / "solutions.json").write_text(json.dumps(["print(input())"]))


def test_apps_seeded_split(tmp_path):
    root = tmp_path / "APPS"
    sizes = [1, 2, 3, 7, 12, 30]
    for i, n in enumerate(sizes):
        _apps_problem(root / "test" / f"{i:04d}", n, fn_name="echo" if i == 3 else None)
    cfg = load_config(None, ["data.task=apps", f"data.path={root}"]).data
    task = load_task(cfg)
    assert load_task(cfg) == task and load_apps(str(root)) == task  # data.seed defaults to 0
    assert [num_tests(e.tests) for e in task.test] == sizes
    assert task.test[0].public_tests is task.test[0].private_tests is None
    for ex, n in zip(task.test[1:], sizes[1:], strict=True):
        _check_sides(ex.tests, ex.public_tests, ex.private_tests)
        assert len(ex.public_tests["inputs"]) == max(1, min(3, n // 2))
    assert task.test[3].public_tests["fn_name"] == "echo"
    other = load_apps(str(root), seed=1)
    assert [e.tests for e in other.test] == [e.tests for e in task.test]
    assert [e.public_tests for e in other.test] != [e.public_tests for e in task.test]
    seeded = load_task(
        load_config(None, ["data.task=apps", f"data.path={root}", "data.seed=1"]).data
    )
    assert [e.public_tests for e in seeded.test] == [e.public_tests for e in other.test]


# -- problems ------------------------------------------------------------------------------


def test_problems_with_and_without_private_tests(tmp_path):
    add = {"inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"]}
    hidden = {"inputs": ["5 6\n"], "outputs": ["11\n"]}
    recs = [
        {"id": "a", "prompt": "Add.", "language": "python", "tests": add, "private_tests": hidden},
        {"id": "b", "prompt": "Add.", "language": "python", "tests": add},
    ]
    path = _write_jsonl(tmp_path / "p.jsonl", recs)
    task = load_task(load_config(None, ["data.task=problems", f"data.path={path}"]).data)
    a, b = task.train
    assert a.tests == add and a.public_tests == add and a.private_tests == hidden
    assert a.meta["private_tests"] == hidden  # still where reward plugins read it
    assert a.public_and_private_tests() == (add, hidden)
    assert b.tests == add and b.public_tests is b.private_tests is None
    assert b.public_and_private_tests() == (add, add) and "private_tests" not in b.meta


def test_problems_example_file_unchanged():
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "configs" / "problems" / "example.jsonl"
    task = load_task(load_config(None, ["data.task=problems", f"data.path={path}"]).data)
    assert _fingerprints(task)[1] == EXAMPLE_FILE_BEFORE
    split = [e for e in _examples(task) if e.private_tests is not None]
    assert split and all(e.public_tests == e.tests for e in split)
