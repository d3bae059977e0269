"""Reading a run directory: ``metrics.jsonl`` rows (unreadable lines skipped with one
warning), ``results.json`` and ``eval_<split>.json`` into a ``Run``, and one phase's rows
as numeric series (``phase_series``).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ppocoder_jax.pipeline.run_dir import from_builtin

NOT_METRICS = {"phase", "step", "time"}


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


@dataclass
class Run:
    path: Path
    label: str
    rows: list[dict] = field(default_factory=list)
    results: dict | None = None
    evals: dict[str, dict] = field(default_factory=dict)  # "eval_test" -> metrics


def read_rows(path: Path) -> list[dict]:
    """The readable rows of a metrics.jsonl; one warning line for whatever was skipped."""
    rows, bad = [], []
    lines = path.read_text(errors="replace").splitlines()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad.append(lineno)
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), (int, float)):
            rows.append(from_builtin(row))
        else:
            bad.append(lineno)
    if bad:
        last = " (the last: a run killed mid-write?)" if bad[-1] == len(lines) else ""
        warn(f"{path}: skipped {len(bad)} unreadable line(s): {_spans(bad)}{last}")
    return rows


def _spans(numbers: list[int]) -> str:
    text = ", ".join(str(n) for n in numbers[:5])
    return text + (f" and {len(numbers) - 5} more" if len(numbers) > 5 else "")


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        warn(f"{path}: unreadable ({type(err).__name__}), not plotted")
        return None
    return data if isinstance(data, dict) else None


def load_run(run_dir: str | os.PathLike, label: str | None = None) -> Run:
    path = Path(run_dir)
    run = Run(path, label or path.resolve().name)
    if not path.is_dir():
        warn(f"{path} is not a directory")
        return run
    metrics = path / "metrics.jsonl"
    if metrics.is_file():
        run.rows = read_rows(metrics)
        if not run.rows and not metrics.read_text(errors="replace").strip():
            warn(f"{metrics} holds no metrics yet: no curves")
    else:
        warn(f"{metrics} not found: no curves")
    if (path / "results.json").is_file():
        run.results = _read_json(path / "results.json")
    for eval_path in sorted(path.glob("eval_*.json")):
        data = _read_json(eval_path)
        if data:
            run.evals[eval_path.stem] = data
    return run


def phase_series(rows: list[dict], phase: str) -> dict[str, tuple[list[float], list[float]]]:
    """key -> (steps, values) of one phase, numeric values only (None -> nan); a step logged
    twice (a resumed run re-doing the iterations after its last checkpoint) keeps its last row."""
    by_step: dict[float, dict] = {}
    for row in rows:
        if row.get("phase", "train") == phase:
            by_step[row["step"]] = row
    series: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for step in sorted(by_step):
        for key, value in by_step[step].items():
            if key in NOT_METRICS or isinstance(value, bool):
                continue
            if value is None:
                value = math.nan
            if isinstance(value, (int, float)):
                series[key][0].append(step)
                series[key][1].append(float(value))
    if {"time_sample_s", "time_rewards_s", "time_update_s"} <= series.keys():
        parts = [
            dict(zip(*series[k])) for k in ("time_sample_s", "time_rewards_s", "time_update_s")
        ]
        steps = [s for s in series["time_sample_s"][0] if all(s in p for p in parts)]
        series["time_total_s"] = (steps, [sum(p[s] for p in parts) for s in steps])
    return dict(series)


def is_constant(values: list[float]) -> bool:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return len(values) >= 2  # all nan over a run: nothing to draw either
    lo, hi = min(finite), max(finite)
    return hi - lo <= 1e-9 * max(1.0, abs(lo), abs(hi))
