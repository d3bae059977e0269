"""Entry points: every figure a set of runs allows (``figures_for``), written as PNGs
(``save``, ``plot_runs``, ``plot_run``, ``plot_eval``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ppocoder_jax.pipeline.plots.columns import _mode_of, comparison_columns, demo_columns
from ppocoder_jax.pipeline.plots.results import eval_figure, results_figure
from ppocoder_jax.pipeline.plots.runs import Run, load_run
from ppocoder_jax.pipeline.plots.style import DEFAULT_SMOOTH, Plot, _pyplot
from ppocoder_jax.pipeline.plots.training import training_figure

TRAINING_PHASES_SKIPPED = {"eval"}  # two points each: shown as bars and markers instead


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
