"""AST and data-flow match of a candidate against reference programs (the reward path).

Each program is parsed once; its light tree (comments removed) serves both the syntax and the
data-flow part. Parsers are per thread, so these functions can run on a thread pool.
"""

from __future__ import annotations

from typing import NamedTuple

from ppocoder_jax.rewards.matching.ast_match import syntax_counts
from ppocoder_jax.rewards.matching.dataflow import count_matches, normalized_data_flow
from ppocoder_jax.rewards.matching.languages import canonical_language
from ppocoder_jax.rewards.matching.tree import build_program


class MatchResult(NamedTuple):
    ast_match: float
    dfg_match: float


class MatchCounts(NamedTuple):
    """Raw counts, for corpus-level aggregation (sum the counts, then divide)."""

    ast_matched: int
    ast_total: int
    dfg_matched: int
    dfg_total: int


def _as_list(references) -> list[str]:
    if isinstance(references, str):
        return [references]
    return list(references)


def match_counts(references, candidate: str, lang: str, *, dfg: bool = True) -> MatchCounts:
    """Counts of matched / total reference subtrees and data-flow edges (all references)."""
    lang = canonical_language(lang)
    refs = [r.strip() for r in _as_list(references)]
    cand = candidate.strip()
    intern: dict = {}
    cand_prog = build_program(cand, lang, intern)
    cand_flow = normalized_data_flow(cand_prog) if dfg else []
    ast_m = ast_t = dfg_m = dfg_t = 0
    for ref in refs:
        ref_prog = build_program(ref, lang, intern)
        m, t = syntax_counts(ref_prog, cand_prog)
        ast_m += m
        ast_t += t
        if dfg:
            ref_flow = normalized_data_flow(ref_prog)
            if ref_flow:
                dfg_m += count_matches(ref_flow, cand_flow)
                dfg_t += len(ref_flow)
    if not cand:  # an empty candidate matches nothing
        ast_m = dfg_m = 0
    return MatchCounts(ast_m, ast_t, dfg_m, dfg_t)


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def match(reference, candidate: str, lang: str) -> MatchResult:
    """AST and DFG match of `candidate` against `reference` (a string or a list of them)."""
    c = match_counts(reference, candidate, lang)
    return MatchResult(_ratio(c.ast_matched, c.ast_total), _ratio(c.dfg_matched, c.dfg_total))


def ast_match(reference, candidate: str, lang: str) -> float:
    c = match_counts(reference, candidate, lang, dfg=False)
    return _ratio(c.ast_matched, c.ast_total)


def dfg_match(reference, candidate: str, lang: str) -> float:
    """Fraction of the reference's normalised data-flow edges found in the candidate; 0 when
    the reference has none."""
    c = match_counts(reference, candidate, lang)
    return _ratio(c.dfg_matched, c.dfg_total)
