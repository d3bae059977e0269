"""C# compile checks in one warm mono process: `mcs` without a mono start and JIT per program.

`mcs` is `mono mcs.exe`: most of a check is the runtime starting and JIT-compiling the
compiler. mcs has no server mode, but its driver can run many compilations in one process: the
server (a few lines of C#, built once per machine with mcs into a cache, trusted code) loads the
same mcs.exe and does what its `Driver.Main` does for each request - CommandLineParser over the
same arguments as the per-job command (`-target:library -out:program.dll program.cs`, or
`-out:program.exe` to link), CompilerContext with a ConsoleReportPrinter, Driver.Compile, then
"compiled" iff it returned true with no errors - except the final Environment.Exit. The one
piece of compiler state that outlives a compilation, the source file list behind `Location`,
is reset first (Location.Reset, what mcs's own evaluator does); the server restarts every
`max_checks` compilations (each leaves its dynamic assembly behind). It runs in its own
directory, which is the job directory (/sandbox) of one check at a time: the program is written
there as program.cs, as for the per-job check, and the directory is emptied before each check;
to link, the host moves program.exe into the job's directory afterwards. An exception out of
the compiler, "Internal compiler error" or an out-of-memory / stack message is a RETRY (and the
server exits for a fresh one): the per-job mcs decides; a stack overflow kills the server, and
that job, too, is checked per job.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from ppocoder_jax.rewards.execution import pch, programs, sandbox
from ppocoder_jax.rewards.execution.check_server import (
    Answer,
    CheckServer,
    ServerFailed,
    move_output,
)
from ppocoder_jax.rewards.execution.languages import SPECS, fill

SERVER_NAME = "PpocoderMcsServer"
SERVER_SOURCE = programs.source(f"{SERVER_NAME}.cs")


class CsharpServer(CheckServer):
    lang = "csharp"
    max_checks = 500

    def argv(self) -> list[str]:
        exe = str(_server_build() / f"{SERVER_NAME}.exe")
        return ["mono", exe, str(mcs_exe())]

    def binds(self) -> list[str]:
        return [str(_server_build())]

    def check(self, program: bytes, work: Path, link: bool, wall_s: float) -> Answer:
        """The per-job `mcs` command on program.cs; when linking, program.exe is moved into
        `work` for the tests."""
        spec = SPECS["csharp"]
        cmd = fill(spec.link_cmd if link else spec.compile_cmd, src=spec.source_name)
        with self._lock:
            answer = self.request([spec.source_name, *cmd[1:]], program, wall_s)
            if answer.status == "OK" and link:
                move_output(self.home / "program.exe", work / "program.exe")
            return answer


_MCS_EXE = re.compile(rb"(/\S+/mcs\.exe)\b")


def mcs_exe() -> Path:
    """The mcs.exe that the `mcs` script runs (`exec mono ... /usr/lib/mono/4.5/mcs.exe`)."""
    script = shutil.which("mcs") or "mcs"
    with open(script, "rb") as f:
        match = _MCS_EXE.search(f.read(4096))
    if match is None:
        raise ServerFailed(f"cannot find mcs.exe in {script}")
    return Path(match.group(1).decode())


_build_lock = threading.Lock()


def _server_build() -> Path:
    """Build the server once per machine (trusted code) into a shared cache."""
    mcs = os.path.realpath(shutil.which("mcs") or "mcs")
    exe = mcs_exe()
    stamp = f"{SERVER_SOURCE}|{mcs}|{exe}|{os.stat(exe).st_mtime_ns}".encode()
    out_dir = pch.cache_root().parent / "csharp-server" / hashlib.sha256(stamp).hexdigest()[:16]
    target = out_dir / f"{SERVER_NAME}.exe"
    with _build_lock:
        if target.exists():
            return out_dir
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="build-", dir=out_dir.parent))
        try:
            (tmp / f"{SERVER_NAME}.cs").write_text(SERVER_SOURCE)
            proc = subprocess.run(
                ["mcs", "-out:" + str(tmp / f"{SERVER_NAME}.exe"), str(tmp / f"{SERVER_NAME}.cs")],
                capture_output=True,
                timeout=300,
                env={"PATH": sandbox._PATH, "LANG": "C.UTF-8"},
            )
            if proc.returncode != 0:
                raise ServerFailed("cannot build the mcs server: " + proc.stdout.decode()[-300:])
            for d in (out_dir.parent.parent, out_dir.parent, tmp):
                if os.geteuid() == 0:  # readable by the sandbox uids; only root writes
                    os.chmod(d, 0o755)
            os.chmod(tmp / f"{SERVER_NAME}.exe", 0o644)
            try:
                os.rename(tmp, out_dir)  # atomic; a concurrent builder may have won
            except OSError:
                if not target.exists():
                    raise
        except (OSError, subprocess.SubprocessError) as err:
            raise ServerFailed(f"cannot build the mcs server: {err}") from err
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def unavailable_reason() -> str:
    if not (shutil.which("mcs") and shutil.which("mono")):
        return "mcs or mono not installed"
    if reason := sandbox.server_home_reason():
        return reason  # the server empties its directory before each check
    try:
        mcs_exe()
    except (OSError, ServerFailed) as err:
        return str(err)
    return ""
