"""A run directory: resolved config, metrics (JSONL + TensorBoard, W&B on request), checkpoints.

Layout:
    <run_dir>/config.yaml       the resolved config of the run
    <run_dir>/metrics.jsonl     one JSON object per logged step: {"phase", "step", ...metrics}
    <run_dir>/tensorboard/      TensorBoard event files
    <run_dir>/checkpoints/      Orbax checkpoints (see ppocoder_jax/checkpoint)
    <run_dir>/plots/            PNG curves (ppocoder plot)
    <run_dir>/reward_errors/    one JSON file per sample whose reward raised (masked, not fatal)
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from ppocoder_jax.config import Config, save_config, to_dict


def _is_main_process() -> bool:
    try:
        import jax

        return jax.process_index() == 0
    except Exception:  # pragma: no cover - jax always importable in the product
        return True


class MetricsLogger:
    """Appends metrics to metrics.jsonl (+ TensorBoard / W&B); only process 0 writes."""

    def __init__(self, run_dir: str | os.PathLike, cfg: Config | None = None):
        self.run_dir = Path(run_dir)
        self.active = _is_main_process()
        self._tb = None
        self._wandb = None
        if not self.active:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.run_dir / "metrics.jsonl", "a", buffering=1)  # noqa: SIM115
        if cfg is not None and cfg.train.tensorboard:
            try:
                from tensorboardX import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
            except ImportError:
                print("tensorboardX not installed: TensorBoard logging off", file=sys.stderr)
        if cfg is not None and cfg.train.wandb:
            try:
                import wandb
            except ImportError as err:
                from ppocoder_jax.errors import UserError

                raise UserError(
                    "train.wandb=true but wandb is not installed (pip install wandb)"
                ) from err
            self._wandb = wandb.init(
                project="ppocoder-jax", dir=str(self.run_dir), config=to_dict(cfg)
            )

    def log(self, phase: str, step: int, metrics: dict[str, Any]) -> None:
        if not self.active:
            return
        clean = {k: _to_builtin(v) for k, v in metrics.items()}
        self._jsonl.write(json.dumps({"phase": phase, "step": int(step), **clean}) + "\n")
        for key, value in clean.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                if self._tb is not None:
                    self._tb.add_scalar(f"{phase}/{key}", value, step)
        if self._wandb is not None:
            self._wandb.log({f"{phase}/{k}": v for k, v in clean.items()}, step=step)

    def rewind(self, phase: str, step: int) -> int:
        """Drop the `phase` rows after `step` (and any unreadable line) from metrics.jsonl.

        A resumed run calls this with the iteration it resumed from: rows logged after the last
        checkpoint by a killed run are logged again by the re-run, so metrics.jsonl keeps one
        row per iteration (a partial last line of a killed write would otherwise swallow the
        next row). Returns the number of lines dropped. TensorBoard / W&B are not rewound.
        """
        if not self.active:
            return 0
        path = self.run_dir / "metrics.jsonl"
        self._jsonl.flush()
        kept, dropped = [], 0
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            late = (
                isinstance(row, dict)
                and row.get("phase") == phase
                and (row.get("step") or 0) > step
            )
            if not isinstance(row, dict) or late:
                dropped += bool(line.strip())
                continue
            kept.append(line + "\n")
        if dropped:
            self._jsonl.close()
            tmp = path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(kept))
            os.replace(tmp, path)
            self._jsonl = open(path, "a", buffering=1)  # noqa: SIM115
        return dropped

    def close(self) -> None:
        if not self.active:
            return
        self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


# How metrics.jsonl spells a non-finite number: visible (never null, which hid a NaN update)
# and valid JSON; readers (`read_metrics`, the plots) turn them back into floats.
NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _to_builtin(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "size", 2) == 1:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def from_builtin(row: dict) -> dict:
    """A metrics.jsonl row with its non-finite numbers as floats again."""
    return {k: NONFINITE[v] if isinstance(v, str) and v in NONFINITE else v for k, v in row.items()}


def prepare_run_dir(cfg: Config) -> Path:
    run_dir = Path(cfg.train.run_dir)
    if _is_main_process():
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    return run_dir


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        from ppocoder_jax.errors import UserError

        raise UserError(f"{path} not found: is {run_dir} a run directory?")
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(from_builtin(json.loads(line)))
        except json.JSONDecodeError:
            # A run killed mid-write leaves a partial last line; anything else is corruption.
            print(f"warning: {path}:{lineno}: skipping unreadable line", file=sys.stderr)
    return rows
