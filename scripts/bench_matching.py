#!/usr/bin/env python3
"""Pairs per second of our AST+DFG reward vs the `codebleu` package, side by side.

Ours: `ppocoder_jax.rewards.matching.match(reference, candidate, lang)` (each program parsed
once, the tree shared by the AST and DFG parts). The package: `calc_codebleu([ref], [cand],
lang)`, the path the PPOCoder / CodeXGLUE code takes to get the same two numbers (it also
computes BLEU and the weighted n-gram match, removes comments with regexes and parses every
program twice). Both run on the same recorded pairs (tests/data/codebleu_reference), in one
process, alternating rounds, single-threaded. The package must be importable: run with the
scratch venv's site-packages on the path, e.g.

    PYTHONPATH=$(echo /tmp/cbvenv/lib/python3*/site-packages) .venv/bin/python \\
        scripts/bench_matching.py

(the package and our code use the same tree-sitter 0.26.1 and grammar versions).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ppocoder_jax.rewards.matching import match  # noqa: E402

PKG_LANG = {"csharp": "c_sharp"}


def load_pairs(langs, per_lang):
    pairs = []
    for lang in langs:
        with open(ROOT / "tests/data/codebleu_reference" / f"{lang}.jsonl", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f][:per_lang]
        pairs += [(r["reference"], r["candidate"], lang) for r in rows]
    return pairs


def run_ours(pairs):
    t = time.perf_counter()
    for ref, cand, lang in pairs:
        match(ref, cand, lang)
    return time.perf_counter() - t


def run_package(pairs):
    import logging

    from codebleu import calc_codebleu

    logging.disable(logging.WARNING)  # it warns on every pair without reference data flow
    t = time.perf_counter()
    for ref, cand, lang in pairs:
        calc_codebleu([ref], [cand], PKG_LANG.get(lang, lang))
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--langs", default="python,java,csharp,javascript,php,c,cpp")
    ap.add_argument("--per-lang", type=int, default=120, help="pairs per language")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    pairs = load_pairs(args.langs.split(","), args.per_lang)
    run_ours(pairs[:20])  # warm up parsers and imports
    run_package(pairs[:20])
    ours_t, pkg_t = [], []
    for _ in range(args.rounds):
        ours_t.append(run_ours(pairs))
        pkg_t.append(run_package(pairs))
    ours_best, pkg_best = min(ours_t), min(pkg_t)
    n = len(pairs)
    print(f"pairs per round: {n} ({args.langs}), rounds: {args.rounds}, best round reported")
    print(f"ours    match() AST+DFG       : {n / ours_best:9.1f} pairs/s")
    print(f"package calc_codebleu()       : {n / pkg_best:9.1f} pairs/s")
    print(f"speed-up                      : {pkg_best / ours_best:9.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
