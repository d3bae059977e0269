"""How figures look: colours and line styles, matplotlib's settings (``_pyplot``), the EMA
smoothing (``ema``) and how one series is drawn over it (``_draw``), the panel grid
(``_layout``), legends above the axes, number formatting, and the ``Plot`` a figure is
returned as (``drawn_series`` lists its curves).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

DEFAULT_SMOOTH = 0.9
MIN_POINTS_TO_SMOOTH = 20  # shorter series are drawn as they are, with markers
BEFORE_AFTER_COLOURS = ("#9a9a9a", "#1f6fb4")
RUN_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")
SERIES_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
STYLES = ("-", "--", ":", "-.")


def ema(values: list[float], factor: float) -> list[float]:
    """Debiased exponential moving average (TensorBoard's smoothing); nan values are skipped."""
    out, last, weight = [], 0.0, 0.0
    for v in values:
        if math.isfinite(v):
            last = factor * last + (1 - factor) * v
            weight = factor * weight + (1 - factor)
        out.append(last / weight if weight > 0 else math.nan)
    return out


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
