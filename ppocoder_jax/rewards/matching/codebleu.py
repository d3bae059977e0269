"""CodeBLEU (Ren et al. 2020, CodeXGLUE): 0.25 BLEU + 0.25 keyword-weighted n-gram match +
0.25 AST match + 0.25 data-flow match.

BLEU and the weighted n-gram match follow CodeXGLUE's code (NLTK's corpus BLEU with
Chen & Cherry smoothing method 1, epsilon 0.1, on whitespace tokens). One quirk of the
weighted n-gram match is kept on purpose so numbers stay comparable with published CodeBLEU:
its brevity penalty measures each reference as 2 tokens long (CodeXGLUE passes a
[tokens, weights] pair where a token list is expected), so it only penalises candidates of
fewer than 2 tokens.

One deliberate difference: the `codebleu` package adds `theta * (dfg or 1)`, i.e. a data-flow
score of 0 counts as 1; CodeXGLUE's formula, and ours, use the score as it is.
"""

from __future__ import annotations

import math
from collections import Counter

from ppocoder_jax.rewards.matching.keywords import KEYWORDS
from ppocoder_jax.rewards.matching.languages import canonical_language
from ppocoder_jax.rewards.matching.match import MatchCounts, match_counts

_EPSILON = 0.1  # smoothing method 1


def _ngrams(tokens: list, n: int) -> Counter:
    if len(tokens) < n:
        return Counter()
    if n == 1:
        return Counter((t,) for t in tokens)
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _closest(ref_lens: list[int], hyp_len: int) -> int:
    return min(ref_lens, key=lambda r: (abs(r - hyp_len), r))


def _bleu_from_stats(nums, dens, hyp_len, ref_len, weights) -> float:
    if nums[0] == 0:
        return 0.0
    if hyp_len > ref_len:
        bp = 1.0
    elif hyp_len == 0:
        bp = 0.0
    else:
        bp = math.exp(1 - ref_len / hyp_len)
    logs = []
    for w, num, den in zip(weights, nums, dens):
        if num == 0:
            num = _EPSILON
        logs.append(w * math.log(num / den))
    return bp * math.exp(math.fsum(logs))


def ngram_stats(references: list[list[str]], hypothesis: list[str], order: int = 4):
    """Clipped n-gram precision counts of one hypothesis (NLTK's modified_precision)."""
    nums, dens = [], []
    for n in range(1, order + 1):
        counts = _ngrams(hypothesis, n)
        max_counts: dict = {}
        for ref in references:
            ref_counts = _ngrams(ref, n)
            for ng in counts:
                c = ref_counts.get(ng, 0)
                if c > max_counts.get(ng, 0):
                    max_counts[ng] = c
        nums.append(sum(min(c, max_counts.get(ng, 0)) for ng, c in counts.items()))
        dens.append(max(1, sum(counts.values())))
    return nums, dens, len(hypothesis), _closest([len(r) for r in references], len(hypothesis))


def weighted_ngram_stats(
    references: list[list[str]], hypothesis: list[str], keywords, order: int = 4
):
    """Keyword-weighted n-gram recall counts (CodeXGLUE's modified_recall)."""
    nums = [0.0] * order
    dens = [0.0] * order
    hyp_counts = [_ngrams(hypothesis, n) for n in range(1, order + 1)]
    for ref in references:
        for n in range(1, order + 1):
            ref_counts = _ngrams(ref, n)
            hyp = hyp_counts[n - 1]
            if n == 1:
                num = den = 0.0
                for ng, c in ref_counts.items():
                    w = 1 if ng[0] in keywords else 0.2
                    num += min(c, hyp.get(ng, 0)) * w
                    den += c * w
                nums[0] += num
                dens[0] += max(1, den)
            else:
                nums[n - 1] += sum(min(c, hyp.get(ng, 0)) for ng, c in ref_counts.items())
                dens[n - 1] += max(1, sum(ref_counts.values()))
    # CodeXGLUE's quirk: each reference "length" is 2 (a [tokens, weights] pair)
    return nums, dens, len(hypothesis), _closest([2] * len(references), len(hypothesis))


def _sum_stats(stats):
    nums = [sum(s[0][i] for s in stats) for i in range(len(stats[0][0]))]
    dens = [sum(s[1][i] for s in stats) for i in range(len(stats[0][1]))]
    return nums, dens, sum(s[2] for s in stats), sum(s[3] for s in stats)


def corpus_codebleu(
    references: list,
    candidates: list[str],
    lang: str,
    weights: tuple[float, float, float, float] = (0.25, 0.25, 0.25, 0.25),
) -> dict:
    """Corpus-level CodeBLEU: n-gram statistics and match counts are summed over the corpus
    before dividing, as CodeXGLUE does. `references[i]` is a string or a list of strings."""
    lang = canonical_language(lang)
    if len(references) != len(candidates):
        raise ValueError("references and candidates differ in length")
    if not candidates:
        raise ValueError("empty corpus")
    keywords = KEYWORDS[lang]
    bleu_stats, wbleu_stats = [], []
    counts = [0, 0, 0, 0]
    for refs, cand in zip(references, candidates):
        refs = [refs] if isinstance(refs, str) else list(refs)
        ref_tokens = [r.strip().split() for r in refs]
        cand_tokens = cand.strip().split()
        bleu_stats.append(ngram_stats(ref_tokens, cand_tokens))
        wbleu_stats.append(weighted_ngram_stats(ref_tokens, cand_tokens, keywords))
        c: MatchCounts = match_counts(refs, cand, lang)
        for i, v in enumerate(c):
            counts[i] += v
    uniform = (0.25, 0.25, 0.25, 0.25)
    ngram = _bleu_from_stats(*_sum_stats(bleu_stats), uniform)
    weighted = _bleu_from_stats(*_sum_stats(wbleu_stats), uniform)
    ast = counts[0] / counts[1] if counts[1] else 0.0
    dfg = counts[2] / counts[3] if counts[3] else 0.0
    alpha, beta, gamma, theta = weights
    return {
        "ngram_match": ngram,
        "weighted_ngram_match": weighted,
        "ast_match": ast,
        "dfg_match": dfg,
        "codebleu": alpha * ngram + beta * weighted + gamma * ast + theta * dfg,
    }


def codebleu(
    references,
    candidate: str,
    lang: str,
    weights: tuple[float, float, float, float] = (0.25, 0.25, 0.25, 0.25),
) -> dict:
    """CodeBLEU of one candidate against one reference (a string) or several (a list)."""
    refs = [references] if isinstance(references, str) else list(references)
    return corpus_codebleu([refs], [candidate], lang, weights)
