"""Shared plumbing of the paper-reproduction scripts (scripts/paper/*.py).

Each script runs `ppocoder sft` -> `ppocoder train` -> eval (in one process) with a preset from
configs/paper_*.yaml, skips a stage whose output already exists (so a preempted TPU/GPU job is
simply re-run; `ppocoder train` itself resumes from <run>/checkpoints), and prints our numbers
beside the paper's. `--smoke` shrinks every stage to seconds on a tiny model (tests use it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Shrinks every stage so a tiny model and a handful of examples run end to end in seconds.
# It changes sizes only; the presets' task, reward and PPO settings stay as the paper runs use.
SMOKE_OVERRIDES = [
    "model.compute_dtype=float32",
    "data.num_train=4",
    "data.num_eval=2",
    "data.max_source_length=32",
    "data.max_target_length=16",
    "rollout.max_new_tokens=16",
    "rollout.length_buckets=[16,32]",
    "sft.length_buckets=[16,32]",
    "sft.steps=2",
    "sft.batch_size=2",
    "sft.warmup_steps=0",
    "train.steps=1",
    "train.batch_size=2",
    "train.save_every=1",
    "train.tensorboard=false",
    "ppo.ppo_epochs=1",
    "ppo.num_minibatches=1",
    "ppo.grad_accum_steps=1",
    "ppo.value_warmup_iters=0",
    "eval.batch_size=2",
    "reward.workers=2",
    "mesh.data=-1",
    "mesh.fsdp=1",
    "mesh.tensor=1",
]


def base_parser(description: str, *, needs_data: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    if needs_data:
        p.add_argument("--data", required=True, help="local dataset path (see the preset)")
    p.add_argument(
        "--model",
        required=True,
        help="starting model: a local Hugging Face directory (e.g. a download of "
        "Salesforce/codet5-base) or our checkpoint (ppocoder import-hf / a previous run)",
    )
    p.add_argument("--out", required=True, help="output directory (one run directory per stage)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: a plumbing check in seconds")
    p.add_argument("--force", action="store_true", help="re-run stages whose outputs exist")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the stage commands and validate their configs; run nothing",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides applied to every stage (after --smoke's)",
    )
    return p


def smoke_enabled(args) -> bool:
    return bool(args.smoke or os.environ.get("PPOCODER_PAPER_SMOKE"))


def stage_overrides(args, extra=(), smoke_extra=()) -> list[str]:
    """--smoke's sizes (+ the script's own smoke sizes), the script's settings, the user's."""
    smoke = [*SMOKE_OVERRIDES, *smoke_extra] if smoke_enabled(args) else []
    return [*smoke, *extra, *args.overrides]


DRY_RUN = False


def setup(args) -> None:
    """--dry-run switch; re-exec under PYTHONHASHSEED=0 when unset: CodeBLEU's data-flow match
    (the DFG reward and metric) depends on set iteration order for a few inputs (SPEC)."""
    global DRY_RUN
    DRY_RUN = bool(args.dry_run)
    if not DRY_RUN and "PYTHONHASHSEED" not in os.environ:
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])


def init_distributed(preset: str, overrides: list[str]) -> None:
    """mesh.distributed=true (TPU pod slices, multi-node GPUs): jax.distributed.initialize must
    run before any stage touches a device; `ppocoder train` alone would call it too late here,
    after the in-process SFT stage."""
    from ppocoder_jax.config import load_config
    from ppocoder_jax.errors import UserError

    try:
        cfg = load_config(preset, overrides)
    except UserError as err:
        sys.exit(f"paper script: {err}")
    if DRY_RUN or not cfg.mesh.distributed:
        return
    from ppocoder_jax.parallel.mesh import maybe_initialize_distributed

    maybe_initialize_distributed(cfg.mesh)


def check_config(preset: str, overrides: list[str]) -> None:
    """Resolve a stage's config as the stage would; exit with the one-line error if it fails."""
    from ppocoder_jax.config import load_config
    from ppocoder_jax.errors import UserError

    try:
        load_config(preset, overrides)
    except UserError as err:
        sys.exit(f"paper script: {err}")


def ppocoder(command: str, preset: str, overrides: list[str], *extra_args: str) -> None:
    """Run `ppocoder COMMAND [extra] --config PRESET overrides...` in this process (one JAX
    start-up, compiled programs shared between stages); exit on failure."""
    argv = [command, *extra_args, "--config", preset, *overrides]
    print("\n$ ppocoder " + shlex.join(argv), flush=True)
    if DRY_RUN:
        check_config(preset, overrides)
        return
    from ppocoder_jax.cli import main

    rc = main(argv)
    if rc != 0:
        sys.exit(f"paper script: `ppocoder {command}` failed with exit code {rc}")


def run_passk(args: list[str]) -> None:
    """scripts/paper/passk.py in this process (chunked sampled pass@k, per difficulty)."""
    import passk

    print("\n$ python scripts/paper/passk.py " + shlex.join(args), flush=True)
    if DRY_RUN:
        ns = passk.build_parser().parse_args(args)
        check_config(ns.config, ns.overrides)
        return
    rc = passk.main(args)
    if rc != 0:
        sys.exit(f"paper script: passk.py failed with exit code {rc}")


def pass_k_eval(args, preset: str, model: Path, run_dir: Path, ov: list[str], chunk: int) -> dict:
    """pass@k of `model` on the test split via passk.py (skipped when its JSON exists, unless
    --force); {} on --dry-run."""
    path = run_dir / "eval_test.json"
    if args.force or not path.is_file():
        run_passk(
            [
                "--config",
                preset,
                "--split",
                "test",
                "--sample-chunk",
                str(chunk),
                *(["--fresh"] if args.force else []),
                *ov,
                f"model.path={model}",
                f"train.run_dir={run_dir}",
            ]
        )
    return {} if args.dry_run else json.loads(path.read_text())


def sft_then_ppo(args, preset: str, out: Path, overrides: list[str], *, skip_sft: bool) -> Path:
    """SFT (unless skipped) then PPO; returns the directory of the PPO model."""
    start = str(Path(args.model).resolve())
    sft_run, ppo_run = out / "sft", out / "ppo"
    if not skip_sft:
        if args.force or not (sft_run / "sft_model").exists():
            ppocoder("sft", preset, [*overrides, f"model.path={start}", f"train.run_dir={sft_run}"])
        else:
            print(f"sft: reusing {sft_run / 'sft_model'}")
        start = str(sft_run / "sft_model")
    if args.force or not (ppo_run / "final_model").exists():
        ppocoder("train", preset, [*overrides, f"model.path={start}", f"train.run_dir={ppo_run}"])
    else:
        print(f"train: reusing {ppo_run / 'final_model'}")
    return Path(start)


def evaluate(args, preset: str, model: Path, run_dir: Path, overrides: list[str]) -> dict:
    """`ppocoder eval --split test` of `model`; returns <run_dir>/eval_test.json."""
    path = run_dir / "eval_test.json"
    if args.force or not path.is_file():
        ppocoder(
            "eval",
            preset,
            [*overrides, f"model.path={model}", f"train.run_dir={run_dir}"],
            "--split",
            "test",
        )
    return {} if DRY_RUN else json.loads(path.read_text())


def pct(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{100 * value:.2f}"


def print_table(title: str, header: list[str], rows: list[list[str]], notes: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [title, fmt.format(*header), fmt.format(*["-" * w for w in widths])]
    lines += [fmt.format(*[str(c) for c in r]) for r in rows]
    lines += [f"  {n}" for n in notes]
    text = "\n".join(lines)
    print("\n" + text)
    return text
