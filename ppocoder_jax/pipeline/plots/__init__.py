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

Modules: ``runs`` (reading a run directory), ``panels`` (which training metric goes where),
``style`` (colours, smoothing, layout, legends), ``training`` (the curves), ``columns``
(before / after columns of the held-out results), ``results`` (the bars), ``entry`` (which
figures, written as PNGs). This package re-exports their public names.
"""

from __future__ import annotations

from ppocoder_jax.pipeline.plots.columns import (
    comparison_columns,
    demo_columns,
)
from ppocoder_jax.pipeline.plots.entry import (
    TRAINING_PHASES_SKIPPED,
    figures_for,
    plot_eval,
    plot_run,
    plot_runs,
    save,
)
from ppocoder_jax.pipeline.plots.panels import (
    LABELS,
    NOT_SMOOTHED,
    PHASE_LABELS,
    PHASES,
    PPO_CAPTION,
    PPO_PANELS,
    SFT_CAPTION,
    SFT_PANELS,
    TOTALS,
    Panel,
)
from ppocoder_jax.pipeline.plots.results import (
    FLOORS,
    RESULT_METRICS,
    eval_figure,
    results_figure,
)
from ppocoder_jax.pipeline.plots.runs import (
    NOT_METRICS,
    Run,
    is_constant,
    load_run,
    phase_series,
    read_rows,
    warn,
)
from ppocoder_jax.pipeline.plots.style import (
    BEFORE_AFTER_COLOURS,
    DEFAULT_SMOOTH,
    MIN_POINTS_TO_SMOOTH,
    RUN_COLOURS,
    SERIES_COLOURS,
    STYLES,
    Plot,
    drawn_series,
    ema,
)
from ppocoder_jax.pipeline.plots.training import (
    training_figure,
)

__all__ = [
    "BEFORE_AFTER_COLOURS",
    "DEFAULT_SMOOTH",
    "FLOORS",
    "LABELS",
    "MIN_POINTS_TO_SMOOTH",
    "NOT_METRICS",
    "NOT_SMOOTHED",
    "PHASES",
    "PHASE_LABELS",
    "PPO_CAPTION",
    "PPO_PANELS",
    "Panel",
    "Plot",
    "RESULT_METRICS",
    "RUN_COLOURS",
    "Run",
    "SERIES_COLOURS",
    "SFT_CAPTION",
    "SFT_PANELS",
    "STYLES",
    "TOTALS",
    "TRAINING_PHASES_SKIPPED",
    "comparison_columns",
    "demo_columns",
    "drawn_series",
    "ema",
    "eval_figure",
    "figures_for",
    "is_constant",
    "load_run",
    "phase_series",
    "plot_eval",
    "plot_run",
    "plot_runs",
    "read_rows",
    "results_figure",
    "save",
    "training_figure",
    "warn",
]
