"""Fault injection for the kill-and-resume tests (tests/test_trainer_resume.py).

`PPOCODER_KILL_AT="phase@step[+seconds]"` (comma-separated for several) makes the trainer
SIGKILL itself when it reaches `phase` of PPO iteration `step` (1-based, the step its metrics
row will carry), at once or `seconds` later from a timer thread (so the kill lands in the
middle of whatever runs then). Phases, in order: `sample` (sampling dispatched), `rewards`
(reward jobs submitted), `update` (before the PPO update), `saved` (a checkpoint save started;
its files are being written in the background). Unset, `point()` costs one dict lookup.
"""

from __future__ import annotations

import os
import signal
import threading

PHASES = ("sample", "rewards", "update", "saved")


def _parse(text: str) -> dict[tuple[str, int], float]:
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        where, _, delay = item.partition("+")
        phase, _, step = where.partition("@")
        if phase not in PHASES or not step.isdigit():
            raise ValueError(f"PPOCODER_KILL_AT: bad entry {item!r} (phase@step[+seconds])")
        out[(phase, int(step))] = float(delay or 0.0)
    return out


_KILL_AT = _parse(os.environ.get("PPOCODER_KILL_AT", ""))


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def point(phase: str, step: int) -> None:
    delay = _KILL_AT.get((phase, step))
    if delay is None:
        return
    if delay <= 0:
        _kill()
    timer = threading.Timer(delay, _kill)
    timer.daemon = True
    timer.start()
