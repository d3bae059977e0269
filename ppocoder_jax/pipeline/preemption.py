"""SIGTERM -> checkpoint at the next safe point, then a clean exit (TPU VMs and SLURM send
SIGTERM some time before they kill a job).

`PreemptionGuard` is a context manager: inside it, the first SIGTERM only sets `requested`; the
training loop polls it after each iteration's update, writes a checkpoint, waits for it to land
and stops (`ppocoder train` then exits 0; re-running the same command resumes). The first
SIGTERM also puts the previous handler back, so a second SIGTERM (or a SIGINT at any time)
does what it did before: the default SIGTERM ends the process at once, SIGINT raises
KeyboardInterrupt. Signal handlers can only be set from the main thread; elsewhere the guard
does nothing (and `requested` stays False).
"""

from __future__ import annotations

import signal
import sys
import threading


class PreemptionGuard:
    def __init__(self, signum: int = signal.SIGTERM):
        self.signum = signum
        self.requested = False
        self._previous = None
        self._installed = False

    def __enter__(self) -> PreemptionGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(self.signum, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc) -> None:
        if self._installed and signal.getsignal(self.signum) == self._handle:
            signal.signal(self.signum, self._restorable(self._previous))
        self._installed = False

    def __call__(self) -> bool:
        return self.requested

    @staticmethod
    def _restorable(handler):
        return signal.SIG_DFL if handler is None else handler

    def _handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(self.signum, self._restorable(self._previous))  # the next one: as before
        name = signal.Signals(signum).name
        print(
            f"{name}: stopping after the current iteration (checkpoint, then exit 0); send "
            f"{name} again to stop at once",
            file=sys.stderr,
            flush=True,
        )
