"""Persistent sandboxed Python test servers: a Python unit-test job without a new interpreter.

A sandboxed test job used to start bwrap, setpriv, prlimit, bash and a fresh interpreter that
then imported and compiled the runner, about 30 ms a job before the tests did anything (README:
"Where a Python test job's time goes"). Here each pool worker has one server, started once with
Popen (the trainer never forks) inside the same bubblewrap sandbox as any job, keeping the
capabilities it needs to build a sandbox per job (CAP_SYS_ADMIN: namespaces and mounts;
CAP_SETUID/CAP_SETGID/CAP_SETPCAP: the uid switch and dropping capabilities; CAP_NET_ADMIN:
loopback up). The server is single-threaded, so it may fork: per job it clones a fresh set of
namespaces and runs the preloaded runner in a confined child (see zygote.py for the steps and
why the job cannot reach the server or another job). The trainer-side contract is the one of
`sandbox.run_sandboxed`: a RunOutcome built by the same code from the job's stdout and stderr
(memfds in the server, capped by the same RLIMIT_FSIZE as the files), the same limits, the
same 128+signal exit statuses, `started=False` (INFRA_ERROR, never scored) when the server or
the per-job sandbox failed. No job directory exists on the host.

Only when running as root with a usable bubblewrap (the per-job uid needs root, as setpriv
does today); otherwise the executor keeps the per-job interpreter and says so once.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from pathlib import Path

from ppocoder_jax.rewards.execution import harness, sandbox, zygote
from ppocoder_jax.rewards.execution.server_pool import ServerPool
from ppocoder_jax.rewards.execution.server_protocol import PipeServer, ServerFailed

log = logging.getLogger(__name__)

ZYGOTE_SOURCE = Path(zygote.__file__).read_text(encoding="utf-8")
START_TIMEOUT_S = 30.0
# Beyond the job's own wall-time limit (which the server enforces), how long we wait for its
# answer before declaring the server broken: killing a job that holds gigabytes takes a while.
ANSWER_SLACK_S = 30.0
# bwrap drops every capability but these (as root; CAP_SETUID/SETGID/SETPCAP come with
# sandbox._bwrap_base's uid switch).
_CAPS = ("CAP_SYS_ADMIN", "CAP_NET_ADMIN")
# Each job's /sandbox is a tmpfs of this size (RAM, gone with the job; a per-job directory on
# disk was only bounded by the disk). Programs under test write little or nothing there.
JOB_DISK_BYTES = 256 << 20
JOB_INODES = 16384


def unavailable_reason(info: sandbox.SandboxInfo) -> str:
    """'' when servers can be built here, else why the per-job interpreter stays."""
    if info.mode != "bwrap":
        return f"no usable bubblewrap ({info.reason})"
    if not info.drop_uid:
        return "not running as root (each job needs its own uid)"
    if zygote.SYS_CLONE < 0:
        return f"unsupported architecture {os.uname().machine}"
    # bwrap would mount the server's directory at /tmp, not a link to the job's /sandbox.
    return sandbox.server_home_reason(info)


class PythonServer(PipeServer):
    """One zygote, one job at a time. Start it from a long-lived thread (an executor worker):
    bwrap --die-with-parent kills the server when the THREAD that started it exits. A failed
    server (ServerFailed) makes its job an INFRA_ERROR, never a verdict of the program."""

    label = "python server"

    def __init__(self, root: Path, python_argv: list[str], name: str):
        super().__init__()
        self.root, self.python_argv, self.name = root, python_argv, name
        self.starts = 0
        self._lock = threading.RLock()  # a job's thread and a warm-up may meet here

    def _start(self) -> None:
        info = sandbox.sandbox_info()
        # An empty directory at /sandbox: each job mounts its own tmpfs over it.
        home = self.root / self.name
        home.mkdir(mode=0o755, exist_ok=True)
        cmd = sandbox._bwrap_base(str(home), info.ro_binds, True, None)
        for cap in _CAPS:
            cmd += ["--cap-add", cap]
        cmd += [*self.python_argv, "-c", ZYGOTE_SOURCE, harness.RUNNER_BODY]
        env = {"PATH": sandbox._PATH, "LANG": "C.UTF-8"}
        with open(self.root / f"{self.name}.log", "ab") as stderr:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=str(home),
                env=env,
            )
        self.starts += 1
        self._buf = bytearray()
        try:
            line = self._read(time.monotonic() + START_TIMEOUT_S)
        except ServerFailed as err:
            line = str(err).encode()
        if line != b"READY":
            self.close()
            tail = (self.root / f"{self.name}.log").read_bytes()[-400:]
            raise ServerFailed(
                f"python server did not start ({line[:100]!r}): {tail.decode(errors='replace')}"
            )

    def ensure_started(self) -> None:
        with self._lock:
            super().ensure_started()

    def run(
        self, program: bytes, source: str, stdin: bytes, limits: sandbox.Limits, env: dict
    ) -> sandbox.RunOutcome:
        """Run the preloaded runner on `program` (saved as `source` in the job's /sandbox)
        with `stdin`; raises ServerFailed when the server itself failed (it is then stopped,
        the next run starts a fresh one)."""
        with self._lock:
            return self._run(program, source, stdin, limits, env)

    def _run(self, program, source, stdin, limits, env) -> sandbox.RunOutcome:
        self.ensure_started()
        assert self.proc is not None and self.proc.stdin is not None
        request = {
            "source": source,
            "program": len(program),
            "stdin": len(stdin),
            "uid": sandbox.random_uid(),
            "wall": limits.wall_s,
            "env": env,
            "limits": {
                "cpu": limits.cpu_s,
                "data": limits.memory_mb << 20,
                "nproc": limits.nproc,
                "fsize": limits.output_bytes,
                "nofile": limits.nofile,
                "disk": JOB_DISK_BYTES,
                "inodes": JOB_INODES,
            },
        }
        deadline = time.monotonic() + limits.wall_s + ANSWER_SLACK_S
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n" + program + stdin)
            self.proc.stdin.flush()
            answer = json.loads(self._read(deadline))
            if "error" in answer:
                raise ServerFailed(f"python server: {answer['error']}")
            out = self._read(deadline, answer["stdout"])
            err = self._read(deadline, answer["stderr"])
        except (OSError, ValueError, KeyError, ServerFailed) as exc:
            self.close()
            if isinstance(exc, ServerFailed):
                raise
            raise ServerFailed(f"python server: {type(exc).__name__}: {exc}") from exc
        self.served += 1
        return sandbox.outcome_of(
            out,
            err,
            limits,
            answer["rc"],
            answer["timed_out"],
            answer["duration"],
            started=answer["started"],
            infra_detail="" if answer["started"] else f"python server: {answer['detail']}",
        )

    def _kill(self) -> None:
        # bwrap's init dies with it (PDEATHSIG): the server's PID namespace and every job
        # namespace nested in it go at once.
        assert self.proc is not None
        self.proc.kill()


class PythonServerPool(ServerPool[PythonServer]):
    """Up to `size` Python servers shared by the worker threads (each job holds one)."""

    def __init__(self, root: Path, python_argv: list[str], size: int):
        argv = list(python_argv)
        super().__init__("python server", lambda i: PythonServer(root, argv, f"pyserver-{i}"), size)

    def run(
        self, program: bytes, source: str, stdin: bytes, limits: sandbox.Limits, env: dict
    ) -> sandbox.RunOutcome | None:
        """One runner job on a free server: its outcome (started=False, an INFRA_ERROR, when
        the server failed under it), or None: run it with its own interpreter (the pool is
        closing, or the server would not start; `broken` says so when servers cannot be built
        here at all)."""
        with self.started("this job runs its own interpreter") as server:
            if server is None:
                return None
            try:
                return server.run(program, source, stdin, limits, env)
            except ServerFailed as err:  # the server, not the program, failed
                log.warning("%s; the job is an INFRA_ERROR, the server restarts", err)
                return sandbox.RunOutcome(None, False, b"", b"", False, 0.0, False, str(err))
