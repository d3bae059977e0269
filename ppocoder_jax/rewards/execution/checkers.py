"""Compile checks: one backend interface, three kinds, a chain per language chosen at start-up.

A language's chain (`Language.compile_server` in languages.py says which server kind it has)
is tried in order; a backend either decides (COMPILED, or the COMPILE_ERROR / INFRA_ERROR
result) or passes the job on (None: its server failed, or cannot reproduce this program's
per-job verdict). The last backend is always one sandboxed toolchain process per job, which
always decides, so a server never changes a verdict, only what it costs.

    CheckServerBackend   a pool of persistent check servers (check_server.py: JS, PHP, C#, C)
    JavacBackend         a pool of warm javac JVMs (java_server.py)
    ProcessBackend       one sandboxed toolchain process per program (C++ with its PCH)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ppocoder_jax.rewards.execution import (
    c_server,
    csharp_server,
    failures,
    js_server,
    php_server,
    sandbox,
)
from ppocoder_jax.rewards.execution.check_server import CheckServerPool
from ppocoder_jax.rewards.execution.java_server import JavacServerPool
from ppocoder_jax.rewards.execution.job_text import described, program_bytes, tail
from ppocoder_jax.rewards.execution.languages import Language, fill
from ppocoder_jax.rewards.execution.pch import StdcxxPch
from ppocoder_jax.rewards.execution.server_protocol import ServerFailed, ServerTimeout
from ppocoder_jax.rewards.execution.verdicts import ExecutionResult, Verdict, make_result

log = logging.getLogger(__name__)

COMPILED = "compiled"  # a backend's answer for a program that compiled
# The check-server module of each language whose Language.compile_server is "check".
CHECK_SERVERS = {
    "javascript": js_server,
    "php": php_server,
    "csharp": csharp_server,
    "c": c_server,
}
SERVER_CLASSES = {
    "javascript": js_server.JsServer,
    "php": php_server.PhpServer,
    "csharp": csharp_server.CsharpServer,
    "c": c_server.CServer,
}


@dataclass(frozen=True)
class CompileJob:
    spec: Language
    work: Path  # the job directory (the program is written there as `source`)
    io: Path
    source: str
    program: str
    link: bool
    tests_total: int
    timeout_s: float  # read per job: the executor's compile_timeout_s may change


def compile_error(job: CompileJob, message: str) -> ExecutionResult:
    return make_result(
        Verdict.COMPILE_ERROR,
        compiled=False,
        tests_total=job.tests_total,
        detail=tail(message),
        failure=described(failures.compile_failure, message, job.spec.name),
    )


class CheckServerBackend:
    """The language's check-server pool while it lives in `pools` (the executor drops a pool
    whose servers cannot start at all, through `on_broken`)."""

    def __init__(self, pools: dict[str, CheckServerPool], on_broken, count: Callable):
        self.pools, self.on_broken, self.count = pools, on_broken, count

    def check(self, job: CompileJob):
        lang = job.spec.name
        pool = self.pools.get(lang)
        if pool is None:
            return None
        with pool.started("this program is checked the per-job way") as server:
            if server is None:
                if pool.broken:
                    self.on_broken(lang)
                return None
            try:
                answer = server.check(program_bytes(job.program), job.work, job.link, job.timeout_s)
            except ServerFailed as err:  # the server, not the program: it restarts
                log.warning("%s; this program is checked the per-job way", err)
                answer = None
        self.count(f"server_checks_{'failed' if answer is None else answer.status.lower()}")
        if answer is None or answer.status == "RETRY":
            return None
        return COMPILED if answer.status == "OK" else compile_error(job, answer.detail)


class JavacBackend:
    def __init__(self, pool: JavacServerPool):
        self.pool = pool

    def check(self, job: CompileJob):
        if self.pool.broken:
            return None
        try:
            server = self.pool.acquire()
        except Exception as err:  # cannot build the server at all
            self.pool.broken = str(err)
            log.warning("javac server unavailable (%s); using one javac per program", err)
            return None
        try:
            ok, message = server.compile(job.work, job.source, job.timeout_s)
        except ServerTimeout:
            return compile_error(job, f"compilation exceeded {job.timeout_s:g}s")
        except (OSError, RuntimeError) as err:
            log.warning("javac server failed (%s); falling back to plain javac for this job", err)
            return None
        finally:
            self.pool.release(server)
        return COMPILED if ok else compile_error(job, message)


class ProcessBackend:
    """One sandboxed toolchain process per program; always decides."""

    def __init__(self, python_argv: list[str], pch: dict[str, StdcxxPch | None]):
        self.python_argv, self.pch = python_argv, pch

    def _command(self, job: CompileJob) -> tuple[list[str], tuple[str, ...]]:
        spec = job.spec
        if spec.name == "python":
            code = "import sys; compile(open(sys.argv[1], 'rb').read(), sys.argv[1], 'exec', dont_inherit=True)"
            return [*self.python_argv, "-c", code, job.source], ()
        cmd = fill(spec.link_cmd if job.link else spec.compile_cmd, src=job.source)
        pch = self.pch["link" if job.link else "compile"] if spec.name == "cpp" else None
        if pch is not None and "bits/stdc++.h" in job.program:
            pch_dir = pch.include_dir()
            if pch_dir is not None:
                return [cmd[0], "-I", str(pch_dir), *cmd[1:]], (str(pch_dir),)
        return cmd, ()

    def check(self, job: CompileJob):
        spec = job.spec
        cmd, binds = self._command(job)
        limits = sandbox.Limits(
            wall_s=job.timeout_s,
            memory_mb=spec.compile_memory_mb,
            nproc=max(spec.nproc, 32),
            output_bytes=256 << 20,
        )
        out = sandbox.run_sandboxed(cmd, job.work, job.io, limits, extra_ro_binds=binds)
        if not out.started:
            return make_result(
                Verdict.INFRA_ERROR,
                compiled=False,
                tests_total=job.tests_total,
                detail=out.infra_detail,
            )
        if out.timed_out or out.cpu_limited:
            return compile_error(job, f"compilation exceeded {job.timeout_s:g}s")
        if out.returncode != 0:
            return compile_error(job, (out.stderr + out.stdout).decode("utf-8", errors="replace"))
        return COMPILED
