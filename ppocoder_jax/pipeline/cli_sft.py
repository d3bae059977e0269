"""`ppocoder sft [--config PRESET] [key=value ...]`: supervised warm start."""

from __future__ import annotations

from ppocoder_jax.config import add_config_arguments, load_config


def add_arguments(parser) -> None:
    add_config_arguments(parser)


def run(args) -> int:
    from ppocoder_jax.parallel.mesh import maybe_initialize_distributed
    from ppocoder_jax.pipeline.jobs import sft_job

    cfg = load_config(args.config, args.overrides)
    maybe_initialize_distributed(cfg.mesh)
    sft_job(cfg)
    return 0
