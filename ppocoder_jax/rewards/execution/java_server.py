"""A persistent javac: one warm JVM compiles many sources, so Java does not pay a JVM start each.

The server (a few lines of Java using javax.tools.JavaCompiler) runs inside the same sandbox as
any job: its only writable directory is a jobs root; each request names a sub-directory and a
file, and javac writes the classes next to the source. Annotation processing is off
(-proc:none), so compiling runs no code from the program. A request that exceeds its time
limit kills the server (a fresh one starts on the next request).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from ppocoder_jax.rewards.execution import pch, programs, sandbox
from ppocoder_jax.rewards.execution.server_protocol import (
    PipeServer,
    ServerFailed,
)

SERVER_CLASS = "PpocoderJavacServer"
SERVER_SOURCE = programs.source(f"{SERVER_CLASS}.java")


class JavacServer(PipeServer):
    """One sandboxed JVM running javac for jobs placed under `jobs_root`. Not thread-safe.
    A compile past its time limit raises ServerTimeout (the caller's COMPILE_ERROR); any other
    failure ServerFailed (the caller compiles the per-job way)."""

    label = "javac server"

    def __init__(self, class_dir: Path, jobs_root: Path, iodir: Path):
        super().__init__()
        self.class_dir, self.jobs_root, self.iodir = class_dir, jobs_root, iodir
        self.uid: int | None = None
        self.compiles = 0

    def _seen(self, path: Path) -> str:
        """A host path under jobs_root as the server sees it."""
        info = sandbox.sandbox_info()
        if info.mode != "bwrap":
            return str(path)
        return sandbox.SANDBOX_CWD + "/" + str(path.relative_to(self.jobs_root))

    def _start(self, wait_s: float = 30.0) -> None:
        info = sandbox.sandbox_info()
        limits = sandbox.Limits(wall_s=10**6, memory_mb=3072, nproc=128, output_bytes=256 << 20)
        inner = [
            "java",
            "-Xshare:auto",
            "-XX:-UsePerfData",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Xmx768m",
        ]
        inner += ["-cp", str(self.class_dir), SERVER_CLASS]
        if info.drop_uid:
            self.uid = sandbox.random_uid()
        prefix = sandbox._limit_prefix(limits)
        if info.drop_uid:
            prefix = sandbox._drop_uid_prefix(self.uid) + prefix
        env = {
            "PATH": sandbox._PATH,
            "HOME": sandbox.program_cwd(self.jobs_root),
            "LANG": "C.UTF-8",
        }
        kw: dict = {}
        if info.mode == "bwrap":
            binds = [*info.ro_binds, str(self.class_dir)]
            cmd = sandbox._bwrap_base(str(self.jobs_root), binds, info.drop_uid, None)
            cmd += prefix + inner
        else:
            cmd = prefix + inner
            kw["start_new_session"] = True
        self._stderr = open(self.iodir / "javac-server.stderr", "wb")
        self._buf = bytearray()
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=str(self.jobs_root),
            env=env,
            **kw,
        )
        line = self._readline(time.monotonic() + wait_s)
        if line != "READY":
            self.close()
            raise ServerFailed(f"javac server failed to start: {line!r}")

    def _readline(self, deadline: float) -> str:
        return self._read(deadline).decode("utf-8", errors="replace").strip()

    def compile(self, job_dir: Path, file_name: str, timeout_s: float) -> tuple[bool, str]:
        """(compiled?, diagnostics). Raises ServerTimeout or ServerFailed (server stopped)."""
        if self.proc is None or self.proc.poll() is not None:
            self._start(wait_s=max(30.0, timeout_s))
        if self.uid is not None:
            for path in (job_dir, job_dir / file_name):
                os.chown(path, self.uid, self.uid)
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(f"{self._seen(job_dir)}\t{file_name}\n".encode())
            self.proc.stdin.flush()
            line = self._readline(time.monotonic() + timeout_s)
        except (ServerFailed, OSError):
            self.close()
            raise
        self.compiles += 1
        status, _, payload = line.partition(" ")
        if status not in ("OK", "FAIL"):
            self.close()
            raise ServerFailed(f"javac server protocol error: {line[:200]!r}")
        return status == "OK", base64.b64decode(payload).decode("utf-8", errors="replace")

    def close(self) -> None:
        if self.proc is not None:
            super().close()
            self._stderr.close()


class JavacServerPool:
    """A few servers shared by the worker threads (each request holds one server)."""

    def __init__(self, root: Path, size: int):
        self.root = root
        self.size = size
        self._free: list[JavacServer] = []
        self._made = 0
        self._cond = threading.Condition()
        self._class_dir: Path | None = None
        self._build_lock = threading.Lock()
        self.broken = ""

    def _build(self) -> Path:
        """Compile the server class once per machine (trusted code) into a shared cache."""
        with self._build_lock:
            if self._class_dir is None:
                self._class_dir = _cached_server_classes()
            return self._class_dir

    def acquire(self) -> JavacServer:
        class_dir = self._build()
        with self._cond:
            while not self._free and self._made >= self.size:
                self._cond.wait()
            if self._free:
                return self._free.pop()
            self._made += 1
            n = self._made
        iodir = self.root / f"javac-io-{n}"
        iodir.mkdir(parents=True, exist_ok=True)
        # All servers see the executor's root (job directories live there); each request's
        # directory is handed to the server's uid before compiling.
        return JavacServer(class_dir, self.root, iodir)

    def release(self, server: JavacServer) -> None:
        with self._cond:
            self._free.append(server)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            servers, self._free = self._free, []
        for server in servers:
            server.close()


def _cached_server_classes() -> Path:
    javac = os.path.realpath(shutil.which("javac") or "javac")
    stamp = f"{SERVER_SOURCE}|{javac}|{os.stat(javac).st_mtime_ns}".encode()
    class_dir = pch.cache_root().parent / "javac-server" / hashlib.sha256(stamp).hexdigest()[:16]
    if (class_dir / f"{SERVER_CLASS}.class").exists():
        return class_dir
    class_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=class_dir.parent))
    try:
        (tmp / f"{SERVER_CLASS}.java").write_text(SERVER_SOURCE)
        proc = subprocess.run(
            ["javac", "-d", str(tmp), str(tmp / f"{SERVER_CLASS}.java")],
            capture_output=True,
            timeout=120,
            env={"PATH": sandbox._PATH},
        )
        if proc.returncode != 0:
            raise RuntimeError("cannot build the javac server: " + proc.stderr.decode()[:300])
        for d in (class_dir.parent.parent, class_dir.parent, tmp):
            if os.geteuid() == 0:  # readable by the sandbox uids; only root writes
                os.chmod(d, 0o755)
        try:
            os.rename(tmp, class_dir)  # atomic; a concurrent builder may have won
        except OSError:
            if not (class_dir / f"{SERVER_CLASS}.class").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return class_dir
