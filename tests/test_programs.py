"""The programs that run inside the sandbox (rewards/execution/programs/) are package data
files; each must pass its own toolchain's check, so a broken edit fails here rather than as a
server that never starts (which would only fall back to the per-job path, said in a log)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ppocoder_jax.rewards.execution import (
    csharp_server,
    harness,
    java_server,
    js_server,
    php_server,
    programs,
)

PROGRAMS = Path(programs.__file__).parent


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")


def test_every_program_file_is_package_data_and_used():
    files = sorted(p.name for p in PROGRAMS.iterdir() if p.is_file() and p.name != "__init__.py")
    assert files == [
        "PpocoderJavacServer.java",
        "PpocoderMcsServer.cs",
        "js_check_server.js",
        "php_check_server.php",
        "python_runner.py",
    ]
    assert js_server.SERVER_SOURCE == programs.source("js_check_server.js")
    assert php_server.SERVER_SOURCE == programs.source("php_check_server.php")
    assert csharp_server.SERVER_SOURCE == programs.source("PpocoderMcsServer.cs")
    assert java_server.SERVER_SOURCE == programs.source("PpocoderJavacServer.java")
    assert harness.RUNNER_SOURCE == programs.source("python_runner.py") + "main()\n"
    setup = (Path(__file__).parents[1] / "setup.cfg").read_text()
    assert "rewards/execution/programs/*" in setup


@pytest.mark.toolchain
def test_javac_server_compiles(tmp_path):
    _need("javac")
    shutil.copy(PROGRAMS / "PpocoderJavacServer.java", tmp_path)
    out = _run(["javac", "-d", str(tmp_path), "PpocoderJavacServer.java"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "PpocoderJavacServer.class").exists()


@pytest.mark.toolchain
def test_csharp_server_compiles(tmp_path):
    _need("mcs")
    shutil.copy(PROGRAMS / "PpocoderMcsServer.cs", tmp_path)
    out = _run(["mcs", "-out:server.exe", "PpocoderMcsServer.cs"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "server.exe").exists()


@pytest.mark.toolchain
def test_js_server_parses():
    _need("node")
    out = _run(["node", "--check", str(PROGRAMS / "js_check_server.js")], PROGRAMS)
    assert out.returncode == 0, out.stderr


@pytest.mark.toolchain
def test_php_server_lints(tmp_path):
    _need("php")
    # The server runs with `php -r` (no open tag); `php -l` needs one to parse it as PHP.
    lint_copy = tmp_path / "server.php"
    lint_copy.write_text("<?php\n" + programs.source("php_check_server.php"))
    out = _run(["php", "-n", "-l", str(lint_copy)], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_python_runner_compiles_and_lints():
    compile(programs.source("python_runner.py"), "python_runner.py", "exec", dont_inherit=True)
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff not installed")
    runner = str(PROGRAMS / "python_runner.py")
    for cmd in ([ruff, "check", runner], [ruff, "format", "--check", runner]):
        out = _run(cmd, PROGRAMS)
        assert out.returncode == 0, out.stdout + out.stderr
