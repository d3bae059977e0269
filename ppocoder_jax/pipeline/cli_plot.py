"""`ppocoder plot RUN_DIR [RUN_DIR ...] [--out DIR] [--labels a,b] [--smooth 0.9]`: PNG pictures
of a run (training curves, held-out results as bars), or several runs' curves overlaid."""

from __future__ import annotations

from ppocoder_jax.errors import UserError


def add_arguments(parser) -> None:
    parser.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR", help="run directories holding metrics.jsonl"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output folder (default RUN_DIR/plots; required for several runs)",
    )
    parser.add_argument(
        "--labels",
        default=None,
        help="comma-separated legend names, one per RUN_DIR (default: the directories' names)",
    )
    parser.add_argument(
        "--smooth",
        type=float,
        default=None,
        help="EMA smoothing factor in [0, 1) for noisy curves (default 0.9; 0 = raw only)",
    )


def run(args) -> int:
    from ppocoder_jax.pipeline.plots import DEFAULT_SMOOTH, plot_runs

    smooth = DEFAULT_SMOOTH if args.smooth is None else args.smooth
    if not 0.0 <= smooth < 1.0:
        raise UserError(f"--smooth {smooth}: the smoothing factor must be in [0, 1)")
    labels = None
    if args.labels is not None:
        labels = [label.strip() for label in args.labels.split(",")]
        if len(labels) != len(args.run_dirs) or not all(labels):
            raise UserError(
                f"--labels {args.labels!r}: give {len(args.run_dirs)} non-empty comma-separated "
                "names, one per RUN_DIR"
            )
    if len(args.run_dirs) > 1 and args.out is None:
        raise UserError("several RUN_DIRs: say where the overlaid pictures go with --out DIR")
    paths = plot_runs(args.run_dirs, args.out, labels=labels, smooth=smooth)
    if not paths:
        raise UserError(
            f"nothing to plot in {', '.join(args.run_dirs)}: no readable metrics.jsonl, "
            "results.json or eval_*.json"
        )
    for path in paths:
        print(path)
    return 0
