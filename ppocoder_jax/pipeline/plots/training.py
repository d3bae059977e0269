"""Training curves: one figure per phase (``training_figure``), for one run or several
overlaid, its caption of counters and constants, and the held-out pass@1 marked on the PPO
pass-rate panel.
"""

from __future__ import annotations

import math
import textwrap

from ppocoder_jax.pipeline.plots.panels import (
    COUNTER_PREFIXES,
    LABELS,
    NOT_SMOOTHED,
    PHASE_LABELS,
    PHASES,
    PLUGIN_PREFIX,
    TOTALS,
    Panel,
)
from ppocoder_jax.pipeline.plots.runs import Run, is_constant, phase_series
from ppocoder_jax.pipeline.plots.style import (
    DEFAULT_SMOOTH,
    LEGEND_ROW_PT,
    MIN_POINTS_TO_SMOOTH,
    RUN_COLOURS,
    SERIES_COLOURS,
    STYLES,
    Plot,
    _draw,
    _fmt,
    _layout,
    _legend_above,
    _pyplot,
)


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


def training_figure(runs: list[Run], phase: str, smooth: float = DEFAULT_SMOOTH) -> Plot | None:
    """One phase's panels for one run or several overlaid; None when there is nothing to draw."""
    plt = _pyplot()
    panels, caption_keys, xlabel = PHASES.get(phase, ((), {}, "step"))
    labels = {**LABELS, **PHASE_LABELS.get(phase, {})}
    all_series = [phase_series(run.rows, phase) for run in runs]
    names = sorted({k for series in all_series for k in series})
    plugins = tuple(k for k in names if k.startswith(PLUGIN_PREFIX))
    if plugins:
        panels = panels + (Panel("Reward plugins (mean per plugin)", plugins, "mean value"),)
    counters = {k: k for k in names if k.startswith(COUNTER_PREFIXES) and k not in caption_keys}
    caption_keys = {**caption_keys, **counters}
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
