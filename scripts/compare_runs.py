#!/usr/bin/env python
"""Are two training runs the same run? Every logged number but the clocks, the held-out
results and the final parameters, compared exactly.

    .venv/bin/python scripts/compare_runs.py runs/before runs/after \
        [--renamed NEW_KEY=OLD_KEY ...] [--show 10]

What it reads from each run directory (`train.run_dir`): `metrics.jsonl` (the rows in order,
every key both runs log except timings: `elapsed_s`, `time_*`, `*_per_s`, `*_frac` of waits and
busy time), `results.json` (the same keys left out) and `final_model/` (every parameter array,
bit for bit). A key only one run logs is listed, not compared (a newer version may log more);
`--renamed NEW=OLD` compares the second run's NEW with the first run's OLD (a metric renamed
between the two versions).

Prints one line per part and exits 0 when every compared value is equal, 1 when any differs
(the first `--show` differences are printed), 2 on a missing or unreadable run.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

TIMING_SUFFIXES = ("_s", "_per_s", "_wait_frac", "_busy_frac")


def is_timing(key: str) -> bool:
    return key.startswith("time_") or key.endswith(TIMING_SUFFIXES)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _read_rows(run: Path) -> list[dict]:
    from ppocoder_jax.data.io import jsonl_records

    return [row for _, row in jsonl_records(run / "metrics.jsonl", "metrics file")]


def compare_metrics(rows_a, rows_b, renamed: dict[str, str]) -> tuple[int, list[str], set]:
    """-> (values compared, differences, keys only one run logs)."""
    # the second run's own OLD key (if it still logs one) means something else: not compared
    rows_b = [{renamed.get(k, k): v for k, v in b.items() if k not in renamed.values()}
              for b in rows_b]  # fmt: skip
    keys_a = {k for r in rows_a for k in r if not is_timing(k)}
    keys_b = {k for r in rows_b for k in r if not is_timing(k)}
    lone = keys_a ^ keys_b
    diffs, compared = [], 0
    if len(rows_a) != len(rows_b):
        diffs.append(f"metrics.jsonl: {len(rows_a)} rows against {len(rows_b)}")
    for i, (a, b) in enumerate(zip(rows_a, rows_b, strict=False)):
        where = f"metrics.jsonl row {i + 1} ({a.get('phase')} step {a.get('step')})"
        for key in sorted((set(a) | set(b)) - lone):
            if is_timing(key):
                continue
            compared += 1
            if key not in a or key not in b:
                diffs.append(f"{where}: {key} logged by one run only")
            elif not _same(a[key], b[key]):
                diffs.append(f"{where}: {key} {a[key]!r} against {b[key]!r}")
    return compared, diffs, lone


def _drop_timings(tree):
    if isinstance(tree, dict):
        return {k: _drop_timings(v) for k, v in tree.items() if not is_timing(k)}
    return tree


def compare_results(run_a: Path, run_b: Path) -> list[str] | None:
    """Differences of the two results.json (None: neither run has one)."""
    paths = [run_a / "results.json", run_b / "results.json"]
    present = [p.exists() for p in paths]
    if not any(present):
        return None
    if not all(present):
        return [f"{paths[present.index(False)]} not found"]
    from ppocoder_jax.data.io import read_json

    a, b = (_drop_timings(read_json(p)) for p in paths)
    return [] if _same(a, b) else [f"results.json: {_first_difference(a, b)}"]


def _first_difference(a, b, where="") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return f"{where}{k} in one run only"
            if not _same(a[k], b[k]):
                return _first_difference(a[k], b[k], f"{where}{k}.")
    return f"{where.rstrip('.')} {a!r} against {b!r}"


def compare_params(run_a: Path, run_b: Path) -> tuple[int, int, list[str]] | None:
    """(arrays identical, arrays in both, differences) of the two final models (None: neither
    has one)."""
    paths = [run_a / "final_model", run_b / "final_model"]
    present = [p.exists() for p in paths]
    if not any(present):
        return None
    if not all(present):
        return 0, 0, [f"{paths[present.index(False)]} not found"]
    import jax
    import numpy as np

    from ppocoder_jax.model.store import load_model

    flat = []
    for path in paths:
        params, _, _ = load_model(path)
        leaves = jax.tree_util.tree_flatten_with_path(params)[0]
        flat.append({jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves})
    a, b = flat
    diffs = [f"final_model: {k} in one run only" for k in sorted(set(a) ^ set(b))]
    shared = sorted(set(a) & set(b))
    identical = 0
    for k in shared:
        if a[k].shape != b[k].shape or a[k].dtype != b[k].dtype:
            diffs.append(
                f"final_model: {k} {a[k].dtype}{a[k].shape} against {b[k].dtype}{b[k].shape}"
            )
        elif not np.array_equal(a[k], b[k]):
            most = float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64))))
            diffs.append(f"final_model: {k} differs (largest difference {most:.3g})")
        else:
            identical += 1
    return identical, len(shared), diffs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    ap.add_argument("--renamed", nargs="*", default=[], metavar="NEW=OLD",
                    help="the second run's key NEW is the first run's OLD")  # fmt: skip
    ap.add_argument("--show", type=int, default=10, help="differences printed")
    args = ap.parse_args(argv)
    renamed = {}
    for pair in args.renamed:
        new, sep, old = pair.partition("=")
        if not sep or not new or not old:
            print(f"error: --renamed takes NEW=OLD, got {pair!r}", file=sys.stderr)
            return 2
        renamed[new] = old
    from ppocoder_jax.errors import UserError

    for run in (args.run_a, args.run_b):
        if not run.is_dir():
            print(f"error: {run} is not a directory", file=sys.stderr)
            return 2
    try:
        compared, diffs, lone = compare_metrics(
            _read_rows(args.run_a), _read_rows(args.run_b), renamed
        )
        results = compare_results(args.run_a, args.run_b)
        params = compare_params(args.run_a, args.run_b)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"metrics.jsonl: {compared} values compared, {len(diffs)} differ")
    if lone:
        print(f"  logged by one run only (not compared): {', '.join(sorted(lone))}")
    if results is not None:
        print(f"results.json: {'identical' if not results else 'differs'}")
        diffs += results
    if params is not None:
        same, count, param_diffs = params
        print(f"final_model: {same} of {count} arrays identical" if count else param_diffs[0])
        diffs += param_diffs
    for line in diffs[: args.show]:
        print(f"  {line}")
    if len(diffs) > args.show:
        print(f"  ... and {len(diffs) - args.show} more")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
