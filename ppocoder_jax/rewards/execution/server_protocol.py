"""What every persistent sandboxed server shares with the trainer: the pipe it answers on,
how a server failure and a missed deadline are told apart from a program's verdict, and the
stop-and-restart on the next request.

The three server families (check_server.py: the compile checkers; python_server.py: the
Python test zygotes; java_server.py: the javac server) speak line-framed answers on the
server's stdout: a header line, then, where the header says so, that many bytes. A server
that exits, answers garbage or misses its deadline is stopped; the next request starts a fresh
one (`ensure_started`). Which job pays for a failed server is the caller's choice (the
per-job path, or an INFRA_ERROR), never a program's verdict.
"""

from __future__ import annotations

import os
import select
import subprocess
import time


class ServerFailed(RuntimeError):
    """The server (not the program) failed; it is stopped and restarts on the next request."""


class ServerTimeout(ServerFailed):
    """The server did not answer before the request's deadline."""


class PipeServer:
    """One server process read through its stdout pipe. A subclass sets `label` (how errors
    name it) and `_start()` (which sets `proc` and resets `_buf`)."""

    label = "server"

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.served = 0  # requests answered, over all starts (0: it never worked here)
        self._buf = bytearray()  # appended in place: answers can be tens of MiB

    def _start(self) -> None:
        raise NotImplementedError

    def ensure_started(self) -> None:
        """A fresh process when there is none or the last one exited."""
        if self.proc is None or self.proc.poll() is not None:
            self.close()
            self._start()

    def _read(self, deadline: float, size: int | None = None) -> bytes:
        """The next line (size None, without its newline) or the next `size` bytes."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while (b"\n" not in self._buf) if size is None else (len(self._buf) < size):
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServerTimeout(f"{self.label} did not answer in time")
            if not select.select([fd], [], [], left)[0]:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise ServerFailed(f"{self.label} exited (status {self.proc.wait()})")
            self._buf += chunk
        end = self._buf.index(b"\n") if size is None else size
        data = bytes(self._buf[:end])
        del self._buf[: end + (size is None)]
        return data

    def _kill(self) -> None:
        """Stop the process and everything it started (bwrap: its PID namespace goes with it)."""
        assert self.proc is not None
        self.proc.kill()

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            self._kill()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.SubprocessError):
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self.proc = None
