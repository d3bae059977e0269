"""`ppocoder demo [--config demo] [key=value ...]`: the end-to-end embedded demo.

SFT-warm-starts a small CodeT5-architecture model on a noisy synthesis corpus, evaluates held-out
pass@1 (greedy and sampled), runs PPO with unit-test rewards and the KL penalty, evaluates again,
prints the table and writes the curves as PNG.
"""

from __future__ import annotations

from ppocoder_jax.config import add_config_arguments, load_config


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.set_defaults(config="demo")


def run(args) -> int:
    from ppocoder_jax.pipeline.jobs import demo_job

    cfg = load_config(args.config, args.overrides)
    demo_job(cfg)
    return 0
