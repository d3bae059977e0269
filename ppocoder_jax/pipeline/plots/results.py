"""Held-out results as bars (``results_figure``, ``eval_figure``): grouped bars per metric
and mode, the trivial floors, output lengths, and one horizontal panel per breakdown table
(``per_<x>_pass``), with their caption.
"""

from __future__ import annotations

import math
import textwrap

from ppocoder_jax.pipeline.plots.columns import _mode_of
from ppocoder_jax.pipeline.plots.style import (
    BEFORE_AFTER_COLOURS,
    LEGEND_ROW_PT,
    RUN_COLOURS,
    Plot,
    _fmt,
    _legend_above,
    _pyplot,
)

PCT = "%"
# (metric key, label, unit) for the results bars, in this order; absent ones are skipped.
RESULT_METRICS: tuple[tuple[str, str, str], ...] = (
    ("pass@1", "pass@1", PCT),
    # rollout.turns > 1: the first attempt alone, and the failures the feedback fixed
    ("pass@1_turn1", "pass@1 turn 1", PCT),
    ("fix_rate", "fix rate", PCT),
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
    sign = 1.0 if key == "per_compile_failure" else -1.0  # failures: largest fall first
    if len(tables) >= 2:  # largest gain first: where training helped, then where it hurt
        names.sort(key=lambda t: sign * (tables[-1].get(t, 0.0) - tables[0].get(t, 0.0)))
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
    if key == "per_compile_failure":  # shares of all completions, by why they fail
        ax.set_xlabel(f"{mode}: share of completions failing (%)")
        order = " (largest fall first)" if len(tables) >= 2 else ""
        ax.set_title(f"Why completions fail to compile, {mode}{order}", loc="left")
    else:
        ax.set_xlabel(f"{mode} pass rate (%)")
        what = key.removeprefix("per_").removesuffix("_pass").replace("_", " ")
        order = " (largest gain first)" if len(tables) >= 2 else ""
        ax.set_title(f"Per {what}, {mode}{order}", loc="left")
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
