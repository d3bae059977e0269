"""Sampled pass@k with n samples per problem, drawn in chunks, overall and per difficulty.

`ppocoder eval --sampled` draws all n samples of a prompt in one device call and reports only the
mean over problems. For the paper's APPS table (n = 1000, pass@1/5/1000 by difficulty) that is
too much memory (about 100 MiB of KV cache per sample row for codet5-large) and loses the
per-problem counts, so this driver uses the same library pieces (`generate_outputs`,
`score_outputs`, the unit-test reward at CodeRL's values, the unbiased estimator) but:

- draws the n samples in chunks of --sample-chunk per prompt (rows per device call =
  eval.batch_size x chunk), each chunk with its own seed;
- saves the per-problem counts (n, c, verdicts) after every chunk to
  <run_dir>/passk_<split>_state.json, so a preempted run continues where it stopped (same
  problems, n, model path and seed; --fresh starts over);
- writes <run_dir>/passk_<split>_problems.jsonl and <run_dir>/eval_<split>.json:
  {"all": {...}, "<difficulty>": {...}, "num_samples": n, "ks": [...]}, each group holding
  num_problems, pass@k for every k <= n, compile_rate, infra_errors.

    python scripts/paper/passk.py --config paper_apps --split test [--sample-chunk 100] \
        model.path=RUN/ppo/final_model data.path=APPS train.run_dir=RUN/eval_ppo
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path

DIFFICULTY_ORDER = ("introductory", "interview", "competition")


def group_metrics(records: list[dict], ks: tuple[int, ...]) -> dict:
    from ppocoder_jax.rewards.metrics import mean_pass_at_k

    ns = [r["n"] for r in records]
    cs = [r["c"] for r in records]
    out: dict = {"num_problems": len(records)}
    for k in ks:
        if records and all(n >= k for n in ns):
            out[f"pass@{k}"] = mean_pass_at_k(ns, cs, k)
    total = sum(ns)
    out["compile_rate"] = sum(r["compiled"] for r in records) / total if total else 0.0
    out["infra_errors"] = sum(r["infra_errors"] for r in records)
    return out


def summarize(records: list[dict], ks: tuple[int, ...], num_samples: int) -> dict:
    result = {"num_samples": num_samples, "ks": list(ks), "all": group_metrics(records, ks)}
    groups = sorted(
        {r["difficulty"] for r in records if r["difficulty"]},
        key=lambda d: (DIFFICULTY_ORDER.index(d) if d in DIFFICULTY_ORDER else 99, d),
    )
    for d in groups:
        result[d] = group_metrics([r for r in records if r["difficulty"] == d], ks)
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="preset (configs/) or YAML path")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--sample-chunk", type=int, default=100, help="samples per prompt per call")
    p.add_argument("--fresh", action="store_true", help="ignore saved per-chunk progress")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.sample_chunk < 1:
        p.error("--sample-chunk must be >= 1")

    from ppocoder_jax.config import Config, from_dict, load_config, to_dict
    from ppocoder_jax.data import load_task
    from ppocoder_jax.errors import UserError
    from ppocoder_jax.pipeline.evaluate import generate_outputs, score_outputs
    from ppocoder_jax.pipeline.policy_loader import load_policy
    from ppocoder_jax.rewards.composite import CompositeReward

    try:
        cfg = load_config(args.config, args.overrides)
        params, t5cfg, tokenizer = load_policy(cfg)
        task = load_task(cfg.data, tokenizer)
    except UserError as err:
        print(f"passk: error: {err}")
        return 2
    if task.kind != "synthesis":
        print(f"passk: error: task {task.name!r} is not a unit-tested synthesis task")
        return 2
    examples = task.split(args.split)
    if not examples:
        print(f"passk: error: task {task.name!r} has no {args.split!r} examples")
        return 2
    n = cfg.eval.num_samples
    ks = tuple(k for k in cfg.eval.ks if k <= n)
    run_dir = Path(cfg.train.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / f"passk_{args.split}_state.json"
    ids = [e.id for e in examples]
    key = {"ids": ids, "num_samples": n, "model": cfg.model.path, "seed": cfg.train.seed}
    state = {**key, "done": 0, "n": [0] * len(ids), "c": [0] * len(ids)}
    state |= {"compiled": [0] * len(ids), "infra": [0] * len(ids), "verdicts": [{} for _ in ids]}
    if state_path.is_file() and not args.fresh:
        saved = json.loads(state_path.read_text())
        if all(saved.get(k) == v for k, v in key.items()):
            state = saved
            print(f"passk: resuming after {state['done']} of {n} samples per problem")
    # Pass@k needs the test verdicts only (CodeRL values), as `ppocoder eval` does for synthesis.
    tree = to_dict(cfg)
    tree["reward"].update(tests_weight=1.0, compile_weight=0.0, ast_weight=0.0, dfg_weight=0.0)
    reward_cfg = from_dict(Config, tree).reward
    with CompositeReward(reward_cfg) as reward:
        while state["done"] < n:
            chunk = min(args.sample_chunk, n - state["done"])
            outputs = generate_outputs(
                cfg,
                params,
                t5cfg,
                tokenizer,
                examples,
                greedy=False,
                num_samples=chunk,
                seed=cfg.train.seed * 1_000_003 + state["done"],
                desc=f"samples {state['done'] + 1}-{state['done'] + chunk} of {n}",
            )
            parts = score_outputs(reward, examples, outputs)
            for i, ps in enumerate(parts):
                for q in ps:
                    verdicts = state["verdicts"][i]
                    verdicts[q.verdict] = verdicts.get(q.verdict, 0) + 1
                    if q.infra_error:
                        state["infra"][i] += 1
                        continue
                    state["n"][i] += 1
                    state["c"][i] += int(q.passed)
                    state["compiled"][i] += int(q.compiled)
            state["done"] += chunk
            tmp = state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state))
            os.replace(tmp, state_path)
    records = [
        {
            "id": e.id,
            "difficulty": str(e.meta.get("difficulty") or ""),
            "n": state["n"][i],
            "c": state["c"][i],
            "compiled": state["compiled"][i],
            "infra_errors": state["infra"][i],
            "verdicts": dict(Counter(state["verdicts"][i])),
        }
        for i, e in enumerate(examples)
    ]
    short = [r["id"] for r in records if any(r["n"] < k for k in ks)]
    if short:
        print(
            f"passk: warning: {len(short)} problems lost samples to infra errors (e.g. {short[0]})"
        )
    with open(run_dir / f"passk_{args.split}_problems.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    result = summarize(records, ks, n)
    text = json.dumps(result, indent=2)
    (run_dir / f"eval_{args.split}.json").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
