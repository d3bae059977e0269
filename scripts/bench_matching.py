#!/usr/bin/env python3
"""Pairs per second of our AST+DFG reward vs the `codebleu` package, side by side.

Ours: `ppocoder_jax.rewards.matching.match_counts(reference, candidate, lang)`: each program
parsed once, the tree shared by the AST and DFG parts. Measured twice:

- cold: the per-thread program cache bypassed (`cache=False`): every program parsed and
  analysed in every call (a reference equal to the candidate once, an empty candidate not at
  all), the like-for-like number;
- reward path: the cache used for the references only (`cache_candidate=False`) and emptied at
  the start of every round, so the only reuse is what a reward stream has: a reference scored
  against several candidates within the round (never a pair seen in an earlier round, never a
  candidate that happens to equal another pair's program). The script prints how many
  reference analyses that saves.

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

from ppocoder_jax.rewards.matching import match_counts  # noqa: E402
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


def ours_reward(chunk):
    for ref, cand, lang in chunk:
        match_counts(ref, cand, lang, cache_candidate=False)


def package(chunk):
    from codebleu import calc_codebleu

    for ref, cand, lang in chunk:
        calc_codebleu([ref], [cand], PKG_LANG.get(lang, lang))


def _median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--langs", default="python,java,csharp,javascript,php,c,cpp")
    ap.add_argument("--per-lang", type=int, default=120, help="pairs per language")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=20)
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # the package warns on pairs without reference data flow
    pairs = load_pairs(args.langs.split(","), args.per_lang)
    contenders = {"package": package, "cold": ours_cold, "reward": ours_reward}
    for fn in contenders.values():  # warm up imports and parsers
        fn(pairs[:10])
    rounds = []  # per round: name -> (CPU s, wall s)
    for _ in range(args.rounds):
        set_cache_size(1024)  # every round starts with an empty program cache
        cpu = dict.fromkeys(contenders, 0.0)
        wall = dict.fromkeys(contenders, 0.0)
        for i in range(0, len(pairs), args.chunk):
            chunk = pairs[i : i + args.chunk]
            for name, fn in contenders.items():
                c0, w0 = time.process_time(), time.perf_counter()
                fn(chunk)
                cpu[name] += time.process_time() - c0
                wall[name] += time.perf_counter() - w0
        rounds.append({name: (cpu[name], wall[name]) for name in contenders})
    refs = [(lang, ref.strip()) for ref, cand, lang in pairs if ref.strip() != cand.strip()]
    print(
        f"{len(pairs)} pairs ({args.langs}) x {args.rounds} rounds, interleaved chunks of "
        f"{args.chunk}; reward path: {len(refs)} reference analyses per round, "
        f"{len(refs) - len(set(refs))} of them repeats of a reference met earlier in the round"
    )
    n = len(pairs)
    print(
        f"{'':44s} {'pairs/CPU-s':>11s} {'pairs/wall-s':>12s} "
        f"{'speed-up (CPU): median [per round]':>36s}"
    )
    labels = {
        "package": "package calc_codebleu()",
        "cold": "ours, program cache bypassed (cold)",
        "reward": "ours, reference cache per round (reward)",
    }
    for name in contenders:
        cpu_rate = _median([n / r[name][0] for r in rounds])
        wall_rate = _median([n / r[name][1] for r in rounds])
        ratios = [r["package"][0] / r[name][0] for r in rounds]
        per_round = " ".join(f"{x:.2f}" for x in ratios)
        print(
            f"{labels[name]:44s} {cpu_rate:11.1f} {wall_rate:12.1f} "
            f"{_median(ratios):14.2f}x [{per_round}]"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
