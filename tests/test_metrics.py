"""Evaluation metrics: BLEU, exact match, edit similarity, compilation rate, pass@k."""

from __future__ import annotations

import math
import random
from fractions import Fraction
from math import comb

import pytest

from ppocoder_jax.rewards.metrics import (
    bleu,
    compilation_rate,
    edit_similarity,
    exact_match,
    lcs_length,
    mean_edit_similarity,
    mean_pass_at_k,
    pass_at_k,
)


def test_bleu_identical_and_disjoint():
    assert bleu(["a b c d e"], ["a b c d e"]) == pytest.approx(1.0)
    # smoothing: (0+1)/(p+1) per order, no brevity penalty at equal length
    expected = math.exp(sum(math.log(1 / (p + 1)) for p in (5, 4, 3, 2)) / 4)
    assert bleu(["a b c d e"], ["v w x y z"]) == pytest.approx(expected, abs=1e-12)


def test_bleu_by_hand():
    ref, cand = "the cat sat on the mat", "the cat sat on mat"
    # matches per order: 5/5, 3/4, 2/3, 1/2 (add-one smoothed); bp = exp(1 - 6/5)
    precisions = [(5 + 1) / (5 + 1), (3 + 1) / (4 + 1), (2 + 1) / (3 + 1), (1 + 1) / (2 + 1)]
    expected = math.exp(sum(map(math.log, precisions)) / 4) * math.exp(1 - 6 / 5)
    assert bleu([ref], [cand]) == pytest.approx(expected, abs=1e-12)
    assert bleu(ref, cand) == pytest.approx(expected, abs=1e-12)


def test_bleu_corpus_and_multiple_references():
    refs = [["a b c d", "a b x d e"], ["q r s t"]]
    cands = ["a b x d", "q r s t"]
    value = bleu(refs, cands)
    assert 0.0 < value <= 1.0
    # the second reference of the first pair makes "a b x d" a full match
    assert value == pytest.approx(1.0)
    assert bleu(["a b"], [""]) == 0.0


def test_exact_match_ignores_whitespace_layout():
    assert exact_match(["x = 1\ny = 2"], ["x  =  1 y = 2"]) == 1.0
    assert exact_match(["x = 1", "y"], ["x = 2", "y"]) == 0.5
    assert exact_match([["a", "b"]], ["b"]) == 1.0


def _lcs_dp(a: str, b: str) -> int:
    prev = [0] * (len(b) + 1)
    for ca in a:
        cur = [0]
        for j, cb in enumerate(b):
            cur.append(prev[j] + 1 if ca == cb else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def test_lcs_bit_parallel_equals_dynamic_programming():
    rng = random.Random(0)
    for _ in range(300):
        a = "".join(rng.choice("abcd \n") for _ in range(rng.randint(0, 40)))
        b = "".join(rng.choice("abcde\n") for _ in range(rng.randint(0, 40)))
        assert lcs_length(a, b) == _lcs_dp(a, b)


def test_edit_similarity_values():
    # rapidfuzz fuzz.ratio("kitten", "sitting") == 61.538...: LCS 4, 2*4/13
    assert edit_similarity("kitten", "sitting") == pytest.approx(8 / 13)
    assert edit_similarity("abc", "abc") == 1.0
    assert edit_similarity("abc", "") == 0.0
    assert edit_similarity("", "") == 1.0
    assert mean_edit_similarity(["abc", "kitten"], ["abc", "sitting"]) == pytest.approx(
        (1 + 8 / 13) / 2
    )


def test_compilation_rate():
    class R:
        def __init__(self, compiled):
            self.compiled = compiled

    assert compilation_rate([True, False, True, True]) == 0.75
    assert compilation_rate([R(True), R(False)]) == 0.5
    assert compilation_rate([]) == 0.0


def _exact_pass_at_k(n, c, k) -> Fraction:
    return 1 - Fraction(comb(n - c, k), comb(n, k))


@pytest.mark.parametrize("n", [1, 2, 5, 10, 37])
def test_pass_at_k_equals_the_combinatorial_formula(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(float(_exact_pass_at_k(n, c, k)), abs=1e-12)


def test_pass_at_k_is_stable_for_large_n():
    for n, c, k in [(1000, 1, 1), (1000, 3, 100), (1000, 500, 10), (1000, 1, 999), (999, 7, 500)]:
        exact = float(_exact_pass_at_k(n, c, k))
        assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-9, abs=1e-12)
    assert pass_at_k(1000, 0, 100) == 0.0
    assert pass_at_k(1000, 1000, 1) == 1.0
    assert pass_at_k(1000, 1, 1) == pytest.approx(0.001)


def test_pass_at_k_rejects_bad_arguments():
    for args in [(5, 6, 1), (5, 1, 6), (5, 1, 0), (0, 0, 1), (5, -1, 1), (5, 1.5, 1)]:
        with pytest.raises(ValueError):
            pass_at_k(*args)


def test_mean_pass_at_k():
    assert mean_pass_at_k([10, 10], [0, 10], 1) == pytest.approx(0.5)
