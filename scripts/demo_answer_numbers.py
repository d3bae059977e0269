#!/usr/bin/env python
"""Where a demo model's greedy numbers come from, on the held-out single-number problems.

The demo's templates with one integer parameter `k` (`count_lt`, `distance`, `mod`, ...) ask the
model to copy a number from the statement that no supervised example of that template shows.
Per model, each greedy answer is put in one class: it contains the statement's number; else a
number of that template's PPO problems (the `rl` split); else one of its corpus problems
(`train`); else none of these. A policy that learns its own training problems' numbers as a
prior, instead of copying, shows up as a growing `rl` class.

    .venv/bin/python scripts/demo_answer_numbers.py --config demo_decoder \
        runs/demo_decoder/sft_model runs/demo_decoder/final_model
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLASSES = ("statement", "rl", "train", "none")


def numbers_by_template(examples) -> dict[str, set[int]]:
    """template -> the `k` values of its problems (single-number templates only)."""
    out: dict[str, set[int]] = collections.defaultdict(set)
    for e in examples:
        params = e.meta["params"]
        if set(params) == {"k"} and isinstance(params["k"], int):
            out[e.meta["template"]].add(params["k"])
    return out


def answer_numbers(program: str) -> set[int]:
    body = program.split("\n", 1)[-1]  # the signature line carries no number
    return {int(x) for x in re.findall(r"\d+", body)}


def classify(answer: str, reference: str, k: int, rl: set[int], train: set[int]) -> str:
    found = answer_numbers(answer)
    if k in found:
        return "statement"
    found -= answer_numbers(reference)  # the template's own constants (`sum(1 for`, `== 0`)
    if found & rl:
        return "rl"
    if found & train:
        return "train"
    return "none"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="demo_decoder")
    parser.add_argument("models", nargs="+", type=Path, help="saved model directories")
    args = parser.parse_args()

    from ppocoder_jax.config import load_config
    from ppocoder_jax.data import load_task
    from ppocoder_jax.pipeline.evaluate import generate_outputs
    from ppocoder_jax.pipeline.jobs import load_saved

    cfg = load_config(args.config, [])
    rows = []
    for model in args.models:
        if not (model / "config.json").exists():
            parser.error(f"no saved model at {model}")
        params, model_cfg, tokenizer = load_saved(model)
        task = load_task(cfg.data, tokenizer)
        rl, train = numbers_by_template(task.rl), numbers_by_template(task.train)
        problems = [e for e in task.split("test") if e.meta["template"] in train]
        outputs = generate_outputs(cfg, params, model_cfg, tokenizer, problems, greedy=True)
        counts = collections.Counter({c: 0 for c in CLASSES})
        rl_numbers = collections.Counter()
        for e, (answer,) in zip(problems, outputs):
            t, k = e.meta["template"], e.meta["params"]["k"]
            cls = classify(answer, e.meta["reference"], k, rl[t], train[t])
            counts[cls] += 1
            if cls == "rl":
                rl_numbers.update(answer_numbers(answer) & rl[t])
        rows.append(
            {
                "model": str(model),
                "problems": len(problems),
                **counts,
                "top_rl_numbers": rl_numbers.most_common(3),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print(
        "\n| model | problems | statement's number | a PPO problem's | a corpus problem's | none |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['problems']} | {r['statement']} | {r['rl']} "
            f"(most: {', '.join(f'{n} x{c}' for n, c in r['top_rl_numbers']) or '-'}) "
            f"| {r['train']} | {r['none']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
