"""Reward servers for tests: `ppocoder sandbox-serve` as a real subprocess (so that it can be
killed and restarted like a remote machine), and in-process aiohttp stand-ins (a hung server,
one that answers garbage, a SandboxFusion stub) on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]


class ServeProcess:
    """`ppocoder sandbox-serve` in a subprocess of its own session."""

    def __init__(self, *args: str, port: int = 0, env: dict | None = None):
        self.args, self.port, self.env = args, port, env or {}
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self, wait_s: float = 90.0) -> ServeProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT), **self.env}
        cmd = [sys.executable, "-m", "ppocoder_jax.cli", "sandbox-serve", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*cmd, *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + wait_s
        seen = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            match = re.search(r"listening on (http://\S+:(\d+))", line)
            if match:
                self.url, self.port = match.group(1), int(match.group(2))
                # keep draining its output so that it never blocks on a full pipe
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()
                return self
        self.kill()
        raise RuntimeError("sandbox-serve did not start: " + "".join(seen)[-2000:])

    def kill(self) -> None:
        """SIGKILL to its whole session (the machine is gone, mid-request or not)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class StubServer:
    """An aiohttp app on a loopback port, served from a thread of its own."""

    def __init__(self, routes: list[tuple[str, str, object]]):
        self.routes = routes
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _start(self) -> str:
        app = web.Application(client_max_size=64 << 20)
        for method, path, handler in self.routes:
            app.router.add_route(method, path, handler)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> StubServer:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # handlers still hanging (a hung server's) end with the server
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
