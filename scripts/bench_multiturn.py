#!/usr/bin/env python
"""The cost of a 2-turn PPO iteration against a single-turn one of the same batch, side by side.

Each round runs `ppocoder train` twice from the same model (e.g. a demo's SFT model), with
`rollout.turns=1` then `rollout.turns=2` (alternating, so a load change on a shared machine hits
both), and reports per mode: seconds per iteration (the trainer's own timings: sample +
rewards + update; with 2 turns "sample" holds both turns' sampling and the wait for the public
tests' feedback between them), reward_wait_frac (the share of the iteration the device sat
idle waiting for rewards and feedback), the share of rows that revised and the fill of the
compacted second turn. The first `--warmup` iterations are left out: they compile the
sampler's and the update's shapes (a 2-turn run meets new prompt widths and group sizes for
its first dozen or so iterations).

    .venv/bin/python scripts/bench_multiturn.py --model runs/demo_multiturn/sft_model \
        [--config demo_multiturn] [--iters 40] [--warmup 20] [--rounds 1] [--json out.json]
        [key=value ...]

Extra key=value arguments go to both runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(work: Path, turns: int, tag: str, args) -> dict:
    run_dir = work / tag
    cmd = [sys.executable, "-m", "ppocoder_jax", "train", "--config", args.config]
    cmd += [f"model.path={args.model}", f"rollout.turns={turns}", f"train.steps={args.iters}"]
    cmd += ["train.save_every=100000", "train.tensorboard=false", f"train.run_dir={run_dir}"]
    cmd += args.overrides
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(work / "jax-cache"))
    env.update(JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", PYTHONHASHSEED="0")
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{tag}: ppocoder train failed:\n{proc.stderr[-3000:]}")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r.get("phase") == "ppo"][args.warmup :]
    walls = [r["time_sample_s"] + r["time_rewards_s"] + r["time_update_s"] for r in rows]
    mean = statistics.fmean
    return {
        "turns": turns,
        "iterations_timed": len(rows),
        "seconds_timed": sum(walls),
        "s_per_it": sum(walls) / len(rows),
        "reward_wait_frac": mean(r["reward_wait_frac"] for r in rows),
        "time_sample_s": mean(r["time_sample_s"] for r in rows),
        "time_feedback_s": mean(r.get("time_feedback_s", 0.0) for r in rows),
        "time_rewards_s": mean(r["time_rewards_s"] for r in rows),
        "time_update_s": mean(r["time_update_s"] for r in rows),
        "pass_rate": mean(r["pass_rate"] for r in rows),
        "turns_mean": mean(r.get("turns_mean", 1.0) for r in rows),
        "turn_rows_done_frac": mean(r.get("turn_rows_done_frac", 0.0) for r in rows),
        "process_wall_s": time.time() - start,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="the model both runs start from")
    ap.add_argument("--config", default="demo_multiturn", help="preset (turns are overridden)")
    ap.add_argument("--iters", type=int, default=40, help="PPO iterations per run")
    ap.add_argument("--warmup", type=int, default=20, help="first iterations left out")
    ap.add_argument("--rounds", type=int, default=1, help="1-turn + 2-turn pairs")
    ap.add_argument("--json", default="", help="write the results here")
    ap.add_argument("overrides", nargs="*", help="key=value config overrides for both runs")
    args = ap.parse_args()
    if args.iters <= args.warmup:
        ap.error("--iters must exceed --warmup")
    if not Path(args.model).is_dir():
        ap.error(f"--model {args.model}: not a directory")
    args.model = str(Path(args.model).resolve())
    load = os.getloadavg()[0]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-multiturn-") as tmp:
        work = Path(tmp)
        for r in range(args.rounds):
            for turns in (1, 2):
                res = run_once(work, turns, f"r{r}-{turns}", args)
                res["round"] = r
                results.append(res)
                print(
                    f"round {r} turns {turns}: {res['s_per_it']:.2f} s/it  wait "
                    f"{res['reward_wait_frac']:.3f}  (sample {res['time_sample_s']:.2f} s of which "
                    f"feedback {res['time_feedback_s']:.2f} s, rewards {res['time_rewards_s']:.2f}"
                    f" s, update {res['time_update_s']:.2f} s; attempts {res['turns_mean']:.2f}, "
                    f"fill {res['turn_rows_done_frac']:.2f}; load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )

    def pooled(turns):
        rows = [x for x in results if x["turns"] == turns]
        return sum(x["seconds_timed"] for x in rows) / sum(x["iterations_timed"] for x in rows)

    summary = {
        "single_turn_s_per_it": pooled(1),
        "two_turn_s_per_it": pooled(2),
        "cost_ratio": pooled(2) / pooled(1),
        "per_round_ratio": [
            results[2 * r + 1]["s_per_it"] / results[2 * r]["s_per_it"] for r in range(args.rounds)
        ],
        "two_turn_reward_wait_frac": statistics.fmean(
            x["reward_wait_frac"] for x in results if x["turns"] == 2
        ),
        "load_average_start": load,
        "load_average_end": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "model": args.model,
        "overrides": args.overrides,
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": results, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
