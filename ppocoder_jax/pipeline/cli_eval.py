"""`ppocoder eval [--split test] [--sampled] [--samples FILE] [--config PRESET] [key=value ...]`:
metrics as JSON (and every sample as JSON lines with --samples)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ppocoder_jax.config import add_config_arguments, load_config
from ppocoder_jax.errors import UserError


def add_arguments(parser) -> None:
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument(
        "--sampled",
        action="store_true",
        help="sample eval.num_samples outputs (default: eval.greedy)",
    )
    parser.add_argument(
        "--samples",
        metavar="FILE",
        type=Path,
        help="also write every sample as a JSON line: problem id, prompt, output, verdict; with "
        "rollout.turns > 1 every attempt and the feedback it read",
    )
    add_config_arguments(parser)


def run(args) -> int:
    from ppocoder_jax.parallel.mesh import is_main_process, maybe_initialize_distributed
    from ppocoder_jax.pipeline.jobs import eval_job

    cfg = load_config(args.config, args.overrides)
    if args.samples is not None:
        _check_writable(args.samples)
    maybe_initialize_distributed(cfg.mesh)
    samples = [] if args.samples is not None else None
    metrics = eval_job(cfg, args.split, greedy=False if args.sampled else None, samples=samples)
    text = json.dumps(metrics, indent=2)
    print(text)
    out = Path(cfg.train.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"eval_{args.split}.json").write_text(text)
    if samples is not None and is_main_process():
        with open(args.samples, "w") as f:
            for record in samples:
                f.write(json.dumps(record) + "\n")
        print(f"samples: {args.samples} ({len(samples)})", file=sys.stderr)
    _picture(cfg, args, metrics, out)
    return 0


def _check_writable(path: Path) -> None:
    """Before the evaluation, not after it: --samples names a file that can be written."""
    if path.is_dir():
        raise UserError(f"--samples {path}: is a directory (give a file to write)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a"):
            pass
    except OSError as err:
        raise UserError(f"--samples {path}: cannot write ({err.strerror})") from None


def _picture(cfg, args, metrics: dict, out: Path) -> None:
    """RUN_DIR/plots/eval_<split>.png: the metrics as bars. The evaluation is done and saved, so
    a picture that cannot be drawn is a warning, not a failure."""
    from ppocoder_jax.parallel.mesh import is_main_process
    from ppocoder_jax.pipeline.plots import plot_eval

    if not is_main_process():
        return
    greedy = cfg.eval.greedy and not args.sampled
    model = cfg.model.path or "the embedded tiny model"
    title = f"ppocoder eval, {args.split} split: {model} ({cfg.data.task})"
    try:
        path = plot_eval(
            metrics, out / "plots", f"eval_{args.split}", title, "greedy" if greedy else "sampled"
        )
    except Exception as err:  # the numbers above are the result; the picture is extra
        print(
            f"warning: no picture of the evaluation: {type(err).__name__}: {err}", file=sys.stderr
        )
        return
    if path is not None:
        print(f"picture: {path}", file=sys.stderr)
