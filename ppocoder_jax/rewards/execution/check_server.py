"""Persistent sandboxed compile checkers: one warm toolchain process checks many programs.

A compile check starts bwrap, setpriv, prlimit, bash and the toolchain for every program; for
`node --check`, `php -l`, `mcs` and `gcc -c` that start-up is most of the cost (README:
reward speed). Each language with a server module (js_server, php_server, csharp_server,
c_server) keeps up to one server per pool worker, started once with Popen (the trainer never
forks) inside the same sandbox as a job: bubblewrap (read-only system, no network, its own PID
namespace, --die-with-parent), a random unprivileged uid when root, prlimit's limits, an empty
environment; its only writable place is its own directory, mounted at /sandbox. A server is
single-threaded where it forks (php, the C helper). One program at a time per server:

    request: "<payload bytes>\\t<wall seconds>\\t<field>...\\n" + payload (the program)
    answer:  "OK|FAIL|RETRY <detail bytes>\\n" + detail (the compiler's message; the C and C#
             servers keep the beginning and the end of a long one, the others its end)

OK and FAIL are the verdict the per-job path gives (compiled or not). RETRY says that this
program's verdict depends on something a server does not reproduce exactly (a stack, memory or
time limit reached, a crash): the job then runs the per-job way once. So does every job of a
server that died, hung (it is killed at the wall limit plus slack and restarts on the next
check) or could not start; a server that never started disables its language's servers, said
once in the log. `Executor(compile_servers=False)` keeps the per-job path for all of them.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ppocoder_jax.rewards.execution import sandbox
from ppocoder_jax.rewards.execution.languages import SPECS
from ppocoder_jax.rewards.execution.server_pool import ServerPool
from ppocoder_jax.rewards.execution.server_protocol import PipeServer, ServerFailed

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0  # mono's start and self-test take seconds on a loaded 2-core box
ANSWER_SLACK_S = 5.0  # beyond the check's own wall limit, before the server counts as hung
# The end of the compiler's message (a verdict shows the last 600 chars); C and C# send the
# first and the last DETAIL_BYTES / 2 bytes of a longer one (the failure shows its first error).
DETAIL_BYTES = 16384


@dataclass(frozen=True)
class Answer:
    status: str  # OK | FAIL | RETRY
    detail: str


class CheckServer(PipeServer):
    """One persistent checker process; a subclass gives its argv and how a request looks.
    A failed server (ServerFailed) costs no verdict: the job runs the per-job way.

    Start it from a long-lived thread (an executor worker): bwrap --die-with-parent kills the
    server when the THREAD that started it exits."""

    lang = ""
    max_checks = 5000  # then a fresh process (bounds whatever the toolchain accumulates)
    # At most this many servers per pool (None: one per worker); checks of a few ms need few.
    max_servers: int | None = None

    def __init__(self, root: Path, name: str):
        super().__init__()
        self.root, self.name = root, name
        self.label = f"{self.lang} check server"
        self.home = root / name  # /sandbox inside: the server's only writable place
        self.home.mkdir(mode=0o755, exist_ok=True)
        self.uid: int | None = None
        self.starts = 0
        self._since_start = 0
        self._lock = threading.RLock()

    # --- what a subclass says -----------------------------------------------------------------
    def argv(self) -> list[str]:
        raise NotImplementedError

    def binds(self) -> list[str]:
        """Host paths the server reads besides the system and the Python prefix (read-only)."""
        return []

    def limits(self) -> sandbox.Limits:
        """The server's own limits: the per-job compile limits, no CPU-time limit (the server
        lives long; each check has a wall-time limit instead)."""
        spec = SPECS[self.lang]
        return sandbox.Limits(
            wall_s=10**6,
            memory_mb=spec.compile_memory_mb,
            nproc=max(spec.nproc, 32),
            output_bytes=256 << 20,
        )

    # --- process --------------------------------------------------------------------------------
    def ensure_started(self) -> None:
        with self._lock:
            if self._since_start >= self.max_checks:
                self.close()
            super().ensure_started()

    def _start(self) -> None:
        info = sandbox.sandbox_info()
        prefix = sandbox._limit_prefix(self.limits())
        if info.drop_uid:
            self.uid = sandbox.random_uid()
            os.chown(self.home, self.uid, self.uid)  # created by us in our own root: no link
            prefix = sandbox._drop_uid_prefix(self.uid) + prefix
        cwd = sandbox.program_cwd(self.home)
        env = {"PATH": sandbox._PATH, "HOME": cwd, "TMPDIR": cwd, "LANG": "C.UTF-8"}
        kw: dict = {}
        if info.mode == "bwrap":
            binds = [*info.ro_binds, *self.binds()]
            cmd = sandbox._bwrap_base(str(self.home), binds, info.drop_uid, None)
            cmd += prefix + self.argv()
        else:
            cmd = prefix + self.argv()
            kw["start_new_session"] = True  # setsid, not preexec_fn
        with open(self.root / f"{self.name}.log", "ab") as stderr:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=str(self.home),
                env=env,
                **kw,
            )
        self.starts += 1
        self._since_start = 0
        self._buf = bytearray()
        try:
            answer = self._answer(time.monotonic() + START_TIMEOUT_S)
        except ServerFailed as err:
            answer = Answer("DIED", str(err))
        if answer.status != "READY":
            self.close()
            tail = (self.root / f"{self.name}.log").read_bytes()[-400:]
            raise ServerFailed(
                f"{self.lang} check server did not start ({answer.status} {answer.detail[:300]!r}): "
                + tail.decode(errors="replace")
            )

    def _answer(self, deadline: float) -> Answer:
        head = self._read(deadline).decode("ascii", errors="replace")
        status, _, size = head.partition(" ")
        if not size.isdigit() or int(size) > 4 * DETAIL_BYTES:
            raise ServerFailed(f"{self.lang} check server protocol error: {head[:100]!r}")
        return Answer(status, self._read(deadline, int(size)).decode("utf-8", errors="replace"))

    def request(self, fields: list[str], payload: bytes, wall_s: float) -> Answer:
        """Send one check; the answer, or ServerFailed (the server is then stopped: the next
        check starts a fresh one)."""
        with self._lock:
            self.ensure_started()
            assert self.proc is not None and self.proc.stdin is not None
            head = "\t".join([str(len(payload)), f"{wall_s:g}", *fields]) + "\n"
            try:
                self.proc.stdin.write(head.encode() + payload)
                self.proc.stdin.flush()
                answer = self._answer(time.monotonic() + wall_s + ANSWER_SLACK_S)
                if answer.status not in ("OK", "FAIL", "RETRY"):
                    raise ServerFailed(f"{self.lang} check server: {answer.status} {answer.detail}")
            except (OSError, ValueError, ServerFailed) as exc:
                self.close()
                if isinstance(exc, ServerFailed):
                    raise
                raise ServerFailed(
                    f"{self.lang} check server: {type(exc).__name__}: {exc}"
                ) from exc
            self.served += 1
            self._since_start += 1
            return answer

    def _kill(self) -> None:
        assert self.proc is not None
        if sandbox.sandbox_info().mode == "bwrap":
            self.proc.kill()  # bwrap's init dies with it: the whole PID namespace goes
        else:
            sandbox._kill_group(self.proc.pid)
            if self.uid is not None:
                sandbox._kill_uid(self.uid)

    def close(self) -> None:
        with self._lock:
            super().close()


def move_output(src: Path, dst: Path) -> None:
    """Move a compiler output out of the server's directory (a regular file, never a link)."""
    try:
        if not stat.S_ISREG(os.lstat(src).st_mode):
            raise ServerFailed(f"{src.name} is not a regular file")
        os.replace(src, dst)
    except OSError as err:
        raise ServerFailed(f"cannot take {src.name} from the check server: {err}") from err


class CheckServerPool(ServerPool[CheckServer]):
    """Up to `size` servers of one language (fewer if the server class says so) shared by the
    worker threads (each check holds one server)."""

    def __init__(self, lang: str, factory: type[CheckServer], root: Path, size: int):
        size = min(size, factory.max_servers or size)
        super().__init__(
            f"{lang} check server", lambda i: factory(root, f"{lang}-server-{i}"), size
        )
