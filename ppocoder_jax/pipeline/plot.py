"""PNG pictures of runs: training curves per phase, and the held-out results as bars.

What a run directory holds and where each piece goes:

- ``metrics.jsonl`` phase ``ppo`` (``PPOTrainer.run_iteration`` + ``summarize_metrics`` of the
  update) -> ``ppo.png``, panels grouped by meaning (``PPO_PANELS``); counters and constants
  (``PPO_CAPTION`` and any series constant over the run) go to the figure's caption.
- phase ``sft`` (``sft.train``: loss, val_loss, elapsed_s) -> ``sft.png``.
- phase ``eval`` (the demo's flattened before/after evaluations, ``greedy_pass@1`` ...) -> no
  curve of two points: the held-out pass@1 is marked on the PPO pass-rate panel, and the
  before/after comparison is ``results.png``.
- ``results.json`` (demo) -> ``results.png``: grouped bars before/after PPO, greedy and
  sampled, overall and per template / difficulty (any ``per_<x>_pass`` table).
- ``eval_<split>.json`` (``ppocoder eval``) -> ``eval_<split>.png``, the same bars for one model.

Several run directories give the same training panels overlaid, one colour per run.

Noisy series are drawn as a debiased exponential moving average (factor ``smooth``, as
TensorBoard's) over the faint raw series. Every drawn line carries a ``gid``
``"<run>|<key>|raw"`` or ``"<run>|<key>|smooth"``; ``drawn_series(fig)`` lists them.
"""

from __future__ import annotations

import json
import math
import os
import sys
import textwrap
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_SMOOTH = 0.9
MIN_POINTS_TO_SMOOTH = 20  # shorter series are drawn as they are, with markers


# ---------------------------------------------------------------------------------------------
# what goes where


@dataclass(frozen=True)
class Panel:
    title: str
    left: tuple[str, ...]
    ylabel: str
    right: tuple[str, ...] = ()
    ylabel_right: str = ""
    ylim: tuple[float, float] | None = None
    ylim_right: tuple[float, float] | None = None


# PPO iteration metrics (ppo_trainer.run_iteration; update means from train_step.summarize_metrics)
PPO_PANELS: tuple[Panel, ...] = (
    Panel(
        "Reward (training samples)",
        ("score", "reward_tests", "reward_compile", "reward_ast", "reward_dfg"),
        "mean reward per sample",
    ),
    Panel(
        "Pass / compile rate",
        ("pass_rate", "compile_rate"),
        "fraction of samples",
        ylim=(-0.02, 1.02),
    ),
    Panel(
        "KL to the reference model",
        ("kl",),
        "KL (nats per sample)",
        ("kl_coef",),
        "KL coefficient β",
    ),
    Panel(
        "Policy loss and clipping",
        ("policy_loss", "loss"),
        "loss (per token)",
        ("clip_frac", "dual_clip_frac"),
        "clipped fraction of tokens",
    ),
    Panel(
        "Value loss and clipping",
        ("value_loss",),
        "value loss (per token)",
        ("vf_clip_frac",),
        "clipped fraction of values",
    ),
    Panel(
        "Update size",
        ("approx_kl", "kl_loss"),
        "KL (nats/token)",
        ("grad_norm",),
        "gradient norm",
    ),
    Panel(
        "Entropy and explained variance",
        ("entropy",),
        "entropy (nats/token)",
        ("explained_variance",),
        "explained variance (value head)",
    ),
    Panel("Sample length", ("mean_length",), "tokens per sample"),
    Panel(
        "Time per iteration",
        ("time_total_s", "time_sample_s", "time_rewards_s", "time_update_s"),
        "seconds",
    ),
    Panel(
        "Rewards: device waiting, pool busy, throughput",
        ("reward_wait_frac", "reward_busy_frac"),
        "fraction",
        ("reward_programs_per_s",),
        "programs scored per second",
        ylim=(-0.02, 1.02),
    ),
)
# Counters and per-iteration constants: never curves, summarised in the caption.
PPO_CAPTION: dict[str, str] = {
    "samples": "samples per iteration",
    "num_steps": "optimizer steps per iteration",
    "value_warmup": "value-only warm-up",
    "infra_errors": "infra errors (masked)",
    "reward_errors": "reward errors (masked)",
    "groups_dropped": "groups dropped (dynamic sampling)",
    "rollout_lag": "updates between sampling and learning (train.overlap_rollouts)",
}
SFT_PANELS: tuple[Panel, ...] = (
    Panel("Cross-entropy", ("loss", "val_loss"), "cross-entropy (nats/token)"),
)
SFT_CAPTION: dict[str, str] = {"elapsed_s": "wall time"}
PHASE_LABELS: dict[str, dict[str, str]] = {"sft": {"loss": "training batch"}}
PHASES: dict[str, tuple[tuple[Panel, ...], dict[str, str], str]] = {
    "ppo": (PPO_PANELS, PPO_CAPTION, "PPO iteration"),
    "sft": (SFT_PANELS, SFT_CAPTION, "SFT step"),
}
TOTALS = {"score", "time_total_s"}  # drawn black and broad under their parts (one run)
NOT_SMOOTHED = {"kl_coef", "val_loss"}  # set by a controller / measured rarely: not noise
NOT_METRICS = {"phase", "step", "time"}
TRAINING_PHASES_SKIPPED = {"eval"}  # two points each: shown as bars and markers instead

LABELS: dict[str, str] = {
    "score": "total reward",
    "reward_tests": "unit-test part",
    "reward_compile": "compile part",
    "reward_ast": "AST-match part",
    "reward_dfg": "data-flow part",
    "pass_rate": "pass rate",
    "compile_rate": "compile rate",
    "kl": "KL",
    "kl_coef": "β",
    "policy_loss": "policy loss",
    "loss": "total loss",
    "clip_frac": "clip fraction",
    "dual_clip_frac": "dual-clip fraction",
    "kl_loss": "k3 KL to the reference (in the loss)",
    "value_loss": "value loss",
    "vf_clip_frac": "value clip fraction",
    "approx_kl": "approx. KL old → new",
    "grad_norm": "gradient norm",
    "entropy": "entropy",
    "explained_variance": "explained variance",
    "mean_length": "tokens",
    "time_total_s": "total",
    "time_sample_s": "sample",
    "time_rewards_s": "score (rewards)",
    "time_update_s": "update",
    "reward_wait_frac": "device waiting",
    "reward_busy_frac": "pool busy",
    "reward_programs_per_s": "programs/s",
    "val_loss": "validation",
}
PCT = "%"
# (metric key, label, unit) for the results bars, in this order; absent ones are skipped.
RESULT_METRICS: tuple[tuple[str, str, str], ...] = (
    ("pass@1", "pass@1", PCT),
    ("pass@5", "pass@5", PCT),
    ("pass@10", "pass@10", PCT),
    ("pass@100", "pass@100", PCT),
    ("compile_rate", "compile rate", PCT),
    ("exact_match", "exact match", PCT),
    ("edit_similarity", "edit similarity", PCT),
    ("bleu", "BLEU", PCT),
    ("codebleu", "CodeBLEU", PCT),
)
FLOORS = (
    ("floor_empty_compile_rate", "floor: empty completion"),
    ("floor_best_constant_compile_rate", "floor: best constant"),
)
BEFORE_AFTER_COLOURS = ("#9a9a9a", "#1f6fb4")
RUN_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")
SERIES_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
STYLES = ("-", "--", ":", "-.")


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# reading a run directory


@dataclass
class Run:
    path: Path
    label: str
    rows: list[dict] = field(default_factory=list)
    results: dict | None = None
    evals: dict[str, dict] = field(default_factory=dict)  # "eval_test" -> metrics


def read_rows(path: Path) -> list[dict]:
    """The readable rows of a metrics.jsonl; one warning line for whatever was skipped."""
    rows, bad = [], []
    lines = path.read_text(errors="replace").splitlines()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad.append(lineno)
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), (int, float)):
            rows.append(row)
        else:
            bad.append(lineno)
    if bad:
        last = " (the last: a run killed mid-write?)" if bad[-1] == len(lines) else ""
        warn(f"{path}: skipped {len(bad)} unreadable line(s): {_spans(bad)}{last}")
    return rows


def _spans(numbers: list[int]) -> str:
    text = ", ".join(str(n) for n in numbers[:5])
    return text + (f" and {len(numbers) - 5} more" if len(numbers) > 5 else "")


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        warn(f"{path}: unreadable ({type(err).__name__}), not plotted")
        return None
    return data if isinstance(data, dict) else None


def load_run(run_dir: str | os.PathLike, label: str | None = None) -> Run:
    path = Path(run_dir)
    run = Run(path, label or path.resolve().name)
    if not path.is_dir():
        warn(f"{path} is not a directory")
        return run
    metrics = path / "metrics.jsonl"
    if metrics.is_file():
        run.rows = read_rows(metrics)
        if not run.rows and not metrics.read_text(errors="replace").strip():
            warn(f"{metrics} holds no metrics yet: no curves")
    else:
        warn(f"{metrics} not found: no curves")
    if (path / "results.json").is_file():
        run.results = _read_json(path / "results.json")
    for eval_path in sorted(path.glob("eval_*.json")):
        data = _read_json(eval_path)
        if data:
            run.evals[eval_path.stem] = data
    return run


def phase_series(rows: list[dict], phase: str) -> dict[str, tuple[list[float], list[float]]]:
    """key -> (steps, values) of one phase, numeric values only (None -> nan); a step logged
    twice (a resumed run re-doing the iterations after its last checkpoint) keeps its last row."""
    by_step: dict[float, dict] = {}
    for row in rows:
        if row.get("phase", "train") == phase:
            by_step[row["step"]] = row
    series: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for step in sorted(by_step):
        for key, value in by_step[step].items():
            if key in NOT_METRICS or isinstance(value, bool):
                continue
            if value is None:
                value = math.nan
            if isinstance(value, (int, float)):
                series[key][0].append(step)
                series[key][1].append(float(value))
    if {"time_sample_s", "time_rewards_s", "time_update_s"} <= series.keys():
        parts = [
            dict(zip(*series[k])) for k in ("time_sample_s", "time_rewards_s", "time_update_s")
        ]
        steps = [s for s in series["time_sample_s"][0] if all(s in p for p in parts)]
        series["time_total_s"] = (steps, [sum(p[s] for p in parts) for s in steps])
    return dict(series)


def is_constant(values: list[float]) -> bool:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return len(values) >= 2  # all nan over a run: nothing to draw either
    lo, hi = min(finite), max(finite)
    return hi - lo <= 1e-9 * max(1.0, abs(lo), abs(hi))


def ema(values: list[float], factor: float) -> list[float]:
    """Debiased exponential moving average (TensorBoard's smoothing); nan values are skipped."""
    out, last, weight = [], 0.0, 0.0
    for v in values:
        if math.isfinite(v):
            last = factor * last + (1 - factor) * v
            weight = factor * weight + (1 - factor)
        out.append(last / weight if weight > 0 else math.nan)
    return out


# ---------------------------------------------------------------------------------------------
# figures


@dataclass
class Plot:
    name: str  # file stem
    figure: Any  # matplotlib Figure
    series: list[str]  # "<run>|<key>" of every curve drawn
    caption: str


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 11,
            "axes.titlesize": 12,
            "axes.titleweight": "bold",
            "axes.labelsize": 10.5,
            "legend.fontsize": 9.5,
            "xtick.labelsize": 9.5,
            "ytick.labelsize": 9.5,
            "axes.spines.top": False,
        }
    )
    return plt


def drawn_series(figure) -> set[str]:
    """The "<run>|<key>" of every curve (raw or smoothed) in a figure."""
    found = set()
    for ax in figure.axes:
        for line in ax.get_lines():
            gid = line.get_gid() or ""
            if gid.count("|") == 2:
                found.add(gid.rsplit("|", 1)[0])
    return found


def _fmt(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.4g}"


def _caption_items(
    runs: list[Run], all_series: list[dict], caption_keys: dict[str, str], drawn: set[str]
) -> list[str]:
    """Counters and constants per key, merged over runs when they agree."""
    items = []
    keys = sorted({k for s in all_series for k in s}, key=lambda k: (k not in caption_keys, k))
    for key in keys:
        if key in drawn:
            continue
        per_run = {}
        for run, series in zip(runs, all_series):
            if key in series:
                per_run[run.label] = _summary(key, *series[key])
        if not per_run:
            continue
        name = caption_keys.get(key, key)
        if len(set(per_run.values())) == 1:
            items.append(f"{name}: {next(iter(per_run.values()))}")
        else:
            joined = ", ".join(f"{v} ({r})" for r, v in per_run.items())
            items.append(f"{name}: {joined}")
    return items


def _summary(key: str, steps: list[float], values: list[float]) -> str:
    finite = [(s, v) for s, v in zip(steps, values) if math.isfinite(v)]
    if not finite:
        return "n/a"
    vals = [v for _, v in finite]
    if key == "value_warmup":
        on = [int(s) for s, v in finite if v]
        return f"iterations {on[0]}-{on[-1]}" if on else "none"
    if key in ("infra_errors", "reward_errors"):
        total = sum(vals)
        hit = sum(1 for v in vals if v)
        return f"{_fmt(total)} in all" + (f" ({hit} of {len(vals)} iterations)" if hit else "")
    if key.endswith("elapsed_s"):
        return f"{vals[-1]:.0f} s at step {int(finite[-1][0])}"
    lo, hi = min(vals), max(vals)
    return _fmt(lo) if lo == hi else f"{_fmt(lo)}-{_fmt(hi)}"


def _layout(plt, n_panels: int, caption_lines: int, ncols: int, legend_row: bool):
    """Panels in rows of ``ncols``, a row for the caption under them and, for several runs, a
    row above them for the runs' legend. Returns (figure, panel axes, caption axes, legend axes)."""
    nrows = max(1, math.ceil(n_panels / ncols))
    caption_h = 0.22 * caption_lines + 0.2
    heights = ([0.3] if legend_row else []) + [3.3] * nrows + [caption_h]
    fig = plt.figure(figsize=(7.2 * ncols, sum(heights) + 0.6), layout="constrained", dpi=100)
    grid = fig.add_gridspec(len(heights), ncols, height_ratios=heights)
    top = 1 if legend_row else 0
    axes = [fig.add_subplot(grid[top + i // ncols, i % ncols]) for i in range(n_panels)]
    caption_ax = fig.add_subplot(grid[-1, :])
    caption_ax.axis("off")
    legend_ax = fig.add_subplot(grid[0, :]) if legend_row else None
    if legend_ax is not None:
        legend_ax.axis("off")
    return fig, axes, caption_ax, legend_ax


def _draw(ax, xs, ys, *, colour, style, gid, label, smooth, total=False):
    """Raw series faint under its EMA when long enough, else as it is with markers. A total
    (``TOTALS``) is a broad translucent line under its parts, so that a part equal to it shows."""
    smoothed = smooth > 0 and len(ys) >= MIN_POINTS_TO_SMOOTH
    width, alpha, zorder = (4.0, 0.4, 1.9) if total else (2.0 if smoothed else 1.8, 1.0, 2.0)
    common = dict(color=colour, linestyle=style, zorder=zorder)
    if smoothed:
        ax.plot(xs, ys, alpha=0.22 * alpha, linewidth=1, gid=f"{gid}|raw", **common)
        return ax.plot(
            xs,
            ema(ys, smooth),
            alpha=alpha,
            linewidth=width,
            label=label,
            gid=f"{gid}|smooth",
            **common,
        )[0]
    marker = "o" if len(xs) < 30 else None
    return ax.plot(
        xs,
        ys,
        alpha=alpha,
        linewidth=width,
        marker=marker,
        markersize=4,
        label=label,
        gid=f"{gid}|raw",
        **common,
    )[0]


def training_figure(runs: list[Run], phase: str, smooth: float = DEFAULT_SMOOTH) -> Plot | None:
    """One phase's panels for one run or several overlaid; None when there is nothing to draw."""
    plt = _pyplot()
    panels, caption_keys, xlabel = PHASES.get(phase, ((), {}, "step"))
    labels = {**LABELS, **PHASE_LABELS.get(phase, {})}
    all_series = [phase_series(run.rows, phase) for run in runs]
    mapped = {k for p in panels for k in p.left + p.right}
    # A series is a curve when it varies in at least one run and is not a counter.
    varying = {
        k
        for series in all_series
        for k, (xs, ys) in series.items()
        if k not in caption_keys and not is_constant(ys)
    }
    other = sorted(varying - mapped)
    if other:
        panels = panels + (Panel("Other metrics (no panel of their own)", tuple(other), "value"),)
    shown = [p for p in panels if any(k in varying for k in p.left + p.right)]
    if not shown:
        return None
    caption_items = _caption_items(runs, all_series, caption_keys, varying)
    n_iters = [len({x for xs, _ in s.values() for x in xs}) for s in all_series]
    head = f"{phase}: " + ", ".join(f"{r.label} {n} steps logged" for r, n in zip(runs, n_iters))
    longest = max(
        (len(xs) for s in all_series for k, (xs, _) in s.items() if k in varying), default=0
    )
    if smooth > 0 and longest >= MIN_POINTS_TO_SMOOTH:
        head += f"; bold lines: EMA (smoothing {smooth}) over the faint raw series"
    caption = "\n".join(
        textwrap.wrap(
            head + ".  Constant or counted: " + ("; ".join(caption_items) or "none") + ".",
            width=150 if len(shown) > 1 else 95,
        )
    )
    ncols = 2 if len(shown) > 1 else 1
    overlay = len(runs) > 1
    fig, axes, caption_ax, legend_ax = _layout(
        plt, len(shown), caption.count("\n") + 1, ncols, legend_row=overlay
    )
    caption_ax.text(
        0, 1, caption, va="top", ha="left", fontsize=9.5, transform=caption_ax.transAxes
    )
    drawn: list[str] = []
    eval_rows = [_eval_points(run.rows) for run in runs] if phase == "ppo" else []
    for ax, panel in zip(axes, shown):
        handles = []
        twin = None
        sides = [(ax, panel.left, panel.ylabel, panel.ylim)]
        if any(k in varying for k in panel.right):
            twin = ax.twinx()
            twin.spines["top"].set_visible(False)
            sides.append((twin, panel.right, panel.ylabel_right, panel.ylim_right))
        index = 0
        for side, (target, keys, ylabel, ylim) in enumerate(sides):
            keys = [k for k in keys if k in varying]
            for key in keys:
                for r, (run, series) in enumerate(zip(runs, all_series)):
                    if key not in series:
                        continue
                    xs, ys = series[key]
                    colour = (
                        RUN_COLOURS[r % len(RUN_COLOURS)]
                        if overlay
                        else "black"
                        if key in TOTALS
                        else (SERIES_COLOURS[index % len(SERIES_COLOURS)])
                    )
                    style = STYLES[index % len(STYLES)] if overlay else ("-" if side == 0 else "--")
                    label = labels.get(key, key) + (" (right axis)" if side else "")
                    line = _draw(
                        target,
                        xs,
                        ys,
                        colour=colour,
                        style=style,
                        gid=f"{run.label}|{key}",
                        label=None if overlay else label,
                        smooth=0 if key in NOT_SMOOTHED else smooth,
                        total=key in TOTALS and not overlay,
                    )
                    drawn.append(f"{run.label}|{key}")
                    if not overlay:
                        handles.append(line)
                if overlay:
                    handles.append(
                        plt.Line2D(
                            [],
                            [],
                            color="0.3",
                            linestyle=STYLES[index % len(STYLES)],
                            label=labels.get(key, key) + (" (right)" if side else ""),
                        )
                    )
                index += 1
            target.set_ylabel(ylabel)
            if ylim:
                target.set_ylim(*ylim)
            elif panel.title.startswith("Time"):
                target.set_ylim(bottom=0)
        if panel.title.startswith("Pass") and eval_rows:
            handles += _mark_evals(ax, eval_rows, overlay)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        rows = 0
        if len(handles) > 1 or overlay:
            rows = _legend_above(ax, handles, ncol=4 if len(handles) == 4 else 3)
        ax.set_title(panel.title, loc="left", pad=6 + LEGEND_ROW_PT * rows)
    what = {"ppo": "PPO training", "sft": "Supervised warm start (SFT)"}.get(phase, phase)
    names = " vs ".join(run.label for run in runs)
    fig.suptitle(f"{what}: {names}", fontsize=14, fontweight="bold")
    if legend_ax is not None:
        legend_ax.legend(
            handles=[
                plt.Line2D(
                    [], [], color=RUN_COLOURS[i % len(RUN_COLOURS)], linewidth=3, label=r.label
                )
                for i, r in enumerate(runs)
            ],
            loc="center",
            ncol=min(len(runs), 6),
            frameon=False,
            fontsize=12,
            handlelength=3,
        )
    return Plot(phase, fig, sorted(set(drawn)), caption)


LEGEND_ROW_PT = 17  # one legend row at legend.fontsize, in points


def _legend_above(ax, handles=None, ncol=3) -> int:
    """A frameless legend between the axes and its title (the caller pads the title by the
    rows returned): it never covers data."""
    handles = handles if handles is not None else ax.get_legend_handles_labels()[0]
    if not handles:
        return 0
    ncol = min(len(handles), ncol)
    rows = math.ceil(len(handles) / ncol)
    # matplotlib fills a legend column by column: reorder so that it reads row by row
    handles = [
        handles[r * ncol + c]
        for c in range(ncol)
        for r in range(rows)
        if r * ncol + c < len(handles)
    ]
    ax.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0, 1.0),
        ncol=ncol,
        frameon=False,
        borderaxespad=0.1,
        handlelength=2.2,
        columnspacing=1.2,
    )
    return math.ceil(len(handles) / ncol)


def _eval_points(rows: list[dict]) -> dict[str, tuple[list[float], list[float]]]:
    series = phase_series(rows, "eval")
    return {m: series[f"{m}_pass@1"] for m in ("greedy", "sampled") if f"{m}_pass@1" in series}


def _mark_evals(ax, eval_rows, overlay) -> list:
    plt = _pyplot()
    handles = []
    markers = {"greedy": "*", "sampled": "D"}
    for r, points in enumerate(eval_rows):
        for mode, (xs, ys) in points.items():
            colour = RUN_COLOURS[r % len(RUN_COLOURS)] if overlay else "black"
            ax.scatter(
                xs,
                ys,
                marker=markers[mode],
                s=90 if mode == "greedy" else 40,
                color=colour,
                zorder=5,
                edgecolor="white",
                linewidth=0.6,
            )
    for mode in ("greedy", "sampled"):
        if any(mode in p for p in eval_rows):
            handles.append(
                plt.Line2D(
                    [],
                    [],
                    linestyle="",
                    marker=markers[mode],
                    color="black",
                    markersize=10 if mode == "greedy" else 6,
                    label=f"held-out pass@1 {mode}",
                )
            )
    return handles


# ---------------------------------------------------------------------------------------------
# results bars


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


def results_figure(
    columns: list[tuple[str, dict[str, dict]]],
    title: str,
    name: str = "results",
    colours: list[str] | None = None,
) -> Plot | None:
    """Grouped bars: one group per (metric, mode), one bar per column (e.g. before / after);
    then one horizontal panel per breakdown table (per_template_pass ...) and mode."""
    plt = _pyplot()
    modes = [m for m in ("greedy", "sampled") if any(m in c for _, c in columns)]
    modes += sorted({m for _, c in columns for m in c} - set(modes))
    groups = []  # (label, mode, key)
    for mode in modes:
        for key, label, _ in RESULT_METRICS:
            if any(isinstance(c.get(mode, {}).get(key), (int, float)) for _, c in columns):
                groups.append((f"{label}\n{mode}" if mode else label, mode, key))
    groups.sort(key=lambda g: [k for k, _, _ in RESULT_METRICS].index(g[2]))
    breakdowns = []  # (table key, mode)
    for mode in modes:
        for key in sorted({k for _, c in columns for k in c.get(mode, {})}):
            if key.startswith("per_") and any(
                isinstance(c.get(mode, {}).get(key), dict) and c[mode][key] for _, c in columns
            ):
                breakdowns.append((key, mode))
    lengths = any("mean_output_chars" in c.get(m, {}) for _, c in columns for m in modes)
    if not groups and not breakdowns:
        return None
    if colours is None:
        colours = list(BEFORE_AFTER_COLOURS if len(columns) == 2 else RUN_COLOURS)
    caption = _results_caption(columns, modes)
    n_cats = max(
        (len({t for _, c in columns for t in c.get(m, {}).get(k, {})}) for k, m in breakdowns),
        default=0,
    )
    top_h = 4.4
    table_h = 0.36 * n_cats * max(1, len(columns) / 2) + 1.2 if breakdowns else 0
    caption_h = 0.22 * (caption.count("\n") + 1) + 0.2
    ncols = max(2, min(len(breakdowns), 3)) if breakdowns else (2 if lengths else 1)
    width = 7 * ncols if breakdowns else (13 if lengths else max(8.0, 1.0 + 1.5 * len(groups)))
    widths = [3, 1] if lengths and not breakdowns else [1] * ncols
    heights = [top_h] + ([table_h] if breakdowns else []) + [caption_h]
    fig = plt.figure(figsize=(width, sum(heights) + 0.8), layout="constrained", dpi=100)
    grid = fig.add_gridspec(len(heights), ncols, height_ratios=heights, width_ratios=widths)
    top = fig.add_subplot(grid[0, : ncols - 1] if lengths else grid[0, :])
    rows = _bars(top, groups, columns, colours)
    top.set_title("Overall", loc="left", pad=6 + LEGEND_ROW_PT * rows)
    if lengths:
        _length_bars(fig.add_subplot(grid[0, ncols - 1]), columns, modes, colours)
    for i, (key, mode) in enumerate(breakdowns[:ncols]):
        ax = fig.add_subplot(grid[1, i])
        _breakdown(ax, key, mode, columns, colours)
    cap = fig.add_subplot(grid[len(heights) - 1, :])
    cap.axis("off")
    cap.text(0, 1, caption, va="top", ha="left", fontsize=9.5, transform=cap.transAxes)
    fig.suptitle(title, fontsize=14, fontweight="bold")
    return Plot(name, fig, [f"{mode}|{key}" for _, mode, key in groups], caption)


def _bar_text(ax, bar, value: float, fontsize=9.5) -> None:
    ax.annotate(
        f"{100 * value:.1f}%",
        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
        xytext=(0, 2),
        textcoords="offset points",
        ha="center",
        va="bottom",
        fontsize=fontsize,
    )


def _bars(ax, groups, columns, colours) -> int:
    width = 0.8 / len(columns)
    for j, (label, metrics) in enumerate(columns):
        xs, vals = [], []
        for i, (_, mode, key) in enumerate(groups):
            value = metrics.get(mode, {}).get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                xs.append(i - 0.4 + width * (j + 0.5))
                vals.append(float(value))
        bars = ax.bar(xs, vals, width * 0.92, color=colours[j % len(colours)], label=label)
        for bar, value in zip(bars, vals):
            _bar_text(ax, bar, value, fontsize=9.5 if len(groups) * len(columns) <= 16 else 8)
    # trivial floors: reference lines over the compile-rate groups only
    floor_styles = (":", "--")
    for (fkey, flabel), style in zip(FLOORS, floor_styles):
        value = next((m[fkey] for _, c in columns for m in c.values() if fkey in m), None)
        spans = [i for i, (_, _, key) in enumerate(groups) if key == "compile_rate"]
        if value is None or not spans:
            continue
        for n, i in enumerate(spans):
            ax.hlines(
                value,
                i - 0.45,
                i + 0.45,
                colors="#b2182b",
                linestyles=style,
                linewidth=2,
                label=f"{flabel} ({100 * value:.1f}%)" if n == 0 else None,
                zorder=4,
            )
    ticks = []
    for label, mode, key in groups:
        first, last = (columns[0][1].get(mode, {}).get(key), columns[-1][1].get(mode, {}).get(key))
        if len(columns) == 2 and isinstance(first, (int, float)) and isinstance(last, (int, float)):
            label += f"\n{100 * (last - first):+.1f} points"
        ticks.append(label)
    ax.set_xticks(range(len(groups)), ticks)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("score (%)")
    ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}")
    ax.grid(axis="y", alpha=0.3)
    return _legend_above(ax, ncol=4)


def _length_bars(ax, columns, modes, colours) -> None:
    width = 0.8 / len(columns)
    ref, rows = None, 0
    modes = [m for m in modes if any("mean_output_chars" in c.get(m, {}) for _, c in columns)]
    for j, (_, metrics) in enumerate(columns):
        for i, mode in enumerate(modes):
            value = metrics.get(mode, {}).get("mean_output_chars")
            ref = metrics.get(mode, {}).get("mean_reference_chars", ref)
            if value is None:
                continue
            bar = ax.bar(
                i - 0.4 + width * (j + 0.5), value, width * 0.92, color=colours[j % len(colours)]
            )[0]
            ax.annotate(
                f"{value:.0f}",
                (bar.get_x() + bar.get_width() / 2, value),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                fontsize=9.5,
            )
    if ref is not None:
        ax.axhline(
            ref, color="black", linestyle="--", linewidth=1.5, label=f"references ({ref:.0f})"
        )
    rows = _legend_above(ax, ncol=1)
    ax.set_xticks(range(len(modes)), modes)
    ax.set_ylabel("mean output length (characters)")
    ax.set_title("Output length", loc="left", pad=6 + LEGEND_ROW_PT * rows)
    ax.grid(axis="y", alpha=0.3)
    ax.margins(y=0.15)


def _breakdown(ax, key: str, mode: str, columns, colours) -> None:
    tables = [c.get(mode, {}).get(key) or {} for _, c in columns]
    names = sorted({t for table in tables for t in table})
    if len(tables) >= 2:  # largest gain first: where training helped, then where it hurt
        names.sort(key=lambda t: -(tables[-1].get(t, 0.0) - tables[0].get(t, 0.0)))
    height = 0.8 / len(columns)
    for j, ((label, _), table) in enumerate(zip(columns, tables)):
        ys = [i - 0.4 + height * (j + 0.5) for i, _ in enumerate(names) if names[i] in table]
        vals = [table[t] for t in names if t in table]
        bars = ax.barh(ys, vals, height * 0.9, color=colours[j % len(colours)], label=label)
        for bar, value in zip(bars, vals):
            ax.annotate(
                f"{100 * value:.0f}%",
                (value, bar.get_y() + bar.get_height() / 2),
                xytext=(2, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.13)
    ax.xaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}")
    ax.set_xlabel(f"{mode} pass rate (%)")
    what = key.removeprefix("per_").removesuffix("_pass").replace("_", " ")
    ax.set_title(
        f"Per {what}, {mode}" + (" (largest gain first)" if len(tables) >= 2 else ""), loc="left"
    )
    ax.grid(axis="x", alpha=0.3)
    ax.tick_params(axis="y", labelsize=9)


def _results_caption(columns, modes) -> str:
    first = columns[0][1]
    items = []
    for mode in modes:
        m = next((c[mode] for _, c in columns if mode in c), {})
        n = m.get("num_problems", m.get("num_examples"))
        what = "problems" if "num_problems" in m else "examples"
        text = f"{n} {what}" if n is not None else ""
        text = f"{mode}: {text}" if mode and text else (mode or text)
        if m.get("samples_per_problem", 1) > 1:
            text += f", {m['samples_per_problem']} samples per problem (unbiased pass@k)"
        counts = []
        for key in ("infra_errors", "reward_errors"):
            vals = [c.get(mode, {}).get(key) for _, c in columns]
            if any(isinstance(v, (int, float)) for v in vals):
                counts.append(f"{key} " + " / ".join("-" if v is None else _fmt(v) for v in vals))
        if counts:
            text += "; " + ", ".join(counts)
        items.append(text)
    best = next(
        (m.get("floor_best_constant") for m in first.values() if "floor_best_constant" in m), None
    )
    if best is not None:
        items.append(f"best constant completion: {best!r}")
    if any(m.get("length_collapse_warning") for _, c in columns for m in c.values()):
        items.append("WARNING: outputs shorter than half the references (length collapse?)")
    labels = " / ".join(label for label, _ in columns)
    return "\n".join(textwrap.wrap(f"Bars: {labels}.  " + ".  ".join(items) + ".", width=140))


def eval_figure(metrics: dict, title: str, mode: str = "", name: str = "eval") -> Plot | None:
    """One `ppocoder eval` result (eval_<split>.json) as bars."""
    return results_figure([("this model", {mode or _mode_of(metrics): metrics})], title, name)


# ---------------------------------------------------------------------------------------------
# entry points


def figures_for(runs: list[Run], smooth: float = DEFAULT_SMOOTH) -> list[Plot]:
    """Every picture the runs' data allows: training phases (overlaid when several runs), and
    for a single run its results / eval bars."""
    plots = []
    phases = sorted(
        {r.get("phase", "train") for run in runs for r in run.rows} - TRAINING_PHASES_SKIPPED,
        key=lambda p: (p not in ("sft", "ppo"), p),
    )
    for phase in phases:
        plot = training_figure(runs, phase, smooth)
        if plot is not None:
            plots.append(plot)
    names = " vs ".join(run.label for run in runs)
    if len(runs) == 1:
        columns, colours = demo_columns(runs[0]), None
    else:
        columns, colours = comparison_columns(runs)
    if columns:
        plots.append(results_figure(columns, f"Held-out results: {names}", "results", colours))
    for stem in sorted({stem for run in runs for stem in run.evals}):
        split = stem.removeprefix("eval_")
        title = f"ppocoder eval, {split} split: {names}"
        cols = [
            (
                run.label if len(runs) > 1 else "this model",
                {_mode_of(run.evals[stem]): run.evals[stem]},
            )
            for run in runs
            if stem in run.evals
        ]
        plots.append(results_figure(cols, title, stem))
    return [plot for plot in plots if plot is not None]


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


def save(plots: list[Plot], out_dir: str | os.PathLike) -> list[Path]:
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for plot in plots:
        path = out / f"{plot.name}.png"
        plot.figure.savefig(path, dpi=100)
        plt.close(plot.figure)
        written.append(path)
    return written


def plot_runs(
    run_dirs: list[str | os.PathLike],
    out: str | os.PathLike | None = None,
    labels: list[str] | None = None,
    smooth: float = DEFAULT_SMOOTH,
) -> list[Path]:
    """Write the PNGs of one run (default RUN_DIR/plots) or of several overlaid (``out``
    required); returns the paths written, [] when there was nothing to plot."""
    if labels is not None and len(labels) != len(run_dirs):
        raise ValueError(f"{len(labels)} labels for {len(run_dirs)} run directories")
    runs = [load_run(d, labels[i] if labels else None) for i, d in enumerate(run_dirs)]
    if labels is None and len({r.label for r in runs}) < len(runs):
        for run in runs:  # same final folder names: use the paths as given
            run.label = str(run.path)
    plots = figures_for(runs, smooth)
    if not plots:
        return []
    return save(plots, out if out is not None else Path(run_dirs[0]) / "plots")


def plot_run(
    run_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    smooth: float = DEFAULT_SMOOTH,
) -> list[Path]:
    """The demo's and `ppocoder plot RUN_DIR`'s pictures: curves, results bars, eval bars."""
    return plot_runs([run_dir], out, smooth=smooth)


def plot_eval(
    metrics: dict, out_dir: str | os.PathLike, name: str, title: str, mode: str = ""
) -> Path | None:
    plot = eval_figure(metrics, title, mode, name)
    return save([plot], out_dir)[0] if plot is not None else None
