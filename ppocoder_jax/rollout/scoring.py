"""A batch's reward futures, timed, and the reward pool's throughput over batches."""

from __future__ import annotations

import threading
import time


class Scoring:
    """One batch's reward futures, timed: when they were handed over and when the last one came
    back, each with the reward pool's busy seconds at that moment."""

    def __init__(self, futures: list, busy_seconds):
        self.futures = futures
        self._busy_seconds = busy_seconds
        self.submitted = (time.perf_counter(), busy_seconds())
        self.done: tuple[float, float] | None = None
        self._all_done = threading.Event()
        self._left = len(futures)
        self._lock = threading.Lock()
        if not futures:
            self._finish()
        for future in futures:
            future.add_done_callback(self._one_done)

    def _one_done(self, _future) -> None:
        with self._lock:
            self._left -= 1
            if self._left:
                return
        self._finish()

    def _finish(self) -> None:
        self.done = (time.perf_counter(), self._busy_seconds())
        self._all_done.set()

    def results(self) -> list:
        parts = [f.result() for f in self.futures]
        self._all_done.wait()  # the done callbacks run just after result() returns
        return parts


class ThroughputMeter:
    """Programs scored per second and the pool's busy fraction over each batch's scoring
    window: from its hand-over, or from when the batch before it was done if that was later
    (the pool works through batches in order), to its last result."""

    def __init__(self, workers: int):
        self.workers = workers
        self._last: Scoring | None = None

    def measure(self, scoring: Scoring) -> tuple[float, float]:
        start = scoring.submitted
        before = self._last
        if before is not None and before.done is not None and before.done[0] > start[0]:
            start = before.done
        self._last = scoring
        window = max(scoring.done[0] - start[0], 1e-3)
        busy = (scoring.done[1] - start[1]) / (self.workers * window)
        return len(scoring.futures) / window, busy
