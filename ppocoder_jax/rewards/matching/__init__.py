"""Tree-sitter syntax (AST) and data-flow (DFG) matching, CodeBLEU (see docs/ARCHITECTURE.md).

    match(reference, candidate, lang) -> MatchResult(ast_match, dfg_match)   # the reward path
    ast_match(...), dfg_match(...) -> float
    codebleu(references, candidate, lang) -> dict(ngram_match, weighted_ngram_match,
                                                  ast_match, dfg_match, codebleu)
    corpus_codebleu(references, candidates, lang) -> the same dict, corpus level

Languages: python, java, cpp, c, csharp (alias c_sharp), php, javascript.
"""

from __future__ import annotations

# Submodules first: the function names below shadow the `match` and `codebleu` submodules.
from ppocoder_jax.rewards.matching import codebleu as _codebleu_module  # noqa: F401
from ppocoder_jax.rewards.matching import match as _match_module  # noqa: F401
from ppocoder_jax.rewards.matching.codebleu import codebleu, corpus_codebleu  # noqa: E402
from ppocoder_jax.rewards.matching.languages import LANGUAGES, canonical_language
from ppocoder_jax.rewards.matching.match import (  # noqa: E402
    MatchCounts,
    MatchResult,
    ast_match,
    dfg_match,
    match,
    match_counts,
)

__all__ = [
    "LANGUAGES",
    "MatchCounts",
    "MatchResult",
    "ast_match",
    "canonical_language",
    "codebleu",
    "corpus_codebleu",
    "dfg_match",
    "match",
    "match_counts",
]
