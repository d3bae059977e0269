"""The held-out results as bar columns ``(label, {mode: metrics})``: a run's before / after
PPO (``results.json``, else its eval rows), several runs side by side, and the mode
(greedy / sampled) of one ``ppocoder eval`` result.
"""

from __future__ import annotations

import json
from collections import defaultdict

from ppocoder_jax.pipeline.plots.runs import Run
from ppocoder_jax.pipeline.plots.style import BEFORE_AFTER_COLOURS, RUN_COLOURS


def _unflatten(row: dict) -> dict[str, dict]:
    out: dict[str, dict] = defaultdict(dict)
    for key, value in row.items():
        mode, _, metric = key.partition("_")
        if mode in ("greedy", "sampled") and metric:
            out[mode][metric] = value
    return dict(out)


def demo_columns(run: Run) -> list[tuple[str, dict[str, dict]]]:
    """(label, {mode: metrics}) before and after PPO: results.json, else the eval rows."""
    if run.results and isinstance(run.results.get("before"), dict):
        after_step = ""
        eval_steps = sorted({r["step"] for r in run.rows if r.get("phase") == "eval"})
        if len(eval_steps) > 1:
            after_step = f" ({int(eval_steps[-1])} iterations)"
        cols = [("SFT (before PPO)", run.results["before"])]
        if isinstance(run.results.get("after"), dict):
            cols.append((f"after PPO{after_step}", run.results["after"]))
        return cols
    rows = sorted((r for r in run.rows if r.get("phase") == "eval"), key=lambda r: r["step"])
    if not rows:
        return []
    cols = [
        (
            "SFT (before PPO)" if rows[0]["step"] == 0 else f"step {rows[0]['step']}",
            _unflatten(rows[0]),
        )
    ]
    if len(rows) > 1:
        cols.append((f"after PPO ({int(rows[-1]['step'])} iterations)", _unflatten(rows[-1])))
    return [c for c in cols if c[1]]


def _mode_of(metrics: dict) -> str:
    """greedy / sampled where the metrics tell (synthesis: samples per problem), else ""."""
    if "samples_per_problem" not in metrics:
        return ""
    return "sampled" if metrics["samples_per_problem"] > 1 else "greedy"


def comparison_columns(runs: list[Run]) -> tuple[list, list[str]]:
    """Several runs' held-out results: one "before" column when every run started from the same
    evaluation (the same SFT model), then each run's "after"; else before / after per run."""
    per_run = [(i, run, demo_columns(run)) for i, run in enumerate(runs)]
    per_run = [(i, run, cols) for i, run, cols in per_run if cols]
    if not per_run:
        return [], []
    befores = [json.dumps(cols[0][1], sort_keys=True) for _, _, cols in per_run]
    if all(len(cols) == 2 for _, _, cols in per_run) and len(set(befores)) == 1:
        columns = [(per_run[0][2][0][0], per_run[0][2][0][1])]
        colours = [BEFORE_AFTER_COLOURS[0]]
        for i, run, cols in per_run:
            columns.append((f"{run.label}: {cols[1][0]}", cols[1][1]))
            colours.append(RUN_COLOURS[i % len(RUN_COLOURS)])
        return columns, colours
    columns, colours = [], []
    for i, run, cols in per_run:
        for j, (label, metrics) in enumerate(cols):
            columns.append((f"{run.label}: {label}", metrics))
            colour = RUN_COLOURS[i % len(RUN_COLOURS)]
            colours.append(colour if j == len(cols) - 1 else _lighter(colour))
    return columns, colours


def _lighter(colour: str) -> str:
    rgb = [int(colour[k : k + 2], 16) for k in (1, 3, 5)]
    return "#" + "".join(f"{(c + 2 * 255) // 3:02x}" for c in rgb)
