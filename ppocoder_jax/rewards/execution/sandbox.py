"""Run one untrusted command in a sandbox, from a thread, without forking Python.

Isolation layers (outermost first):
- bubblewrap, when usable: a fresh root with only /usr, /etc and the Python prefix visible
  read-only, the job directory as the only writable place, no network, a new PID namespace that
  dies with the sandbox (so daemons and fork bombs are reaped), an empty environment;
- when running as root: `setpriv` to a random unprivileged uid per job, so that the process-count
  limit applies (root is exempt from RLIMIT_NPROC) and the job cannot signal our processes;
- `prlimit`: CPU time, writable memory (RLIMIT_DATA, which ignores the JVM's and V8's large
  address-space reservations), process count, file size (which also caps captured output: stdout
  and stderr are files), open files, no core dumps.
Without bubblewrap it runs with the limits only and says so loudly once.

No preexec_fn anywhere: the trainer is a multithreaded JAX process (see the issue).
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SANDBOX_CWD = "/sandbox"  # the job directory as the sandboxed program sees it (bwrap mode)
_PATH = "/usr/local/bin:/usr/bin:/bin"
# bash, not dash: dash cannot redirect descriptors above 9.
_BASH = shutil.which("bash", path=_PATH) or "/bin/bash"
SIGXCPU = int(signal.SIGXCPU)
SIGXFSZ = int(signal.SIGXFSZ)
SIGKILL = int(signal.SIGKILL)


@dataclass(frozen=True)
class Limits:
    wall_s: float
    memory_mb: int = 1024  # RLIMIT_DATA
    nproc: int = 32
    output_bytes: int = 16 << 20  # RLIMIT_FSIZE; also the cap on captured stdout/stderr
    nofile: int = 256

    @property
    def cpu_s(self) -> int:
        return int(math.ceil(self.wall_s)) + 1


@dataclass
class RunOutcome:
    returncode: int | None  # None when we killed it at the wall-time limit
    timed_out: bool
    stdout: bytes
    stderr: bytes
    output_limited: bool
    duration_s: float
    started: bool = True  # False: the sandbox itself failed (an infrastructure error)
    infra_detail: str = ""

    @property
    def signal(self) -> int | None:
        """The signal that killed the command, if any (bwrap reports 128+sig)."""
        rc = self.returncode
        if rc is None:
            return SIGKILL
        if rc < 0:
            return -rc
        if rc > 128 and rc - 128 < 65:
            return rc - 128
        return None

    @property
    def cpu_limited(self) -> bool:
        return self.signal == SIGXCPU


@dataclass
class SandboxInfo:
    mode: str  # "bwrap" or "limits-only"
    drop_uid: bool  # root: switch to a random unprivileged uid per job
    reason: str = ""
    ro_binds: list[str] = field(default_factory=list)
    python: str = sys.executable  # the interpreter that runs Python tests, reachable by the job


_info: SandboxInfo | None = None
_info_lock = threading.Lock()


def _system_binds() -> list[str]:
    args: list[str] = []
    for top in ("/usr", "/etc"):
        args += ["--ro-bind", top, top]
    for top in ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    return args


def _python_dirs() -> list[str]:
    """Where the interpreter and its site-packages live, when outside /usr."""
    dirs = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    return sorted(d for d in dirs if d and not d.startswith("/usr/") and os.path.isdir(d))


def _under_system(path: str) -> bool:
    return any(path == top or path.startswith(top + "/") for top in ("/usr", "/etc"))


def _outermost(dirs: list[str]) -> list[str]:
    """Drop directories nested in another one of the list (or in /usr, /etc)."""
    keep: list[str] = []
    for d in sorted(set(dirs), key=len):
        if not _under_system(d) and not any(d == k or d.startswith(k + "/") for k in keep):
            keep.append(d)
    return keep


def tmp_holds_binds(ro_binds: list[str]) -> bool:
    """A checkout or venv below /tmp must be bound inside a real /tmp directory, so /tmp becomes
    a second mount of the job directory (holding those binds' mount points) instead of a
    symlink to it. Servers that reuse or empty their directory cannot work then."""
    return any(d == "/tmp" or d.startswith("/tmp/") for d in _outermost(ro_binds))


def server_home_reason(info: SandboxInfo | None = None) -> str:
    """'' unless bwrap mounts the sandbox's read-only binds inside the job directory (the
    checkout or its Python lies under /tmp): a server reusing or emptying its directory would
    meet them."""
    info = info or sandbox_info()
    if info.mode == "bwrap" and tmp_holds_binds(info.ro_binds):
        return "the checkout or its Python lies under /tmp (mounted inside the server's directory)"
    return ""


def _bwrap_base(
    workdir: str, ro_binds: list[str], drop_uid: bool, info_fd: int | None
) -> list[str]:
    args = ["bwrap", *_system_binds()]
    made: set[str] = set()
    tmp_is_dir = tmp_holds_binds(ro_binds)
    if tmp_is_dir:
        args += ["--bind", workdir, "/tmp"]
        made.add("/tmp")
    for d in _outermost(ro_binds):
        # bwrap would create missing parents with mode 0700: unreadable once we drop the uid.
        parents = [p for p in Path(d).parents if str(p) != "/"]
        for parent in reversed(parents):
            if str(parent) not in made and not _under_system(str(parent)):
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(str(parent))
        args += ["--ro-bind", d, d]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--bind", workdir, SANDBOX_CWD]
    if not tmp_is_dir:
        args += ["--symlink", SANDBOX_CWD, "/tmp"]
    args += ["--chdir", SANDBOX_CWD, "--hostname", "sandbox"]
    args += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
    args += ["--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    if drop_uid:
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
    else:
        args += ["--unshare-user"]
    if info_fd is not None:
        args += ["--info-fd", str(info_fd)]
    return args


def _drop_uid_prefix(uid: int) -> list[str]:
    return [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
    ]


def _limit_prefix(limits: Limits) -> list[str]:
    mem = limits.memory_mb << 20
    return [
        "prlimit",
        f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}",
        f"--data={mem}",
        f"--nproc={limits.nproc}",
        f"--fsize={limits.output_bytes}",
        f"--nofile={limits.nofile}",
        "--core=0",
        "--",
    ]


def _probe_bwrap(drop_uid: bool, ro_binds: list[str]) -> str:
    """'' when bubblewrap can build our sandbox here, else why not (tested once)."""
    if shutil.which("bwrap") is None:
        return "bwrap not installed"
    probe_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"ppocoder-bwrap-probe-{os.getpid()}"
    probe_dir.mkdir(parents=True, exist_ok=True)
    try:
        cmd = _bwrap_base(str(probe_dir), ro_binds, drop_uid, None)
        inner = _drop_uid_prefix(random_uid()) if drop_uid else []
        # The interpreter that runs Python tests must be reachable inside, as the job's uid.
        cmd += [*inner, sys.executable, "-I", "-c", "print('ok')"]
        proc = subprocess.run(cmd, capture_output=True, timeout=30, env={"PATH": _PATH})
        if proc.returncode == 0 and proc.stdout.strip() == b"ok":
            return ""
        return f"bwrap probe failed (exit {proc.returncode}): {proc.stderr.decode(errors='replace').strip()[:300]}"
    except (OSError, subprocess.SubprocessError) as err:
        return f"bwrap probe failed: {err}"
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)


def _python_for_dropped_uid() -> str:
    """Without bwrap, an unprivileged uid may not reach our interpreter (e.g. under /root)."""
    for exe in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        limits = _limit_prefix(Limits(wall_s=10))  # the same chain as a real job
        cmd = [*_drop_uid_prefix(random_uid()), *limits, exe, "-I", "-c", "print('ok')"]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, timeout=30, cwd="/", env={"PATH": _PATH}
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if proc.stdout.strip() == b"ok":
            if exe != sys.executable:
                log.warning(
                    "sandboxed Python tests run with %s (cannot reach %s)", exe, sys.executable
                )
            return exe
    log.warning("no Python interpreter is reachable by the sandbox uid; Python tests will fail")
    return sys.executable


def sandbox_info() -> SandboxInfo:
    """Detect (once per process) how programs are isolated on this machine."""
    global _info
    with _info_lock:
        if _info is not None:
            return _info
        drop_uid = os.geteuid() == 0 and shutil.which("setpriv") is not None
        if shutil.which("prlimit") is None:
            raise RuntimeError("prlimit (util-linux) is required to limit sandboxed programs")
        ro_binds = _python_dirs()
        reason = "" if os.environ.get("PPOCODER_NO_BWRAP") != "1" else "PPOCODER_NO_BWRAP=1"
        reason = reason or _probe_bwrap(drop_uid, ro_binds)
        if reason:
            msg = (
                "!!! ppocoder sandbox: bubblewrap unusable (%s); running generated programs with "
                "resource limits ONLY: no filesystem, network or PID isolation !!!"
            )
            log.warning(msg, reason)
            print(msg % reason, file=sys.stderr, flush=True)
            _info = SandboxInfo("limits-only", drop_uid, reason, ro_binds)
            if drop_uid:
                _info.python = _python_for_dropped_uid()
        else:
            _info = SandboxInfo("bwrap", drop_uid, "", ro_binds)
        if os.geteuid() == 0 and not drop_uid:
            log.warning("running as root without setpriv: the process-count limit is not enforced")
        return _info


def random_uid() -> int:
    """A fresh unprivileged uid per job: per-uid limits (processes) are then per job."""
    return random.SystemRandom().randrange(1 << 20, 1 << 30)


def program_cwd(workdir: Path) -> str:
    """The job directory's path as seen by the sandboxed program."""
    return SANDBOX_CWD if sandbox_info().mode == "bwrap" else str(workdir)


def _read_head(path: Path, size: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def run_sandboxed(
    argv: list[str],
    workdir: Path,
    iodir: Path,
    limits: Limits,
    *,
    stdin: bytes = b"",
    extra_ro_binds: tuple[str, ...] = (),
    uid: int | None = None,
) -> RunOutcome:
    """Run argv (relative to the job directory) and wait; never raises for program behaviour.

    `workdir` is the only writable place (owned by `uid` when we drop privileges); `iodir` is a
    private directory of ours that holds the stdin/stdout/stderr/info files.
    """
    info = sandbox_info()
    if info.drop_uid:
        uid = uid if uid is not None else random_uid()
        os.chown(workdir, uid, uid)
    cwd_seen = program_cwd(workdir)
    env = {"PATH": _PATH, "HOME": cwd_seen, "TMPDIR": cwd_seen, "LANG": "C.UTF-8"}
    prefix = [*(_drop_uid_prefix(uid) if info.drop_uid else []), *_limit_prefix(limits)]
    (iodir / "stdin").write_bytes(stdin)
    with (
        open(iodir / "stdin", "rb") as fin,
        open(iodir / "stdout", "wb") as fout,
        open(iodir / "stderr", "wb") as ferr,
        open(iodir / "info", "wb") as finfo,
    ):
        # Once the sandbox, uid switch and limits are in place, a marker goes to the "started"
        # file and its descriptor is closed before the command runs: no marker = our failure.
        fd = finfo.fileno()
        marker = [_BASH, "-c", f'printf S >&{fd}; exec {fd}>&-; exec "$@"', "bash"]
        inner = [*prefix, *marker, *argv]
        popen_kw: dict = {"pass_fds": (fd,)}
        if info.mode == "bwrap":
            binds = [*info.ro_binds, *extra_ro_binds]
            cmd = _bwrap_base(str(workdir), binds, info.drop_uid, None) + inner
        else:
            cmd = inner
            popen_kw["start_new_session"] = True  # setsid, not preexec_fn
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                cmd, stdin=fin, stdout=fout, stderr=ferr, cwd=str(workdir), env=env, **popen_kw
            )
        except OSError as err:
            return RunOutcome(None, False, b"", b"", False, 0.0, False, f"cannot start: {err}")
        timed_out = False
        try:
            proc.wait(timeout=limits.wall_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(proc, info.mode)
            proc.wait()
        if info.mode != "bwrap":
            if info.drop_uid:
                _kill_uid(uid)  # stragglers, setsid daemons included: all have the job's uid
            else:
                _kill_group(proc.pid)  # best effort: setsid daemons escape the group
        duration = time.monotonic() - start
    outcome = collect_outcome(iodir, limits, proc.returncode, timed_out, duration)
    if (iodir / "info").read_bytes() != b"S":
        outcome.started = False
        outcome.infra_detail = (
            "sandbox failed to start: " + outcome.stderr.decode(errors="replace")[:300]
        )
    return outcome


def collect_outcome(
    iodir: Path, limits: Limits, returncode: int | None, timed_out: bool, duration: float
) -> RunOutcome:
    """The RunOutcome of a finished command from its stdout/stderr files in `iodir`."""
    stdout = _read_head(iodir / "stdout", limits.output_bytes + 1)
    stderr = _read_head(iodir / "stderr", limits.output_bytes + 1)
    return outcome_of(stdout, stderr, limits, returncode, timed_out, duration)


def outcome_of(
    stdout: bytes,
    stderr: bytes,
    limits: Limits,
    returncode: int | None,
    timed_out: bool,
    duration: float,
    *,
    started: bool = True,
    infra_detail: str = "",
) -> RunOutcome:
    """The RunOutcome from the first output_bytes + 1 bytes of stdout and stderr (shared with
    the Python test servers, so that both paths judge output the same way)."""
    cap = limits.output_bytes
    outcome = RunOutcome(
        None if timed_out else returncode,
        timed_out,
        stdout[:cap],
        stderr[:cap],
        len(stdout) >= cap or len(stderr) >= cap,
        duration,
        started,
        infra_detail,
    )
    if outcome.signal == SIGXFSZ:
        outcome.output_limited = True
    return outcome


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of this job's private uid: kill(-1) sent *as* that uid."""
    for _ in range(2):  # a second pass for anything that was mid-fork
        try:
            subprocess.run(
                [*_drop_uid_prefix(uid), "/bin/sh", "-c", "kill -9 -1 2>/dev/null; true"],
                env={"PATH": _PATH},
                timeout=30,
                capture_output=True,
            )
        except (OSError, subprocess.SubprocessError):
            return


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill(proc: subprocess.Popen, mode: str) -> None:
    if mode == "bwrap":
        # bwrap's init inside has PDEATHSIG=SIGKILL: killing bwrap tears down the PID namespace.
        proc.kill()
    else:
        _kill_group(proc.pid)


def remove_tree(path: Path) -> None:
    """Remove a job directory even if the program made parts of it read-only."""

    def _onerror(func, p, _exc):
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=_onerror)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
