"""Up to `size` persistent servers of one kind shared by the executor's worker threads: each
job holds one server while it runs. Used by the Python test servers (python_server.py) and the
compile checkers (check_server.py).

A server that cannot start on its first use means servers cannot be built here at all: the
pool says so in `broken` and the executor falls back to one process per job. A server that
fails after it has answered is stopped and restarts on the next request (server_protocol.py).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from ppocoder_jax.rewards.execution.server_protocol import PipeServer, ServerFailed

log = logging.getLogger(__name__)

S = TypeVar("S", bound=PipeServer)


class ServerPool(Generic[S]):
    def __init__(self, name: str, make: Callable[[int], S], size: int):
        """`make(i)` builds the i-th server (not started)."""
        self.name, self.make, self.size = name, make, max(1, size)
        self._free: list[S] = []
        self._all: list[S] = []
        self._cond = threading.Condition()
        self._closed = False
        self.broken = ""  # set when a server cannot start at all: the executor falls back

    def _new(self) -> S:
        server = self.make(len(self._all))
        self._all.append(server)
        return server

    def acquire(self) -> S:
        with self._cond:
            while not self._free and len(self._all) >= self.size and not self._closed:
                self._cond.wait()
            if self._closed:
                raise ServerFailed(f"{self.name} pool is closed")
            return self._free.pop() if self._free else self._new()

    def release(self, server: S) -> None:
        with self._cond:
            self._free.append(server)
            self._cond.notify()

    @contextlib.contextmanager
    def started(self, fallback: str) -> Iterator[S | None]:
        """A started server held for one job, or None: do the job the per-job way (the pool is
        closing, or the server would not start; `broken` says so when it never has)."""
        try:
            server = self.acquire()
        except ServerFailed:  # the executor is closing
            yield None
            return
        try:
            try:
                server.ensure_started()
            except ServerFailed as err:
                self._note_failed_start(server, err, fallback)
                yield None  # the server goes back all the same: the next job retries it
            else:
                yield server
        finally:
            self.release(server)

    def _note_failed_start(self, server: S, err: ServerFailed, fallback: str) -> None:
        if server.served == 0:  # never worked here: the servers cannot be built
            self.broken = self.broken or str(err)
        elif fallback:
            log.warning("%s; %s", err, fallback)

    def warm_up(self, threads: ThreadPoolExecutor) -> None:
        """Start every server now, e.g. before timing. On `threads`, the executor's workers:
        bwrap --die-with-parent kills a server when the THREAD that started it exits. The
        servers stay free meanwhile (jobs may take them: each server has its own lock), so a
        warm-up beside running jobs cannot deadlock the pool."""
        with self._cond:
            while len(self._all) < self.size:
                self._free.append(self._new())
            servers = list(self._all)
            self._cond.notify_all()
        for future in [threads.submit(self._start_quietly, s) for s in servers]:
            future.result()

    def _start_quietly(self, server: S) -> None:
        try:
            server.ensure_started()
        except ServerFailed as err:
            self._note_failed_start(server, err, "")

    def close(self) -> None:
        with self._cond:
            self._closed = True
            servers = list(self._all)
            self._cond.notify_all()
        for server in servers:
            server.close()
