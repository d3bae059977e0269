"""`ppocoder eval [--split test] [--config PRESET] [key=value ...]`: metrics as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from ppocoder_jax.config import add_config_arguments, load_config


def add_arguments(parser) -> None:
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument(
        "--sampled",
        action="store_true",
        help="sample eval.num_samples outputs (default: eval.greedy)",
    )
    add_config_arguments(parser)


def run(args) -> int:
    from ppocoder_jax.parallel.mesh import maybe_initialize_distributed
    from ppocoder_jax.pipeline.jobs import eval_job

    cfg = load_config(args.config, args.overrides)
    maybe_initialize_distributed(cfg.mesh)
    metrics = eval_job(cfg, args.split, greedy=False if args.sampled else None)
    text = json.dumps(metrics, indent=2)
    print(text)
    out = Path(cfg.train.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"eval_{args.split}.json").write_text(text)
    return 0
