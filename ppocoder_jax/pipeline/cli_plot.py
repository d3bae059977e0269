"""`ppocoder plot RUN_DIR`: write PNG curves of a run's metrics."""

from __future__ import annotations

from ppocoder_jax.errors import UserError


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", help="a run directory holding metrics.jsonl")
    parser.add_argument("--out", default=None, help="output folder (default RUN_DIR/plots)")


def run(args) -> int:
    from ppocoder_jax.pipeline.plot import plot_run

    paths = plot_run(args.run_dir, args.out)
    if not paths:
        raise UserError(f"{args.run_dir}/metrics.jsonl holds no numeric metrics to plot")
    for path in paths:
        print(path)
    return 0
