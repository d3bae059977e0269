#!/usr/bin/env python
"""RL algorithms side by side on a demo preset, from one SFT model: held-out pass@1 gains, KL, time.

Each setting is the preset plus the overrides below (each algorithm as its authors set it); all
start from the same SFT model (`--sft`, or the `sft_model/` of the run named by `--reuse`) with
the same seed, so the held-out evaluation before PPO is shared and computed once. Per setting:
PPO for the preset's `train.steps` iterations into OUT/<setting>/, then the demo's held-out
evaluation (greedy and sampled pass@1). Finished settings are read back, so an interrupted
comparison continues where it stopped (an unfinished PPO run resumes from its checkpoint).

    .venv/bin/python scripts/compare_algorithms.py --config demo --reuse rloo=runs/demo-seed0 \
        --out runs/compare-demo [--settings gae,grpo,dr_grpo,dapo] [key=value ...]

`--reuse NAME=RUN_DIR` takes a finished `ppocoder demo` run (its results.json, metrics.jsonl and
sft_model/) as setting NAME instead of training it again; it must be the preset with that
setting's overrides and the same seed. Extra key=value arguments go to every setting. Writes
OUT/table.md (the README's table) and OUT/summary.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# name -> (overrides on top of the preset, what it is)
SETTINGS: dict[str, tuple[list[str], str]] = {
    "gae": (["ppo.advantage=gae"], "PPO, value-head GAE, KL in the reward (the paper)"),
    "rloo": (["ppo.advantage=rloo"], "leave-one-out baseline, KL in the reward"),
    "grpo": (
        [
            "ppo.advantage=grpo",
            "ppo.loss_agg=seq_mean_token_mean",
            "kl.mode=loss",
            "kl.kind=fixed",
            "kl.init_coef=0.04",
        ],
        "group z-score, sequence-mean loss, k3 KL in the loss (beta 0.04)",
    ),
    "dr_grpo": (
        ["ppo.advantage=dr_grpo", "ppo.loss_agg=seq_mean_token_sum_norm", "kl.mode=none"],
        "group mean, constant normaliser, no KL",
    ),
    "dapo": (
        [
            "ppo.advantage=grpo",
            "ppo.loss_agg=token_mean",
            "ppo.clip_low=0.2",
            "ppo.clip_high=0.28",
            "ppo.dynamic_sampling=true",
            "kl.mode=none",
        ],
        "group z-score, token-mean loss, clip 0.2/0.28, all-equal groups masked, no KL",
    ),
    "rloo_overlap": (
        ["ppo.advantage=rloo", "train.overlap_rollouts=true"],
        "rloo with batch k+1 sampled while batch k is scored (one step off-policy)",
    ),
}


def held_out_kl(cfg, policy, sft, num_prompts: int = 128, num_samples: int = 4) -> float:
    """KL(PPO policy || SFT start) per sample on held-out prompts: sum over the response of
    log pi - log pi_sft, on T=1 samples of the PPO policy (the sampled estimator). The same
    measure for every setting, with or without a reference in training (kl.mode=none logs 0)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from ppocoder_jax.data import load_task
    from ppocoder_jax.model.families import as_policy
    from ppocoder_jax.ppo.policy_apply import reference_logprobs
    from ppocoder_jax.rollout import Sampler, SamplingParams

    params, model_cfg, tokenizer = policy
    examples = load_task(cfg.data, tokenizer).split("test")[:num_prompts]
    pol = as_policy(model_cfg)
    sampler = Sampler(pol, cfg.rollout, max_source_length=cfg.data.max_source_length)
    ids, mask = sampler.prompt_arrays(sampler.encode(tokenizer, [e.prompt for e in examples]))
    out = sampler(
        params,
        ids,
        mask,
        jax.random.PRNGKey(cfg.train.seed),
        sampling=SamplingParams.from_config(cfg.rollout),
        num_samples=num_samples,
    )
    ref = reference_logprobs(
        jax.tree.map(jnp.asarray, sft[0]),
        out.prompt_ids,
        out.prompt_mask,
        out.tokens,
        out.token_mask,
        policy=pol,
        dtype=jnp.float32,
    )
    token_mask = np.asarray(out.token_mask, np.float32)
    per_sample = ((np.asarray(out.logprobs) - np.asarray(ref)) * token_mask).sum(axis=1)
    return float(per_sample.mean())


def _ppo_rows(run_dir: Path) -> list[dict]:
    rows = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("phase") == "ppo":
            rows[row["step"]] = row  # a resumed run rewrote later rows: keep the last
    return [rows[k] for k in sorted(rows)]


def _summary(
    name: str, before: dict, after: dict, run_dir: Path, ppo_s: float, held_out: float
) -> dict:
    rows = _ppo_rows(run_dir)
    tail = rows[-20:]
    mean = lambda key: statistics.fmean(r[key] for r in tail if key in r)  # noqa: E731
    return {
        "setting": name,
        "overrides": SETTINGS.get(name, ([], ""))[0],
        "greedy": [before["greedy"]["pass@1"], after["greedy"]["pass@1"]],
        "sampled": [before["sampled"]["pass@1"], after["sampled"]["pass@1"]],
        "kl_held_out": held_out,
        # the trainer's own KL to the reference (0 when training had no reference)
        "kl_last20": mean("kl"),
        "train_pass_last20": mean("pass_rate"),
        "reward_wait_frac": mean("reward_wait_frac"),
        "iterations": len(rows),
        "ppo_s": ppo_s,
        "s_per_iter": ppo_s / max(len(rows), 1),
        "run_dir": str(run_dir),
    }


def _training_kl(summary: dict) -> str:
    if "kl.mode=none" in summary["overrides"]:
        return "- (no reference)"
    return f"{summary['kl_last20']:.2f}"


def _table(summaries: list[dict]) -> str:
    lines = [
        "| setting | greedy SFT -> PPO | sampled SFT -> PPO | KL to SFT, held out "
        "| KL in training (last 20 it.) | train pass rate (last 20 it.) | s/iter |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        (gb, ga), (sb, sa) = s["greedy"], s["sampled"]
        lines.append(
            f"| `{s['setting']}` | {100 * gb:.1f}% -> {100 * ga:.1f}% (**{100 * (ga - gb):+.1f}**) "
            f"| {100 * sb:.1f}% -> {100 * sa:.1f}% (**{100 * (sa - sb):+.1f}**) "
            f"| {s['kl_held_out']:.2f} | {_training_kl(s)} | {s['train_pass_last20']:.2f} "
            f"| {s['s_per_iter']:.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="demo")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--sft", type=Path, help="the SFT model every setting starts from")
    parser.add_argument("--reuse", action="append", default=[], metavar="NAME=RUN_DIR")
    parser.add_argument("--settings", default="gae,rloo,grpo,dr_grpo,dapo")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()

    from ppocoder_jax.config import load_config
    from ppocoder_jax.pipeline.jobs import demo_eval, load_saved, train_job

    names = [n for n in args.settings.split(",") if n]
    reused = dict(item.split("=", 1) for item in args.reuse)
    unknown = [n for n in [*names, *reused] if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown setting(s) {unknown}; known: {', '.join(SETTINGS)}")
    sft = args.sft or (Path(next(iter(reused.values()))) / "sft_model" if reused else None)
    if sft is None or not (sft / "config.json").exists():
        parser.error(f"no SFT model at {sft} (give --sft DIR or --reuse NAME=RUN_DIR)")
    args.out.mkdir(parents=True, exist_ok=True)

    summaries = []
    before = None
    sft_policy = load_saved(sft)
    for name, run in reused.items():
        run = Path(run)
        results = json.loads((run / "results.json").read_text())
        before = results["before"]
        cfg = load_config(args.config, [*SETTINGS[name][0], *args.overrides])
        kl = held_out_kl(cfg, load_saved(run / "final_model"), sft_policy)
        ppo_s = results["timing_s"]["ppo"]
        summaries.append(_summary(name, before, results["after"], run, ppo_s, kl))
    before_path = args.out / "before.json"
    if before is None and before_path.exists():
        before = json.loads(before_path.read_text())
    for name in names:
        if name in reused:
            continue
        run_dir = args.out / name
        done = run_dir / "comparison.json"
        if done.exists():
            summaries.append(json.loads(done.read_text()))
            continue
        cfg = load_config(
            args.config, [*SETTINGS[name][0], *args.overrides, f"train.run_dir={run_dir}"]
        )
        if before is None:
            before = demo_eval(cfg, sft_policy, "before PPO")
            before_path.write_text(json.dumps(before, indent=2))
        start = time.time()
        final = train_job(cfg, policy=sft_policy)
        ppo_s = time.time() - start
        after = demo_eval(cfg, final, f"after PPO, {name}")
        kl = held_out_kl(cfg, final, sft_policy)
        summary = _summary(name, before, after, run_dir, ppo_s, kl)
        done.write_text(json.dumps(summary, indent=2))
        summaries.append(summary)
        print(_table([summary]), flush=True)

    order = {n: i for i, n in enumerate(SETTINGS)}
    summaries.sort(key=lambda s: order[s["setting"]])
    table = _table(summaries)
    (args.out / "table.md").write_text(table + "\n")
    (args.out / "summary.json").write_text(json.dumps(summaries, indent=2))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
