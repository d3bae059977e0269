"""AST and data-flow match of a candidate against reference programs (the reward path).

Each program is parsed once; its light tree (comments removed) serves both the syntax and the
data-flow part. Parsers are per thread, so these functions can run on a thread pool.

Each thread also keeps a small LRU cache of analysed programs (AST subtree keys and normalised
data flow, keyed by language and text): in RL the same reference is matched against many
samples, and repeated samples are common. `set_cache_size(n)` caps it at n programs per thread
(`reward.match_cache_size`; 0 turns it off); the subtree intern table is reset past
`_MAX_INTERN` shapes, so a long run's matching memory stays bounded.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import NamedTuple

from ppocoder_jax.rewards.matching.ast_match import count_subtree_matches
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


_local = threading.local()
_cache_size = 1024  # programs per thread
_MAX_INTERN = 500_000  # distinct subtree shapes per thread before the tables are reset
_generation = 0
_all_caches: list[weakref.ref] = []  # every thread's program cache (for cache_lengths)
_all_lock = threading.Lock()


class _ProgramCache(OrderedDict):
    """One thread's LRU of analysed programs (a subclass, so it can be weakly referenced and
    carry the cache-size generation it was made under)."""

    generation = -1


def set_cache_size(size: int) -> None:
    """Programs kept per thread (0 disables the cache); every thread starts a fresh cache the
    next time it matches."""
    global _cache_size, _generation
    _cache_size = max(0, int(size))
    _generation += 1


def cache_size() -> int:
    return _cache_size


def cache_lengths() -> list[int]:
    """The number of programs each live thread's current cache holds now (for tests and
    benchmarks). A cache made before the last set_cache_size is left out: its thread drops it
    the next time it matches, and nothing reads it again."""
    with _all_lock:
        _all_caches[:] = [r for r in _all_caches if r() is not None]
        caches = [r() for r in _all_caches]
    return [len(c) for c in caches if c is not None and c.generation == _generation]


class _Analysis(NamedTuple):
    keys: list  # AST subtree keys (ints in this thread's intern table)
    flow: list | None  # normalised data flow (None: not computed)


def _tables():
    state = getattr(_local, "state", None)
    if state is None or state[2] != _generation or len(state[0]) > _MAX_INTERN:
        programs = _ProgramCache()
        programs.generation = _generation
        with _all_lock:
            _all_caches[:] = [r for r in _all_caches if r() is not None]
            _all_caches.append(weakref.ref(programs))
        state = _local.state = ({}, programs, _generation)
    return state


def _analyse(text: str, lang: str, intern: dict, cache, dfg: bool) -> _Analysis:
    if cache is None:
        prog = build_program(text, lang, intern)
        return _Analysis(prog.subtree_keys, normalized_data_flow(prog) if dfg else None)
    key = (lang, text)
    hit = cache.get(key)
    if hit is not None and (hit.flow is not None or not dfg):
        cache.move_to_end(key)
        return hit
    prog = build_program(text, lang, intern)
    result = _Analysis(prog.subtree_keys, normalized_data_flow(prog) if dfg else None)
    if _cache_size:
        cache[key] = result
        while len(cache) > _cache_size:
            cache.popitem(last=False)
    return result


def _as_list(references) -> list[str]:
    if isinstance(references, str):
        return [references]
    return list(references)


def match_counts(
    references,
    candidate: str,
    lang: str,
    *,
    dfg: bool = True,
    cache: bool = True,
    cache_candidate: bool = True,
) -> MatchCounts:
    """Counts of matched / total reference subtrees and data-flow edges (all references);
    `cache=False` analyses every program afresh (the thread's program cache is bypassed);
    `cache_candidate=False` uses the cache for the references only."""
    lang = canonical_language(lang)
    refs = [r.strip() for r in _as_list(references)]
    cand = candidate.strip()
    intern, programs, _ = _tables()  # reset (if due) before analysing: keys share a table
    programs = programs if cache else None
    cand_programs = programs if cache_candidate else None
    ast_m = ast_t = dfg_m = dfg_t = 0
    if not cand:  # an empty candidate matches nothing (only the totals are needed)
        for ref in refs:
            ref_a = _analyse(ref, lang, intern, programs, dfg)
            ast_t += len(ref_a.keys)
            if dfg and ref_a.flow:
                dfg_t += len(ref_a.flow)
        return MatchCounts(0, ast_t, 0, dfg_t)
    cand_a = _analyse(cand, lang, intern, cand_programs, dfg)
    cand_keys = set(cand_a.keys)
    for ref in refs:
        # a reference equal to the candidate is analysed once per call, cache or not
        ref_a = cand_a if ref == cand else _analyse(ref, lang, intern, programs, dfg)
        ast_m += count_subtree_matches(ref_a.keys, cand_keys)
        ast_t += len(ref_a.keys)
        if dfg and ref_a.flow:
            dfg_m += count_matches(ref_a.flow, cand_a.flow)
            dfg_t += len(ref_a.flow)
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
