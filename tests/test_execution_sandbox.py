"""Sandbox plumbing: infrastructure failures are flagged (never scored), the javac server
recovers from a timeout, limits apply, and job directories are private and removed."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from ppocoder_jax.rewards.execution import Executor, Verdict, sandbox, sandbox_info


def _dirs(tmp_path: Path):
    work, io = tmp_path / "work", tmp_path / "io"
    work.mkdir()
    io.mkdir()
    return work, io


@pytest.mark.skipif(sandbox_info().mode != "bwrap", reason="needs bubblewrap")
def test_sandbox_start_failure_is_not_a_program_failure(tmp_path):
    work, io = _dirs(tmp_path)
    out = sandbox.run_sandboxed(
        ["/bin/true"], work, io, sandbox.Limits(wall_s=5), extra_ro_binds=("/nonexistent/dir",)
    )
    assert not out.started and "sandbox failed to start" in out.infra_detail


def test_limits_and_clean_exit(tmp_path):
    work, io = _dirs(tmp_path)
    limits = sandbox.Limits(wall_s=5, output_bytes=1000)
    out = sandbox.run_sandboxed(["/bin/sh", "-c", "yes | head -c 5000"], work, io, limits)
    assert out.started and out.output_limited and len(out.stdout) == 1000
    out = sandbox.run_sandboxed(
        ["/bin/sh", "-c", "cat; echo err >&2; exit 3"], work, io, limits, stdin=b"hello"
    )
    assert (out.returncode, out.stdout, out.stderr, out.timed_out) == (3, b"hello", b"err\n", False)
    out = sandbox.run_sandboxed(["/bin/sleep", "60"], work, io, sandbox.Limits(wall_s=0.5))
    assert out.timed_out and out.returncode is None
    out = sandbox.run_sandboxed(
        ["/bin/sh", "-c", "grep processes /proc/self/limits"],
        work,
        io,
        sandbox.Limits(wall_s=5, nproc=7),
    )
    assert out.stdout.split()[2:4] == [b"7", b"7"]


def test_environment_is_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("PPOCODER_SANDBOX_SECRET", "s3cret")
    work, io = _dirs(tmp_path)
    out = sandbox.run_sandboxed(["/usr/bin/env"], work, io, sandbox.Limits(wall_s=5))
    names = {line.split(b"=", 1)[0] for line in out.stdout.splitlines()}
    assert b"PPOCODER_SANDBOX_SECRET" not in names
    assert names <= {b"PATH", b"HOME", b"TMPDIR", b"LANG", b"PWD", b"SHLVL", b"_"}


@pytest.mark.skipif(shutil.which("javac") is None, reason="javac not installed")
def test_javac_server_timeout_then_recovers():
    with Executor(workers=1, compile_timeout_s=60.0) as ex:
        assert (
            ex.submit("java", "class A { int f() { return 1; } }").result().verdict
            is Verdict.COMPILED
        )
        ex.compile_timeout_s = 0.001  # every compile now overruns: the server is killed
        r = ex.submit("java", "class B { int f() { return 2; } }").result()
        assert r.verdict is Verdict.COMPILE_ERROR and "exceeded" in r.detail
        ex.compile_timeout_s = 60.0  # a fresh server starts and the next job is unaffected
        assert (
            ex.submit("java", "class C { int f() { return 3; } }").result().verdict
            is Verdict.COMPILED
        )
        assert (
            ex.submit("java", "class D { int f() { return 3 } }").result().verdict
            is Verdict.COMPILE_ERROR
        )


def test_job_directories_removed_and_executor_closed():
    ex = Executor(workers=2)
    results = ex.run_many(
        [("python", f"print({i})\n", {"inputs": [""], "outputs": [str(i)]}) for i in range(6)]
    )
    assert [r.verdict for r in results] == [Verdict.PASS] * 6
    assert not [p for p in ex.root.iterdir() if p.name.startswith("job-")]
    ex.close()
    assert not ex.root.exists()
    with pytest.raises(RuntimeError, match="closed"):
        ex.submit("python", "x = 1\n")


def test_submit_from_many_threads():
    with Executor(workers=2) as ex:
        results = {}

        def worker(k):
            results[k] = ex.submit("python", f"def f{k}():\n    return {k}\n").result()

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(r.verdict is Verdict.COMPILED for r in results.values()) and len(results) == 16


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown language"):
        Executor(workers=1).submit("cobol", "x")
    with pytest.raises(ValueError, match="timeouts"):
        Executor(timeout_s=0)


@pytest.mark.parametrize("python_site", [False, True])
def test_python_programs_see_the_standard_library_only_unless_asked(python_site):
    """Default `-I -S`: this environment's packages (numpy comes with jax) are not importable."""
    tests = {"test_code": "assert f() == 3"}
    uses_stdlib = "import json, re, collections\ndef f():\n    return len(json.loads('[1,2,3]'))\n"
    uses_numpy = "import numpy\ndef f():\n    return int(numpy.arange(3).size)\n"
    with Executor(workers=1, timeout_s=10.0, python_site=python_site) as ex:
        stdlib, numpy = ex.run_many([("python", uses_stdlib, tests), ("python", uses_numpy, tests)])
        stdio = ex.run_many(
            [("python", "import sys\nimport numpy\nprint(1)\n", {"inputs": [""], "outputs": ["1"]})]
        )[0]
    assert stdlib.verdict is Verdict.PASS
    expected = Verdict.PASS if python_site else Verdict.RUNTIME_ERROR
    assert numpy.verdict is expected, numpy.detail
    assert stdio.verdict is expected, stdio.detail
    if not python_site:
        assert "No module named 'numpy'" in numpy.detail
