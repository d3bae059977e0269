"""The execution-feedback pool: compile checks and unit tests on host threads.

`Executor.submit(lang, program, tests=None, link=False)` returns a Future[ExecutionResult].
Worker threads launch sandboxed subprocesses (never forking Python), identical jobs within a run
share one result (an LRU cache of `cache_size` jobs, in-flight ones included), Java compiles go
to persistent javac servers, and C++ programs that include <bits/stdc++.h> use a precompiled
header. Python compile checks byte-compile the program text in-process (compile(), never
import), which is what `python -m py_compile` does. Python call-based and assert-style tests go
to persistent sandboxed Python servers (python_server.py: no interpreter start per job) where
they can be built, else to one sandboxed interpreter per job (`python_server=False`).
JavaScript, PHP, C# and C compile checks go to persistent sandboxed check servers
(check_server.py and one module per language) with the per-job verdicts, else one sandboxed
toolchain process per program (`compile_servers=False`). A failing result says what failed
(`ExecutionResult.failure`: the failing test's input, expected and actual values or the error;
failures.py), the same on every path and from the cache, for feedback (rewards/feedback.py).

`Executor` coordinates: the job cache and accounting, each job's directory, the language's
compile backends (checkers.py, chosen at start-up from languages.py), and the test runs, whose
outcomes judging.py turns into verdicts.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import secrets
import tempfile
import threading
import time
import warnings
import weakref
from collections import Counter, OrderedDict
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from ppocoder_jax.rewards.execution import failures, harness, sandbox
from ppocoder_jax.rewards.execution import python_server as pyserver
from ppocoder_jax.rewards.execution.check_server import CheckServerPool
from ppocoder_jax.rewards.execution.checkers import (
    CHECK_SERVERS,
    COMPILED,
    SERVER_CLASSES,
    CheckServerBackend,
    CompileJob,
    JavacBackend,
    ProcessBackend,
)
from ppocoder_jax.rewards.execution.java_server import JavacServerPool
from ppocoder_jax.rewards.execution.job_text import described as _described
from ppocoder_jax.rewards.execution.job_text import program_bytes
from ppocoder_jax.rewards.execution.job_text import tail as _tail  # noqa: F401 (imported from here)
from ppocoder_jax.rewards.execution.judging import StdioJudge, runner_result
from ppocoder_jax.rewards.execution.languages import (
    CPP_FLAGS,
    SPECS,
    Language,
    canonical_language,
    fill,
    java_file_name,
    java_main_class,
    missing_tools,
)
from ppocoder_jax.rewards.execution.pch import StdcxxPch
from ppocoder_jax.rewards.execution.verdicts import (
    ExecutionResult,
    Verdict,
    make_result,
)

log = logging.getLogger(__name__)

_PY_FILENAME = "<ppocoder-program>"
_COMPILE_LOCK = threading.Lock()
_IN_PROCESS_PY_LIMIT = 200_000  # characters; larger programs are byte-compiled in the sandbox
_STARTUP_SLACK_S = {"java": 1.5, "csharp": 1.0, "javascript": 0.5}
# Jobs whose results are kept (RewardConfig.cache_size): under 1 KB each (a digest key and the
# result; neither the program nor its tests are kept), up to ~4 KB for a failing one (its
# TestFailure's fields are capped), so the default holds ~40 MB typically, ~200 MB at most.
DEFAULT_CACHE_SIZE = 50_000


def python_compiles(program: str) -> tuple[bool, str]:
    """Byte-compile the program text (like py_compile: bytes in, so coding cookies count)."""
    source = program_bytes(program)
    try:
        # Warnings must neither print nor, under a "-W error" filter, turn into SyntaxErrors.
        # catch_warnings swaps process-global state, hence the lock.
        with _COMPILE_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(source, _PY_FILENAME, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError) as err:
        return False, f"{type(err).__name__}: {err}"
    return True, ""


class Executor:
    """Thread pool running sandboxed compile checks and unit tests (see module docstring)."""

    def __init__(
        self,
        workers: int = 0,
        timeout_s: float = 4.0,
        cache: bool = True,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        compile_timeout_s: float = 30.0,
        output_bytes: int = 16 << 20,
        java_servers: int | None = None,
        cpp_pch: bool = True,
        work_root: str | None = None,
        python_site: bool = False,
        python_server: bool = True,
        compile_servers: bool = True,
    ):
        if timeout_s <= 0 or compile_timeout_s <= 0:
            raise ValueError("timeouts must be > 0")
        if workers < 0:
            raise ValueError("workers must be >= 0 (0 = number of cores)")
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0 (0 = no cache)")
        self.workers = workers or os.cpu_count() or 1
        self.timeout_s = float(timeout_s)
        self.compile_timeout_s = float(compile_timeout_s)
        self.output_bytes = int(output_bytes)
        self.cache_size = int(cache_size) if cache else 0
        self.cache_enabled = self.cache_size > 0
        self.sandbox = sandbox.sandbox_info()
        # -S: no `site`, so programs see the standard library only, not this environment's
        # packages; it also saves most of the interpreter's start-up (README: reward speed).
        self.python_argv = [self.sandbox.python, "-I", *(() if python_site else ("-S",))]
        self.root = Path(tempfile.mkdtemp(prefix="ppocoder-exec-", dir=work_root))
        os.chmod(self.root, 0o711)  # unprivileged sandbox uids traverse it (limits-only mode)
        if self.sandbox.mode != "bwrap" and self.sandbox.drop_uid:
            for parent in self.root.parents:
                if not os.stat(parent).st_mode & 0o001:
                    self.root.rmdir()
                    raise ValueError(
                        f"work_root: {parent} is not searchable by other users (o+x), "
                        "so the sandbox uids could not reach their job directories"
                    )
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ppocoder-exec")
        self._javac = JavacServerPool(self.root, java_servers or min(self.workers, 2))
        # Persistent sandboxed Python test servers; None = one interpreter per job (asked for,
        # or the servers cannot be built here: said once in the log).
        self._pyservers: pyserver.PythonServerPool | None = None
        if python_server:
            reason = pyserver.unavailable_reason(self.sandbox)
            if reason:
                _say_once(f"Python tests run one sandboxed interpreter per job: {reason}")
            else:
                self._pyservers = pyserver.PythonServerPool(
                    self.root, self.python_argv, self.workers
                )
        # Persistent sandboxed compile checkers by language (none: one process per program).
        self._checkers: dict[str, CheckServerPool] = {}
        for lang, module in CHECK_SERVERS.items() if compile_servers else ():
            if reason := module.unavailable_reason():
                if not missing_tools(SPECS[lang]):  # a missing compiler is said per job
                    _say_once(f"{lang} compile checks run one process per program: {reason}")
            else:
                self._checkers[lang] = CheckServerPool(
                    lang, SERVER_CLASSES[lang], self.root, self.workers
                )
        self._checker_pools = list(self._checkers.values())  # all closed with the executor
        self._pch = {
            "compile": StdcxxPch(CPP_FLAGS) if cpp_pch else None,
            "link": StdcxxPch((*CPP_FLAGS, "-O2")) if cpp_pch else None,
        }
        # Each language's compile backends, tried in order (checkers.py); the per-job process
        # comes last and always decides.
        by_kind = {
            "check": CheckServerBackend(self._checkers, self._check_checkers, self._count),
            "javac": JavacBackend(self._javac),
        }
        per_job = ProcessBackend(self.python_argv, self._pch)
        self._compile_backends = {
            lang: [*([by_kind[spec.compile_server]] if spec.compile_server else []), per_job]
            for lang, spec in SPECS.items()
        }
        # job digest -> its Future while it runs, its ExecutionResult once done; least recently
        # used first (see submit)
        self._cache: OrderedDict[bytes, Future] = OrderedDict()
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._closed = False
        self.stats: Counter = Counter()
        # Worker time spent in jobs: finished jobs' seconds, and the start of each running one
        # (by worker thread), for busy_seconds().
        self._busy_done = 0.0
        self._running: dict[int, float] = {}
        # If close() is never called: still stop the javac servers and remove the job area.
        self._finalizer = weakref.finalize(
            self, _cleanup, self._javac, self._pyservers, self._checker_pools, self.root
        )

    # --- public API ---------------------------------------------------------------------------
    def submit(
        self, lang: str, program: str, tests: dict | None = None, link: bool = False
    ) -> Future:
        """Queue one job; raises ValueError for an unknown language or malformed tests."""
        lang = canonical_language(lang)
        spec = harness.parse_tests(tests, lang)
        if not isinstance(program, str):
            raise ValueError("program must be a string")
        key = _job_key(lang, program, tests, bool(link)) if self.cache_enabled else None
        with self._lock:
            if self._closed:
                raise RuntimeError("Executor is closed")
            self.stats["submitted"] += 1
            hit = self._cache.get(key) if key is not None else None
            if hit is not None:  # still running (its future) or done: one job, one result
                self._cache.move_to_end(key)
                self.stats["cache_hits"] += 1
                if isinstance(hit, Future):
                    return hit
                done: Future = Future()
                done.set_result(hit)
                return done
            future = self._pool.submit(self._job, lang, program, spec, bool(link))
            if key is not None:
                self._cache[key] = future
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)  # its holders keep their future
                    self.stats["cache_evictions"] += 1
        if key is not None:
            # Outside the lock: a job already done runs the callback here, and it takes the lock.
            future.add_done_callback(lambda f, k=key: self._job_done(k, f))
        return future

    def busy_seconds(self) -> float:
        """Seconds the workers have spent in jobs since the start, running ones included up to
        now: the busy fraction over a window is the difference of two readings / (workers x
        the window's length)."""
        with self._lock:
            now = time.monotonic()
            return self._busy_done + sum(now - start for start in self._running.values())

    def cache_len(self) -> int:
        """Jobs whose results (or futures) the cache holds now."""
        with self._lock:
            return len(self._cache)

    def run_many(self, jobs: Iterable[Any]) -> list[ExecutionResult]:
        """Jobs are (lang, program[, tests[, link]]) tuples or dicts with those keys."""
        futures = []
        for job in jobs:
            if isinstance(job, dict):
                futures.append(self.submit(**job))
            else:
                futures.append(self.submit(*job))
        return [f.result() for f in futures]

    def warm_up(self, langs: Iterable[str]) -> None:
        """Build the C++ precompiled headers / start a javac server now (before timing)."""
        for lang in {canonical_language(x) for x in langs}:
            if lang == "cpp":
                for pch in self._pch.values():
                    if pch is not None:
                        pch.include_dir(wait=True)
            elif lang == "java":
                self.submit("java", "class PpocoderWarmUp {}").result()
            elif lang == "python" and self._pyservers is not None:
                self._pyservers.warm_up(self._pool)
                self._check_pyservers()
            elif lang in self._checkers:
                self._checkers[lang].warm_up(self._pool)
                self._check_checkers(lang)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._pool.shutdown(wait=True)
        self._finalizer()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- one job --------------------------------------------------------------------------------
    def _job_done(self, key: bytes, future: Future) -> None:
        """Keep the result, not the future (a future with its condition variable is ~2 KB);
        an infrastructure error is not kept at all: the next submit runs the job again."""
        failed = future.exception() is not None or future.result().infra_error
        with self._lock:
            if self._cache.get(key) is future:
                if failed:
                    del self._cache[key]
                else:
                    self._cache[key] = future.result()  # keeps its place in the LRU order

    def _job(self, lang: str, program: str, tests: harness.TestSpec | None, link: bool):
        worker = threading.get_ident()
        with self._lock:
            self._running[worker] = time.monotonic()
        try:
            result = self._execute(lang, program, tests, link)
        except Exception as err:  # our own failure: never scored as a bad program
            log.exception("execution job failed")
            result = make_result(
                Verdict.INFRA_ERROR, compiled=False, detail=f"{type(err).__name__}: {err}"
            )
        finally:
            with self._lock:
                duration = time.monotonic() - self._running.pop(worker)
                self._busy_done += duration
        if result.verdict is Verdict.INFRA_ERROR:
            with self._lock:
                self.stats["infra_errors"] += 1
        return replace(result, duration_s=duration)

    def _execute(self, lang, program, tests, link) -> ExecutionResult:
        spec = SPECS[lang]
        total = tests.total if tests else 0
        missing = missing_tools(spec)
        if missing:
            return make_result(
                Verdict.INFRA_ERROR,
                compiled=False,
                tests_total=total,
                detail=f"missing toolchain: {', '.join(missing)}",
            )
        if lang == "python" and len(program) <= _IN_PROCESS_PY_LIMIT:
            ok, detail = python_compiles(program)
            if not ok:
                return make_result(
                    Verdict.COMPILE_ERROR,
                    compiled=False,
                    tests_total=total,
                    detail=detail,
                    failure=_described(failures.compile_failure, detail, "python", program=program),
                )
            if tests is None:
                return make_result(Verdict.COMPILED, compiled=True)
            if tests.kind != "stdio" and self._pyservers is not None:
                # No job directory on the host: the server's job gets a private tmpfs.
                result = self._run_python_runner_in_server(program, spec.source_name, tests)
                if result is not None:
                    return result
        n = next(self._ids)
        work, io = self.root / f"job-{n}", self.root / f"job-{n}-io"
        work.mkdir()
        io.mkdir(mode=0o700)
        try:
            source = java_file_name(program) if lang == "java" else spec.source_name
            (work / source).write_bytes(program_bytes(program))
            main = None
            if lang != "python" or len(program) > _IN_PROCESS_PY_LIMIT:
                failed = self._compile(
                    spec, work, io, source, program, link or tests is not None, total
                )
                if failed is not None:
                    return failed
                if lang == "java" and (link or tests is not None):
                    main = java_main_class(program)
                    if main is None:
                        why = "link: no class declares static void main"
                        return make_result(
                            Verdict.COMPILE_ERROR,
                            compiled=False,
                            tests_total=total,
                            detail=why,
                            failure=_described(failures.compile_failure, why, lang),
                        )
            if tests is None:
                return make_result(Verdict.COMPILED, compiled=True)
            if tests.kind == "stdio":
                return self._run_stdio(spec, work, io, source, main, tests)
            return self._run_python_runner(work, io, source, tests)
        finally:
            sandbox.remove_tree(work)
            sandbox.remove_tree(io)

    # --- compile ----------------------------------------------------------------------------------
    def _compile(self, spec: Language, work, io, source, program, link, total):
        """None when it compiled, else the COMPILE_ERROR / INFRA_ERROR result."""
        job = CompileJob(spec, work, io, source, program, link, total, self.compile_timeout_s)
        for backend in self._compile_backends[spec.name]:
            outcome = backend.check(job)
            if outcome is not None:
                return None if outcome is COMPILED else outcome
        raise AssertionError("the per-job backend always decides")

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    @property
    def compile_servers(self) -> list[str]:
        """Languages whose compile checks go to persistent check servers (check_server.py)."""
        return sorted(self._checkers)

    def _check_checkers(self, lang: str) -> None:
        """A check server that cannot start at all: one process per program, said once."""
        pool = self._checkers.get(lang)
        if pool is not None and pool.broken:
            _say_once(f"{lang} compile checks run one sandboxed process per program: {pool.broken}")
            self._checkers.pop(lang, None)

    # --- tests ------------------------------------------------------------------------------------
    def _limits(self, spec: Language, wall_s: float) -> sandbox.Limits:
        return sandbox.Limits(
            wall_s=wall_s,
            memory_mb=spec.run_memory_mb,
            nproc=spec.nproc,
            output_bytes=self.output_bytes,
        )

    @property
    def python_server(self) -> bool:
        """Whether Python tests go to the persistent servers (else one interpreter per job)."""
        return self._pyservers is not None

    def _check_pyservers(self) -> None:
        """A server that cannot start at all: fall back to one interpreter per job, once.
        (The pool itself is closed with the executor: other threads may still hold servers.)"""
        pool = self._pyservers
        if pool is not None and pool.broken:
            _say_once(f"Python tests run one sandboxed interpreter per job: {pool.broken}")
            self._pyservers = None

    def _runner_input(self, tests, source) -> tuple[str, bytes, sandbox.Limits]:
        """The runner's nonce, its stdin (nonce line, then the job) and the job's limits."""
        nonce = secrets.token_hex(16)
        job = harness.runner_job(tests, source, self.timeout_s)
        stdin = (nonce + "\n" + json.dumps(job)).encode("utf-8")
        wall = min(self.timeout_s * (tests.total + 1) + 2.0, max(60.0, self.timeout_s + 2.0))
        return nonce, stdin, self._limits(SPECS["python"], wall)

    def _run_stdio(self, spec, work, io, source, main, tests) -> ExecutionResult:
        if spec.name == "python":
            cmd = [*self.python_argv, source]
        else:
            cmd = fill(spec.run_cmd, src=source, main=main or "Main")
        limits = self._limits(spec, self.timeout_s + _STARTUP_SLACK_S.get(spec.name, 0.0))
        judge = StdioJudge(spec, tests)
        for i, (given, expected) in enumerate(zip(tests.inputs, tests.outputs)):
            stdin = harness.as_text(given).encode("utf-8")
            out = sandbox.run_sandboxed(cmd, work, io, limits, stdin=stdin)
            if judge.add(i, given, expected, out):
                break
        return judge.result()

    def _run_python_runner_in_server(self, program, source, tests) -> ExecutionResult | None:
        """The runner on a Python server; None: run it with its own interpreter instead."""
        pool = self._pyservers
        if pool is None:
            return None
        nonce, stdin, limits = self._runner_input(tests, source)
        out = pool.run(program_bytes(program), source, stdin, limits, _python_job_env())
        if out is None:
            self._check_pyservers()  # the servers cannot be built here: said once
            return None
        return runner_result(out, nonce, tests)

    def _run_python_runner(self, work, io, source, tests) -> ExecutionResult:
        """The runner in its own sandboxed interpreter (python_server=False, or no servers)."""
        (work / harness.RUNNER_NAME).write_text(harness.RUNNER_SOURCE, encoding="utf-8")
        nonce, stdin, limits = self._runner_input(tests, source)
        cmd = [*self.python_argv, harness.RUNNER_NAME]
        out = sandbox.run_sandboxed(cmd, work, io, limits, stdin=stdin)
        return runner_result(out, nonce, tests)


def _job_key(lang: str, program: str, tests: dict | None, link: bool) -> bytes:
    """A fixed-size digest of everything a verdict depends on: the cache keeps neither the
    program nor the tests (a problem's tests can be megabytes, shared by all its samples)."""
    h = hashlib.blake2b(digest_size=20)
    for part in (lang, "1" if link else "0", json.dumps(tests, sort_keys=True), program):
        data = program_bytes(part)
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.digest()


def _python_job_env() -> dict[str, str]:
    """The environment a per-job runner sees (run_sandboxed's, plus what its bash marker
    exports), so that a program reading os.environ sees no difference on a server."""
    cwd = sandbox.SANDBOX_CWD
    return {
        "PATH": sandbox._PATH,
        "HOME": cwd,
        "TMPDIR": cwd,
        "LANG": "C.UTF-8",
        "PWD": cwd,
        "SHLVL": "0",
    }


def _cleanup(javac: JavacServerPool, pyservers, checkers, root: Path) -> None:
    javac.close()
    if pyservers is not None:
        pyservers.close()
    for pool in checkers:
        pool.close()
    sandbox.remove_tree(root)


_said: set[str] = set()


def _say_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        log.warning(message)
