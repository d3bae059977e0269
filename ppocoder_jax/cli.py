"""`ppocoder` command line: one sub-command per job, each in its own module.

Every command module exposes `add_arguments(parser)` and `run(args) -> int`. Modules are
imported lazily so that `ppocoder check` does not pay for importing JAX.

No command needs PyTorch (JAX computes; transformers only reads tokenizers; a
pytorch_model.bin import says so itself), so transformers' import-time advisory "PyTorch was
not found..." is silenced (TRANSFORMERS_NO_ADVISORY_WARNINGS, unless already set) before any
command imports it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ppocoder_jax.errors import EXIT_USAGE, Preempted, UserError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "import-hf": (
        "ppocoder_jax.model.cli_import",
        "import a Hugging Face model (T5/CodeT5, or decoder-only Llama/Qwen2/Qwen3)",
    ),
    "export-hf": ("ppocoder_jax.model.cli_export", "export our checkpoint to Hugging Face format"),
    "generate": ("ppocoder_jax.rollout.cli_generate", "sample programs from a model"),
    "check": ("ppocoder_jax.rewards.cli_check", "compile / unit-test one program in a sandbox"),
    "sandbox-serve": (
        "ppocoder_jax.rewards.remote.cli_serve",
        "serve this host's sandboxed reward pool over HTTP (reward.backend: remote)",
    ),
    "match": (
        "ppocoder_jax.rewards.cli_match",
        "AST / data-flow match and CodeBLEU of two programs",
    ),
    "pretrain": (
        "ppocoder_jax.pipeline.cli_pretrain",
        "pretrain the embedded starting model on the standard library (cached)",
    ),
    "sft": ("ppocoder_jax.pipeline.cli_sft", "supervised (cross-entropy) fine-tuning"),
    "train": ("ppocoder_jax.pipeline.cli_train", "PPO training with execution feedback"),
    "eval": ("ppocoder_jax.pipeline.cli_eval", "evaluate a model on a task"),
    "plot": ("ppocoder_jax.pipeline.cli_plot", "plot the curves of a run directory"),
    "demo": ("ppocoder_jax.pipeline.cli_demo", "the end-to-end demo: SFT, PPO, eval, plots"),
}

# The commands that take `--config PRESET key=value ...`: their config is loaded and its
# registered names checked (ppo.registry.check_ppo_config) before the command's own work.
CONFIG_COMMANDS = ("pretrain", "sft", "train", "eval", "demo")


def _check_config(args) -> None:
    """UserError for a config that cannot run (loading it stays free of jax; the check of
    ppo.advantage / ppo.loss_agg needs the registry, so it comes after)."""
    from ppocoder_jax.config import load_config

    cfg = load_config(args.config, args.overrides)
    from ppocoder_jax.ppo.registry import check_ppo_config

    check_ppo_config(cfg)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ppocoder", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        # Only import the module of the command actually being run (argv inspected in main).
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    # before transformers is imported: its only advisory is the torch notice (no command
    # needs torch); a value the user set is kept
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser = build_parser()
        if argv and argv[0] not in ("-h", "--help"):
            print(f"ppocoder: error: unknown command {argv[0]!r}", file=sys.stderr)
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        parser.print_help()
        return 0 if argv else EXIT_USAGE
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"ppocoder {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(rest)  # argparse exits with 2 on bad usage
    try:
        if name in CONFIG_COMMANDS:
            _check_config(args)
        return int(module.run(args) or 0)
    except UserError as err:
        # one write: threads still running (Orbax's readers) cannot split the line
        sys.stderr.write(f"ppocoder {name}: error: {err}\n")
        sys.stderr.flush()
        return EXIT_USAGE
    except Preempted as stop:  # SIGTERM: checkpointed, the scheduler asked for the stop
        print(f"ppocoder {name}: {stop}", file=sys.stderr)
        return 0
    except KeyboardInterrupt:
        print(f"ppocoder {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
