"""Syntax match: S-expression keys, comment removal per language, robustness, threads."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ppocoder_jax.errors import UserError
from ppocoder_jax.rewards.matching import ast_match, canonical_language, dfg_match, match
from ppocoder_jax.rewards.matching.parsers import get_parser
from ppocoder_jax.rewards.matching.tree import build_program

DATA = Path(__file__).parent / "data" / "codebleu_reference"
LANGS = ["python", "java", "csharp", "javascript", "php", "c", "cpp"]


def _programs(lang: str, limit: int = 40) -> list[str]:
    out = []
    with open(DATA / f"{lang}.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            out += [row["reference"], row["candidate"]]
            if len(out) >= limit:
                break
    return out


def _sexps_without_comments(code: str, lang: str) -> list[str]:
    """str(node) of every node with children (and the root), in post-order, for code that has
    no comments: the order in which `build_program` collects its keys."""
    tree = get_parser(lang).parse(code.encode())
    out = []

    def visit(node):
        for child in node.children:
            if child.children:
                visit(child)
        out.append(str(node))

    visit(tree.root_node)
    return out


@pytest.mark.parametrize("lang", LANGS)
def test_keys_equal_iff_sexp_strings_equal(lang):
    """Interned keys are a faithful stand-in for tree-sitter's S-expression strings: over all
    subtrees of many programs (one shared intern table), equal keys <=> equal str(node)."""
    markers = ("#",) if lang == "python" else ("//", "/*", "#") if lang == "php" else ("//", "/*")
    programs = [p for p in _programs(lang, 80) if not any(m in p for m in markers)]
    if lang == "python":
        programs = [p for p in programs if '"""' not in p and "'''" not in p]  # docstrings
    assert len(programs) >= 10
    intern: dict = {}
    key_to_sexp: dict = {}
    sexp_to_key: dict = {}
    for code in programs:
        prog = build_program(code.strip(), lang, intern)
        sexps = _sexps_without_comments(code.strip(), lang)
        assert len(sexps) == len(prog.subtree_keys)
        for key, sexp in zip(prog.subtree_keys, sexps):
            assert key_to_sexp.setdefault(key, sexp) == sexp
            assert sexp_to_key.setdefault(sexp, key) == key
    assert len(key_to_sexp) > 50


@pytest.mark.parametrize(
    "lang,plain,commented",
    [
        ("python", "x = a // b\ny = x\n", "x = a // b  # floor\n# note\ny = x\n"),
        (
            "java",
            "class A { int f() { return 1; } }",
            "class A { /* c */ int f() { // x\n return 1; } }",
        ),
        (
            "csharp",
            "class A { int F() { return 1; } }",
            "class A { /// doc\n int F() { /* c */ return 1; } }",
        ),
        ("javascript", "let x = 1;\nlet y = x;\n", "let x = 1; // one\n/* two */ let y = x;\n"),
        (
            "php",
            "<?php\n$x = 1;\n$y = $x;\n",
            "<?php\n$x = 1; # hash\n// slash\n/* block */ $y = $x;\n",
        ),
        (
            "c",
            "int main() { int x = 1; return x; }",
            "int main() { /* c */ int x = 1; // d\n return x; }",
        ),
        (
            "cpp",
            "int main() { int x = 1; return x; }",
            "int main() { int x = 1; // d\n return /* e */ x; }",
        ),
    ],
)
def test_comments_are_removed_per_language(lang, plain, commented):
    assert ast_match(plain, commented, lang) == 1.0
    assert ast_match(commented, plain, lang) == 1.0
    assert dfg_match(commented, plain, lang) == dfg_match(plain, plain, lang)


def test_python_floor_division_is_not_a_comment():
    assert ast_match("x = a // b\n", "x = a\n", "python") < 1.0


def test_python_docstrings_are_removed():
    ref = 'def f(a):\n    """Add one."""\n    return a + 1\n'
    cand = "def f(a):\n    return a + 1\n"
    assert ast_match(ref, cand, "python") == 1.0


def test_identical_programs_score_one_and_empty_candidate_zero():
    code = "def f(a):\n    x = a + 1\n    for i in range(x):\n        x += i\n    return x\n"
    assert match(code, code, "python") == (1.0, 1.0)
    assert match(code, "", "python") == (0.0, 0.0)
    assert match(code, "   \n", "python") == (0.0, 0.0)


def test_unparsable_candidate_still_gets_a_value():
    ref = "public class A { int f(int a) { int x = a + 1; return x; } }"
    cand = "public class A { int f(int a) { int x = = ; return"
    r = match(ref, cand, "java")
    assert 0.0 < r.ast_match < 1.0
    assert 0.0 <= r.dfg_match <= 1.0


def test_reference_without_data_flow_gives_zero():
    assert dfg_match("pass\n", "pass\n", "python") == 0.0


def test_multiple_references_sum_counts():
    a = "x = 1\ny = x\n"
    b = "def f():\n    return 2\n"
    single_a = match(a, a, "python")
    both = match([a, b], a, "python")
    assert single_a.ast_match == 1.0
    assert both.ast_match < 1.0


def test_language_names_and_aliases():
    assert canonical_language("c_sharp") == "csharp"
    assert canonical_language("C++") == "cpp"
    assert match("int x = 1;", "int x = 1;", "c_sharp").ast_match == 1.0
    with pytest.raises(UserError):
        match("x", "x", "rust")


def test_thread_pool_gives_the_serial_results():
    pairs = []
    for lang in LANGS:
        progs = _programs(lang, 12)
        pairs += [(progs[i], progs[i + 1], lang) for i in range(0, len(progs) - 1, 2)]
    serial = [match(r, c, lang) for r, c, lang in pairs]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda p: match(*p), pairs * 3))
    assert threaded == serial * 3


def test_program_cache_gives_the_uncached_results():
    from ppocoder_jax.rewards.matching import match_counts
    from ppocoder_jax.rewards.matching.match import set_cache_size

    pairs = []
    for lang in ("python", "java", "php"):
        progs = _programs(lang, 10)
        pairs += [(progs[i], progs[(i + 3) % len(progs)], lang) for i in range(len(progs))]
    fresh = [match_counts(r, c, lang, cache=False) for r, c, lang in pairs]
    try:
        set_cache_size(4)  # small: entries get evicted and recomputed
        for _ in range(2):
            assert [match_counts(r, c, lang) for r, c, lang in pairs] == fresh
            refs_only = [match_counts(r, c, lang, cache_candidate=False) for r, c, lang in pairs]
            assert refs_only == fresh
        set_cache_size(0)
        assert [match_counts(r, c, lang) for r, c, lang in pairs] == fresh
    finally:
        set_cache_size(1024)


def test_identical_and_empty_candidates():
    from ppocoder_jax.rewards.matching import match_counts

    for lang in ("python", "java", "c"):
        prog = _programs(lang, 2)[0]
        same = match_counts(prog, prog, lang, cache=False)
        assert same.ast_matched == same.ast_total > 0
        assert same.dfg_matched == same.dfg_total
        # the reference analysed once when equal to the candidate: same counts as two copies
        assert match_counts([prog, prog + " "], prog, lang, cache=False) == tuple(
            2 * x for x in same
        )
        empty = match_counts(prog, "  ", lang, cache=False)
        assert empty == (0, same.ast_total, 0, same.dfg_total)


def test_corpus_codebleu_sums_counts():
    from ppocoder_jax.rewards.matching import codebleu, corpus_codebleu, match_counts

    a_ref, a_cand = "x = 1\ny = x + 2\n", "x = 1\ny = x\n"
    b_ref, b_cand = "def f(a):\n    return a * 2\n", "def g(b):\n    return b\n"
    one = corpus_codebleu([a_ref], [a_cand], "python")
    assert one == codebleu(a_ref, a_cand, "python")
    both = corpus_codebleu([a_ref, [b_ref]], [a_cand, b_cand], "python")
    ca = match_counts(a_ref, a_cand, "python")
    cb = match_counts(b_ref, b_cand, "python")
    assert both["ast_match"] == (ca.ast_matched + cb.ast_matched) / (ca.ast_total + cb.ast_total)
    assert both["dfg_match"] == (ca.dfg_matched + cb.dfg_matched) / (ca.dfg_total + cb.dfg_total)
