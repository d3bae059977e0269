"""Two turns against one, per seed, from finished demo runs: what docs/multiturn.md#results reports.

    .venv/bin/python scripts/multiturn_vs_single.py \
        --two-turn runs/mt-0 runs/mt-1 runs/mt-2 \
        --single runs/st-0 runs/st-1 runs/st-2 \
        --single-pass2 runs/st-0-eval runs/st-1-eval runs/st-2-eval [--json out.json]

`--two-turn`: run directories of `ppocoder demo --config demo_multiturn[_decoder]
train.seed=S`; `--single`: the single-turn demo of the same seeds (`ppocoder demo [--config
demo_decoder] train.seed=S`); `--single-pass2`: its pass@2 from two independent samples, the
directory (or eval_test.json) of `ppocoder eval --config demo[_decoder] --sampled
train.seed=S model.path=RUN/final_model "eval.ks=[1,2]"`. The i-th of each list is one seed;
each pair is checked to share its seed, model family, PPO iterations and held-out problems.

Per seed, in points of held-out pass@1:
- greedy: the 2-turn model's final attempt against the single-turn model (a second greedy
  attempt without feedback would repeat the first, so a gain here comes from the feedback);
- sampled: the 2-turn model's final attempt against the single-turn model's pass@2 (the same
  number of samples per problem, as RLEF compares);
- fix rate (share of failing first attempts whose last attempt passes), greedy and sampled:
  after PPO against the SFT model's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


class InputError(ValueError):
    pass


def _load_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{what}: {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{what}: {path} is not JSON ({e})") from None


def load_run(run_dir: Path, what: str) -> dict:
    """A finished demo run: its results.json and the config it ran with (read as the jobs read
    it, so a run saved before a key existed gets that key's default)."""
    from ppocoder_jax.config import load_config
    from ppocoder_jax.errors import UserError

    if not run_dir.is_dir():
        raise InputError(f"{what}: {run_dir} is not a directory")
    results = _load_json(run_dir / "results.json", what)
    if not (run_dir / "config.yaml").is_file():
        raise InputError(f"{what}: {run_dir}/config.yaml does not exist")
    try:
        cfg = load_config(str(run_dir / "config.yaml"))
    except UserError as e:
        raise InputError(f"{what}: {run_dir}/config.yaml: {e}") from None
    for phase in ("before", "after"):
        for mode in ("greedy", "sampled"):
            if "pass@1" not in results.get(phase, {}).get(mode, {}):
                raise InputError(f"{what}: {run_dir}/results.json has no {phase}.{mode}.pass@1")
    return {
        "dir": str(run_dir), "results": results, "seed": cfg.train.seed, "steps": cfg.train.steps,
        "turns": cfg.rollout.turns, "family": cfg.model.family or "t5",
    }  # fmt: skip


def load_pass2(path: Path) -> dict:
    if path.is_dir():
        path = path / "eval_test.json"
    ev = _load_json(path, "--single-pass2")
    if "pass@2" not in ev:
        raise InputError(f'--single-pass2: {path} has no pass@2 (evaluate with "eval.ks=[1,2]")')
    return ev


def compare(two: dict, one: dict, pass2: dict) -> dict:
    """One seed's comparison (percentages and differences in points)."""
    if two["turns"] < 2:
        raise InputError(f"--two-turn {two['dir']}: ran with rollout.turns={two['turns']}")
    if one["turns"] != 1:
        raise InputError(f"--single {one['dir']}: ran with rollout.turns={one['turns']}")
    for key, name in (("seed", "train.seed"), ("steps", "train.steps"), ("family", "model.family")):
        if two[key] != one[key]:
            raise InputError(
                f"{two['dir']} and {one['dir']} differ in {name}: {two[key]} vs {one[key]}"
            )
    after, sft = two["results"]["after"], two["results"]["before"]
    problems = after["sampled"]["num_problems"]
    if pass2.get("num_problems") != problems:
        raise InputError(
            f"--single-pass2 for seed {two['seed']}: {pass2.get('num_problems')} problems, the "
            f"2-turn run evaluated {problems}"
        )
    for phase, mode in ((p, m) for p in ("before", "after") for m in ("greedy", "sampled")):
        if "fix_rate" not in two["results"][phase][mode]:
            raise InputError(f"--two-turn {two['dir']}: {phase}.{mode} has no fix_rate")

    def pct(x):
        return round(100 * x, 1)

    single = one["results"]["after"]
    row = {
        "seed": two["seed"],
        "iterations": two["steps"],
        "single_greedy": pct(single["greedy"]["pass@1"]),
        "two_turn_greedy": pct(after["greedy"]["pass@1"]),
        "two_turn_greedy_first_attempt": pct(after["greedy"]["pass@1_turn1"]),
        "single_sampled_pass1": pct(single["sampled"]["pass@1"]),
        "single_sampled_pass2": pct(pass2["pass@2"]),
        "two_turn_sampled": pct(after["sampled"]["pass@1"]),
        "fix_greedy_sft": pct(sft["greedy"]["fix_rate"]),
        "fix_greedy_ppo": pct(after["greedy"]["fix_rate"]),
        "fix_sampled_sft": pct(sft["sampled"]["fix_rate"]),
        "fix_sampled_ppo": pct(after["sampled"]["fix_rate"]),
    }
    row["greedy_gain"] = round(row["two_turn_greedy"] - row["single_greedy"], 1)
    row["sampled_gain_vs_pass2"] = round(row["two_turn_sampled"] - row["single_sampled_pass2"], 1)
    row["fix_greedy_gain"] = round(row["fix_greedy_ppo"] - row["fix_greedy_sft"], 1)
    row["fix_sampled_gain"] = round(row["fix_sampled_ppo"] - row["fix_sampled_sft"], 1)
    return row


def table(rows: list[dict]) -> str:
    head = (
        "| seed | 1 turn greedy | 2 turns greedy (first attempt) | gain | 1 turn sampled pass@1 / "
        "pass@2 | 2 turns sampled | gain on pass@2 | fix rate greedy, SFT -> PPO | fix rate "
        "sampled, SFT -> PPO |\n|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['single_greedy']:.1f}% | {r['two_turn_greedy']:.1f}% "
            f"({r['two_turn_greedy_first_attempt']:.1f}%) | {r['greedy_gain']:+.1f} | "
            f"{r['single_sampled_pass1']:.1f}% / {r['single_sampled_pass2']:.1f}% | "
            f"{r['two_turn_sampled']:.1f}% | {r['sampled_gain_vs_pass2']:+.1f} | "
            f"{r['fix_greedy_sft']:.1f} -> {r['fix_greedy_ppo']:.1f}% "
            f"({r['fix_greedy_gain']:+.1f}) | {r['fix_sampled_sft']:.1f} -> "
            f"{r['fix_sampled_ppo']:.1f}% ({r['fix_sampled_gain']:+.1f}) |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--two-turn", nargs="+", required=True, type=Path, metavar="RUN")
    ap.add_argument("--single", nargs="+", required=True, type=Path, metavar="RUN")
    ap.add_argument("--single-pass2", nargs="+", required=True, type=Path, metavar="EVAL")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)
    if not len(args.two_turn) == len(args.single) == len(args.single_pass2):
        ap.error("--two-turn, --single and --single-pass2 need one entry per seed each")
    try:
        rows = [
            compare(load_run(t, "--two-turn"), load_run(s, "--single"), load_pass2(p))
            for t, s, p in zip(args.two_turn, args.single, args.single_pass2, strict=True)
        ]
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
