"""C compile checks from a warm sandbox: `gcc -c` without a bwrap, setpriv, prlimit per program.

GCC has no server mode (cc1 starts, and initialises its back end, for every file), so what a
persistent process can save here is the sandbox's start-up, about half of a C check. The server
is a single-threaded helper (c_helper.py, `python -I -S`) in the same sandbox as a compile job;
per program it runs the very command of the per-job check (`gcc -std=gnu11 ... -c program.c -o
program.o`, or the link command) in its own directory, which is the job directory (/sandbox) of
one check at a time, with prlimit's limits set by setrlimit, the job's environment and an empty
stdin: same compiler, flags, paths, limits and input, hence the same verdicts. The directory is
emptied before each check; to link, the host moves the program binary into the job's directory.
A check that reaches its wall or CPU-time limit is a RETRY (the per-job check decides).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ppocoder_jax.rewards.execution import c_helper, sandbox
from ppocoder_jax.rewards.execution.check_server import Answer, CheckServer, move_output
from ppocoder_jax.rewards.execution.languages import SPECS, fill

HELPER_SOURCE = Path(c_helper.__file__).read_text(encoding="utf-8")


class CServer(CheckServer):
    lang = "c"

    def argv(self) -> list[str]:
        return [sandbox.sandbox_info().python, "-I", "-S", "-c", HELPER_SOURCE]

    def check(self, program: bytes, work: Path, link: bool, wall_s: float) -> Answer:
        """The per-job gcc command on program.c; when linking, `program` is moved into `work`
        for the tests."""
        spec = SPECS["c"]
        cmd = fill(spec.link_cmd if link else spec.compile_cmd, src=spec.source_name)
        job = sandbox.Limits(
            wall_s=wall_s,
            memory_mb=spec.compile_memory_mb,
            nproc=max(spec.nproc, 32),
            output_bytes=256 << 20,
        )
        limits = f"{job.cpu_s},{job.memory_mb << 20},{job.nproc},{job.output_bytes},{job.nofile}"
        with self._lock:
            answer = self.request([limits, spec.source_name, *cmd], program, wall_s)
            if answer.status == "OK" and link:
                move_output(self.home / "program", work / "program")
            return answer


def unavailable_reason() -> str:
    if not shutil.which("gcc"):
        return "gcc not installed"
    return sandbox.server_home_reason()  # the helper empties its directory before each check
