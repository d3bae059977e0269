#!/usr/bin/env python
"""PPO iterations/s with and without `train.overlap_rollouts`, side by side in one run.

The reward must cost something, or there is nothing to overlap: here the C++ compile reward
(sandboxed g++ per program, ~0.1 s of a core each) on an XLCoST-layout Python -> C++
translation fixture this script writes (generated program pairs; `data.task=translation`). The
policy is the demo preset's model (CodeT5 architecture, d_model 128, 2+2 layers) from a random
init, so nearly every program is a compile error - which costs g++ as much as a real one to
reject. Prompts and outputs have one length bucket (64 tokens), so only the first iteration
compiles; `--warmup` iterations are left out of the timing.

Each round runs `ppocoder train` twice, synchronous then overlapped (alternating, so a load
change on a shared machine hits both), and reports per mode: iterations/s (iteration wall time
= sample + rewards + update, the trainer's own timings), reward_wait_frac (the share of the
iteration the device sat idle waiting for rewards), programs scored per second and the reward
pool's busy fraction. The speed-up is the ratio of the pooled iterations/s.

    .venv/bin/python scripts/bench_overlap.py [--iters 8] [--warmup 2] [--rounds 2]
        [--workers 2] [--device-core] [--json out.json] [key=value ...]

`--device-core` gives the "device" a core of its own, the shape of an accelerator host: the
trainer starts pinned to core 0 (`taskset -c 0`), so XLA's CPU client sizes its thread pool to
that one core and its threads stay there; once the client exists the main thread moves to the
other cores, and every thread and process started after that (the reward pool's workers, the
sandboxed compilers) runs there. (`XLA_FLAGS=--xla_cpu_multi_thread_eigen=false` does not
confine this jaxlib's CPU client to one thread: measured per thread.) Extra key=value
arguments go to both runs (e.g. train.batch_size=8).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPS = [("+", "add"), ("-", "sub"), ("*", "mul"), ("%", "mod"), ("/", "div")]


def _pair(rng: random.Random, i: int) -> tuple[str, str]:
    """One tokenised (XLCoST-style) Python / C++ program pair."""
    op, name = rng.choice(OPS)
    f, k, n = f"{name}_{i}", rng.randint(2, 97), rng.randint(3, 9)
    values = " , ".join(str(rng.randint(1, 99)) for _ in range(n))
    py = (
        f"def {f} ( arr , n ) : NEW_LINE INDENT res = 0 NEW_LINE for i in range ( n ) : "
        f"NEW_LINE INDENT if arr [ i ] > {k} : NEW_LINE INDENT res = res {op} arr [ i ] NEW_LINE "
        f"DEDENT DEDENT return res NEW_LINE DEDENT arr = [ {values} ] "
        f"NEW_LINE print ( {f} ( arr , {n} ) ) NEW_LINE"
    )
    cpp = (
        f"# include < bits / stdc ++ . h > NEW_LINE using namespace std ; int {f} ( int arr [ ] , "
        f"int n ) {{ int res = 0 ; for ( int i = 0 ; i < n ; i ++ ) {{ if ( arr [ i ] > {k} ) "
        f"res = res {op} arr [ i ] ; }} return res ; }} int main ( ) {{ int arr [ ] = {{ "
        f"{values} }} ; cout << {f} ( arr , {n} ) ; "
        "return 0 ; }"
    )
    return py, cpp


def write_fixture(root: Path, n_train: int = 400, seed: int = 0) -> Path:
    rng = random.Random(seed)
    pair = root / "Python-C++"
    pair.mkdir(parents=True, exist_ok=True)
    sizes = {"train": n_train, "val": 8, "test": 8}
    i = 0
    for split, n in sizes.items():
        rows = []
        for _ in range(n):
            rows.append(_pair(rng, i))
            i += 1
        for j, ext in ((0, "py"), (1, "cpp")):
            text = "".join(r[j] + "\n" for r in rows)
            (pair / f"{split}-Python-C++-tok.{ext}").write_text(text)
    return root


def overrides(fixture: Path, args) -> list[str]:
    return [
        "data.task=translation", f"data.path={fixture}", "data.source_lang=python",
        "data.target_lang=cpp", "data.max_source_length=64", "data.max_target_length=64",
        "rollout.max_new_tokens=64", "rollout.length_buckets=[64]", "sft.length_buckets=[64]",
        "reward.compile_weight=1.0", "reward.tests_weight=0.0", "reward.ast_weight=0.0",
        "reward.dfg_weight=0.0", f"reward.workers={args.workers}", "ppo.value_warmup_iters=0",
        f"train.steps={args.iters}", "train.save_every=100000", "train.tensorboard=false",
        *args.overrides,
    ]  # fmt: skip


# The trainer with its device on core 0 and everything started later on the other cores.
LAUNCH_ON_DEVICE_CORE = (
    "import os, sys, jax; jax.devices(); "
    "os.sched_setaffinity(0, set(range(1, os.cpu_count()))); "
    "from ppocoder_jax.cli import main; sys.exit(main(sys.argv[1:]))"
)


def run_once(fixture: Path, work: Path, overlap: bool, tag: str, args) -> dict:
    run_dir = work / tag
    cmd = [sys.executable, "-m", "ppocoder_jax"]
    if args.device_core:
        cmd = ["taskset", "-c", "0", sys.executable, "-c", LAUNCH_ON_DEVICE_CORE]
    cmd += ["train", "--config", "demo"]
    cmd += overrides(fixture, args)
    cmd += [f"train.run_dir={run_dir}", f"train.overlap_rollouts={str(overlap).lower()}"]
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(work / "jax-cache"))
    env.update(JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    start, cpu = time.time(), _children_cpu()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    cpu, wall = _children_cpu() - cpu, time.time() - start
    if proc.returncode != 0:
        raise SystemExit(f"{tag}: ppocoder train failed:\n{proc.stderr[-3000:]}")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r.get("phase") == "ppo"][args.warmup :]
    walls = [r["time_sample_s"] + r["time_rewards_s"] + r["time_update_s"] for r in rows]
    mean = statistics.fmean
    return {
        "mode": "overlap" if overlap else "sync",
        "iterations_timed": len(rows),
        "seconds_timed": sum(walls),
        "it_per_s": len(rows) / sum(walls),
        "reward_wait_frac": mean(r["reward_wait_frac"] for r in rows),
        "reward_programs_per_s": mean(r["reward_programs_per_s"] for r in rows),
        "reward_busy_frac": mean(r["reward_busy_frac"] for r in rows),
        "time_sample_s": mean(r["time_sample_s"] for r in rows),
        "time_rewards_s": mean(r["time_rewards_s"] for r in rows),
        "time_update_s": mean(r["time_update_s"] for r in rows),
        "compile_rate": mean(r["compile_rate"] for r in rows),
        "samples": rows[0]["samples"],
        "rollout_lag": [r["rollout_lag"] for r in rows],
        "process_wall_s": wall,
        # CPU seconds of the run (trainer, sandboxed jobs) over the cores x its wall time,
        # start-up and compilation included: near 1, the cores were the limit
        "process_cpu_s": cpu,
        "cpu_utilisation": cpu / (wall * (os.cpu_count() or 1)),
    }


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iters", type=int, default=8, help="PPO iterations per run")
    ap.add_argument("--warmup", type=int, default=2, help="first iterations left out")
    ap.add_argument("--rounds", type=int, default=2, help="sync + overlap pairs")
    ap.add_argument("--workers", type=int, default=2, help="reward pool workers")
    ap.add_argument(
        "--device-core", action="store_true", help="XLA on core 0, the rest on the other cores"
    )
    ap.add_argument("--json", default="", help="write the results here")
    ap.add_argument("overrides", nargs="*", help="key=value config overrides for both runs")
    args = ap.parse_args()
    if args.iters <= args.warmup:
        ap.error("--iters must exceed --warmup")
    if args.device_core and (os.cpu_count() or 1) < 2:
        ap.error("--device-core needs at least 2 cores")
    load = os.getloadavg()[0]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-overlap-") as tmp:
        work = Path(tmp)
        fixture = write_fixture(work / "xlcost")
        for r in range(args.rounds):
            for overlap in (False, True):
                res = run_once(fixture, work, overlap, f"r{r}-{int(overlap)}", args)
                res["round"] = r
                results.append(res)
                print(
                    f"round {r} {res['mode']:>7}: {res['it_per_s']:.3f} it/s  "
                    f"wait {res['reward_wait_frac']:.2f}  busy {res['reward_busy_frac']:.2f}  "
                    f"{res['reward_programs_per_s']:.1f} programs/s  (sample "
                    f"{res['time_sample_s']:.2f} s, rewards {res['time_rewards_s']:.2f} s, "
                    f"update {res['time_update_s']:.2f} s; CPU {res['cpu_utilisation']:.2f} of the "
                    f"cores, load average {os.getloadavg()[0]:.1f})",
                    flush=True,
                )

    def pooled(mode):
        rows = [x for x in results if x["mode"] == mode]
        return sum(x["iterations_timed"] for x in rows) / sum(x["seconds_timed"] for x in rows)

    summary = {
        "sync_it_per_s": pooled("sync"),
        "overlap_it_per_s": pooled("overlap"),
        "speedup": pooled("overlap") / pooled("sync"),
        "per_round_speedup": [
            results[2 * r + 1]["it_per_s"] / results[2 * r]["it_per_s"] for r in range(args.rounds)
        ],
        "load_average_start": load,
        "load_average_end": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "device_core": args.device_core,
        "workers": args.workers,
        "overrides": args.overrides,
    }
    for mode in ("sync", "overlap"):
        rows = [x for x in results if x["mode"] == mode]
        for key in ("reward_wait_frac", "reward_busy_frac", "reward_programs_per_s"):
            summary[f"{mode}_{key}"] = statistics.fmean(x[key] for x in rows)
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": results, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
