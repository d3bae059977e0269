#!/usr/bin/env python3
"""Pairs per second of our AST+DFG reward vs the `codebleu` package, side by side.

Ours: `ppocoder_jax.rewards.matching.match(reference, candidate, lang)`: each program parsed
once, the tree shared by the AST and DFG parts. Measured twice: with the per-thread program
cache bypassed (`match_counts(..., cache=False)`: every program parsed and analysed in every
call, the like-for-like number) and with it (the reward setting, where references repeat).
The package: `calc_codebleu([ref], [cand], lang)`, the path the PPOCoder / CodeXGLUE code takes
to get the same two numbers (it also computes BLEU and the weighted n-gram match, removes
comments with regexes / the tokenizer and parses every program twice).

All three run on the same recorded pairs (tests/data/codebleu_reference), single-threaded, in
one process, interleaved in chunks of pairs so that load from other processes hits them alike;
the ratio uses this process's CPU time (wall time is printed too). The package must be
importable: run with the scratch venv's site-packages on the path, e.g.

    PYTHONPATH=$(echo /tmp/cbvenv/lib/python3*/site-packages) .venv/bin/python \\
        scripts/bench_matching.py

(the package and our code then use the same tree-sitter 0.26.1 and grammar versions).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ppocoder_jax.rewards.matching import match, match_counts  # noqa: E402
from ppocoder_jax.rewards.matching.match import set_cache_size  # noqa: E402

PKG_LANG = {"csharp": "c_sharp"}


def load_pairs(langs, per_lang):
    pairs = []
    for lang in langs:
        with open(ROOT / "tests/data/codebleu_reference" / f"{lang}.jsonl", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f][:per_lang]
        pairs += [(r["reference"], r["candidate"], lang) for r in rows]
    return pairs


def ours_cold(chunk):
    for ref, cand, lang in chunk:
        match_counts(ref, cand, lang, cache=False)


def ours_cached(chunk):
    for ref, cand, lang in chunk:
        match(ref, cand, lang)


def package(chunk):
    from codebleu import calc_codebleu

    for ref, cand, lang in chunk:
        calc_codebleu([ref], [cand], PKG_LANG.get(lang, lang))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--langs", default="python,java,csharp,javascript,php,c,cpp")
    ap.add_argument("--per-lang", type=int, default=120, help="pairs per language")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=20)
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # the package warns on pairs without reference data flow
    pairs = load_pairs(args.langs.split(","), args.per_lang)
    contenders = {"package": package, "cold": ours_cold, "cached": ours_cached}
    for fn in contenders.values():  # warm up imports and parsers
        fn(pairs[:10])
    cpu = dict.fromkeys(contenders, 0.0)
    wall = dict.fromkeys(contenders, 0.0)
    for _ in range(args.rounds):
        set_cache_size(1024)  # each round starts with an empty program cache
        for i in range(0, len(pairs), args.chunk):
            chunk = pairs[i : i + args.chunk]
            for name, fn in contenders.items():
                c0, w0 = time.process_time(), time.perf_counter()
                fn(chunk)
                cpu[name] += time.process_time() - c0
                wall[name] += time.perf_counter() - w0
    n = len(pairs) * args.rounds
    print(
        f"{len(pairs)} pairs ({args.langs}) x {args.rounds} rounds, interleaved chunks of {args.chunk}"
    )
    print(f"{'':44s} {'pairs/CPU-s':>11s} {'pairs/wall-s':>12s} {'speed-up (CPU)':>15s}")
    labels = {
        "package": "package calc_codebleu()",
        "cold": "ours match(), program cache bypassed",
        "cached": "ours match(), program cache (reward path)",
    }
    for name in contenders:
        ratio = cpu["package"] / cpu[name]
        print(f"{labels[name]:44s} {n / cpu[name]:11.1f} {n / wall[name]:12.1f} {ratio:14.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
