#!/usr/bin/env python
"""Peak and per-iteration resident memory of a long `ppocoder train` run (is it flat?).

Runs `ppocoder train --config tiny` (the demo's pipeline at toy size, random tiny model, the
real reward pool) for --iters iterations in a subprocess and samples the trainer's RSS from
/proc every --interval seconds (the trainer process only: sandboxed programs are its
short-lived children). Prints the RSS at iteration marks, the peak, and the growth over the
second half of the run; writes the samples to OUT/rss.json.

    .venv/bin/python scripts/bench_memory.py [--iters 1000] [--family t5|decoder]
        [--out runs/bench_memory] [key=value ...]     # extra config overrides

Checkpoints are written every 10 iterations unless an override says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def iterations_done(metrics: Path) -> int:
    try:
        with open(metrics, "rb") as f:
            return sum(1 for line in f if line.startswith(b'{"phase": "ppo"'))
    except FileNotFoundError:
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=1000)
    parser.add_argument("--family", choices=("t5", "decoder"), default="t5")
    parser.add_argument("--out", default="runs/bench_memory")
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()

    out = Path(args.out).absolute()
    shutil.rmtree(out, ignore_errors=True)  # a fresh run, not a resume
    overrides = [
        f"train.run_dir={out}",
        f"train.steps={args.iters}",
        f"model.family={args.family}",
        "train.save_every=10",
        "train.tensorboard=false",
        *args.overrides,
    ]
    cmd = [sys.executable, "-m", "ppocoder_jax", "train", "--config", "tiny", *overrides]
    print("$", " ".join(cmd[1:]), flush=True)
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    out.parent.mkdir(parents=True, exist_ok=True)
    log = open(out.parent / f"{out.name}.log", "w")  # noqa: SIM115
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    samples = []  # (seconds, iterations done, RSS MiB)
    while proc.poll() is None:
        rss = rss_mib(proc.pid)
        if rss is not None:
            samples.append((time.time() - start, iterations_done(out / "metrics.jsonl"), rss))
        time.sleep(args.interval)
    log.close()
    if proc.returncode != 0:
        print(f"ppocoder train exited {proc.returncode}; see {log.name}", file=sys.stderr)
        return 1
    wall = time.time() - start
    peak = max(s[2] for s in samples)
    marks = sorted(
        {m for m in (1, 10, 50, 100, 250, 500, 750, 1000, args.iters) if m <= args.iters}
    )
    rows = []
    for m in marks:
        at = [s for s in samples if s[1] >= m]
        if at:
            rows.append((m, at[0][2]))
    print("| iterations done | trainer RSS (MiB) |\n|---|---|")
    for m, rss in rows:
        print(f"| {m} | {rss:.0f} |")
    half = [s for s in samples if s[1] >= args.iters // 2]
    growth = (half[-1][2] - half[0][2]) if len(half) > 1 else 0.0
    print(
        f"peak RSS {peak:.0f} MiB over {args.iters} iterations in {wall:.0f} s; "
        f"RSS change over the second half: {growth:+.0f} MiB"
    )
    (out / "rss.json").write_text(
        json.dumps({"cmd": cmd[1:], "wall_s": wall, "peak_mib": peak, "samples": samples}, indent=0)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
