"""Evaluation metrics: BLEU, exact match, edit similarity, compilation rate, pass@k.

- `bleu`: corpus BLEU-4 with add-one smoothing on every n-gram order, as CodeXGLUE's
  code-to-code evaluator computes it (the TensorFlow NMT `compute_bleu(..., smooth=True)`), on
  whitespace tokens; a fraction in [0, 1] (CodeXGLUE prints 100x, rounded).
- `exact_match`: whitespace-token equality (CodeXGLUE's code completion EM, `pred.split() ==
  gold.split()`).
- `edit_similarity`: the InDel-normalised Levenshtein similarity of the two strings,
  1 - indel(a, b) / (len(a) + len(b)) = 2 * LCS / (len(a) + len(b)), i.e. rapidfuzz's
  `fuzz.ratio / 100` (python-Levenshtein's `ratio`), computed exactly with a bit-parallel LCS.
- `compilation_rate`: fraction of programs that compiled.
- `pass_at_k`: the unbiased estimator 1 - C(n-c, k) / C(n, k) of Chen et al. (2021), evaluated
  as 1 - prod_{i=n-c+1}^{n} (1 - k / i), stable for n in the thousands.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence


def _as_lists(references, candidates):
    if isinstance(candidates, str):
        candidates = [candidates]
        references = [references]
    references = [[r] if isinstance(r, str) else list(r) for r in references]
    candidates = list(candidates)
    if len(references) != len(candidates):
        raise ValueError(f"{len(references)} references for {len(candidates)} candidates")
    return references, candidates


def _ngram_counts(tokens: list[str], max_order: int) -> Counter:
    counts: Counter = Counter()
    for order in range(1, max_order + 1):
        for i in range(len(tokens) - order + 1):
            counts[tuple(tokens[i : i + order])] += 1
    return counts


def bleu(references, candidates, max_order: int = 4, smooth: bool = True) -> float:
    """Corpus BLEU (CodeXGLUE code-to-code): `references[i]` is a string or a list of strings,
    `candidates` a list of strings (or one string with one reference)."""
    references, candidates = _as_lists(references, candidates)
    matches = [0] * max_order
    possible = [0] * max_order
    ref_len = cand_len = 0
    for refs, cand in zip(references, candidates):
        ref_tokens = [r.strip().split() for r in refs]
        cand_tokens = cand.strip().split()
        ref_len += min(len(r) for r in ref_tokens)
        cand_len += len(cand_tokens)
        merged: Counter = Counter()
        for r in ref_tokens:
            merged |= _ngram_counts(r, max_order)
        overlap = _ngram_counts(cand_tokens, max_order) & merged
        for ngram, count in overlap.items():
            matches[len(ngram) - 1] += count
        for order in range(1, max_order + 1):
            p = len(cand_tokens) - order + 1
            if p > 0:
                possible[order - 1] += p
    if smooth:
        precisions = [(m + 1.0) / (p + 1.0) for m, p in zip(matches, possible)]
    else:
        precisions = [m / p if p > 0 else 0.0 for m, p in zip(matches, possible)]
    if min(precisions) <= 0 or cand_len == 0:
        return 0.0
    geo_mean = math.exp(sum(math.log(p) for p in precisions) / max_order)
    ratio = cand_len / ref_len if ref_len else math.inf
    bp = 1.0 if ratio > 1.0 else math.exp(1 - 1.0 / ratio)
    return geo_mean * bp


def exact_match(references, candidates) -> float:
    """Fraction of candidates whose whitespace tokens equal those of (any of) the references."""
    references, candidates = _as_lists(references, candidates)
    if not candidates:
        return 0.0
    hits = sum(
        any(cand.split() == ref.split() for ref in refs)
        for refs, cand in zip(references, candidates)
    )
    return hits / len(candidates)


def lcs_length(a: str, b: str) -> int:
    """Length of the longest common subsequence (Hyyrö's bit-parallel algorithm)."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    masks: dict = {}
    for i, ch in enumerate(a):
        masks[ch] = masks.get(ch, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for ch in b:
        u = v & masks.get(ch, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def edit_similarity(reference: str, candidate: str) -> float:
    """InDel-normalised similarity in [0, 1] (rapidfuzz `fuzz.ratio` / 100); 1 for two empty
    strings."""
    total = len(reference) + len(candidate)
    if total == 0:
        return 1.0
    return 2.0 * lcs_length(reference, candidate) / total


def mean_edit_similarity(references: Sequence[str], candidates: Sequence[str]) -> float:
    if len(references) != len(candidates):
        raise ValueError("references and candidates differ in length")
    if not candidates:
        return 0.0
    return sum(edit_similarity(r, c) for r, c in zip(references, candidates)) / len(candidates)


def compilation_rate(compiled: Iterable) -> float:
    """Fraction of truthy entries (bools, or objects with a `.compiled` attribute)."""
    flags = [bool(getattr(x, "compiled", x)) for x in compiled]
    return sum(flags) / len(flags) if flags else 0.0


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k)."""
    for name, value in (("n", n), ("c", c), ("k", k)):
        if int(value) != value:
            raise ValueError(f"{name} must be an integer, got {value!r}")
    n, c, k = int(n), int(c), int(k)
    if n < 1 or k < 1 or k > n or c < 0 or c > n:
        raise ValueError(f"need 1 <= k <= n and 0 <= c <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def mean_pass_at_k(ns: Sequence[int], cs: Sequence[int], k: int) -> float:
    """Mean pass@k over problems (problems with fewer than k samples are an error)."""
    if len(ns) != len(cs):
        raise ValueError("ns and cs differ in length")
    if not ns:
        return 0.0
    return sum(pass_at_k(n, c, k) for n, c in zip(ns, cs)) / len(ns)
