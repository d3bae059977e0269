"""PNG curves of a run: reward parts, compile/pass rate, KL and losses, per phase."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from ppocoder_jax.pipeline.run_dir import read_metrics

# Panel title -> metric-name substrings it shows (first match wins).
PANELS: list[tuple[str, tuple[str, ...]]] = [
    ("time per iteration (s) / device wait fraction", ("time_", "wait_frac")),
    ("reward parts", ("score", "reward")),
    ("compile / pass rate", ("compile_rate", "pass_rate", "pass@")),
    ("KL", ("kl",)),
    ("losses", ("loss",)),
    ("other", ("",)),
]
SKIPPED = {"step", "phase", "time", "elapsed_s"}


def _panel_of(name: str) -> str:
    for title, needles in PANELS:
        if any(n in name for n in needles):
            return title
    return "other"


def plot_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir)
    out_dir = Path(out) if out else Path(run_dir) / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    by_phase: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_phase[row.get("phase", "train")].append(row)
    written = []
    for phase, phase_rows in sorted(by_phase.items()):
        series: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
        for row in phase_rows:
            for key, value in row.items():
                if key in SKIPPED or not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                series[key][0].append(row["step"])
                series[key][1].append(value)
        if not series:
            continue
        panels: dict[str, list[str]] = defaultdict(list)
        for key in sorted(series):
            panels[_panel_of(key)].append(key)
        titles = [t for t, _ in PANELS if t in panels]
        fig, axes = plt.subplots(len(titles), 1, figsize=(9, 3 * len(titles)), squeeze=False)
        for ax, title in zip(axes[:, 0], titles):
            for key in panels[title][:12]:
                xs, ys = series[key]
                ax.plot(xs, ys, marker="." if len(xs) < 30 else None, label=key)
            ax.set_title(f"{phase}: {title}")
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        path = out_dir / f"{phase}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
