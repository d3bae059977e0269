#!/usr/bin/env python
"""Problems per second: the local pool against the same pool behind `ppocoder sandbox-serve`
on loopback, side by side in one run (the same distinct Python stdio problems, --rounds
interleaved rounds, the server with as many workers as the local pool).

    .venv/bin/python scripts/bench_reward_servers.py [--n 150] [--workers 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers.reward_servers import ServeProcess  # noqa: E402

from ppocoder_jax.rewards.execution import Executor, Verdict  # noqa: E402
from ppocoder_jax.rewards.remote.client import RemoteExecutor  # noqa: E402

TESTS = {"inputs": ["1\n", "2\n"], "outputs": ["1\n", "2\n"]}


def _rate(ex, n: int, tag: str) -> float:
    jobs = [("python", f"print(input())  # {tag} {i}\n", TESTS) for i in range(n)]
    t = time.monotonic()
    results = ex.run_many(jobs)
    elapsed = time.monotonic() - t
    assert all(r.verdict is Verdict.PASS for r in results), "a verdict went wrong"
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=150, help="problems per round and path")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    rates: dict[str, list[float]] = {"local": [], "remote": []}
    with (
        Executor(workers=args.workers) as local,
        ServeProcess("--workers", str(args.workers)) as server,
        RemoteExecutor([server.url], concurrency=4 * args.workers) as remote,
    ):
        local.warm_up(["python"])
        _rate(remote, 8, "warm")
        for r in range(args.rounds):
            rates["local"].append(_rate(local, args.n, f"l{r}"))
            rates["remote"].append(_rate(remote, args.n, f"r{r}"))
    for name, values in rates.items():
        print(f"{name:6s} {statistics.median(values):6.1f} problems/s  rounds {values}")
    ratio = statistics.median(rates["remote"]) / statistics.median(rates["local"])
    print(f"remote / local: {ratio:.2f}")


if __name__ == "__main__":
    main()
