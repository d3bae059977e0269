"""The benchmark scripts still run (tiny sizes): the README's numbers come from them, so they
must not rot when the code they time changes. Speed is not judged here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers.tiny_models import TINY_MODEL_OVERRIDES

REPO = Path(__file__).resolve().parent.parent


def _run(script: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.parametrize("family", ["t5", "decoder"])
def test_bench_rollout_small(family):
    pytest.importorskip("torch")
    out = _run(
        "bench_rollout.py", "--family", family, "--small", "--batch", "8", "--new-tokens", "16",
        "--repeats", "1", "--dtypes", "float32", "--hf-dtypes", "float32",
    )  # fmt: skip
    assert f"# model: family {family}," in out
    assert "| 8 | hf-float32 |" in out and "| 8 | ours-float32 |" in out


def test_bench_ppo_step_quick():
    pytest.importorskip("torch")
    out = _run("bench_ppo_step.py", "--quick")
    for side in ("torch-authors", "jax-default", "jax-reference"):
        assert side in out
    assert "floor 5x samples/s" in out
    assert "best matmul rate on the model's shapes" in out and "GFLOP/iter" in out


def test_bench_rewards_python():
    out = _run("bench_rewards.py", "--langs", "python", "--n", "4")
    assert "python" in out and "x" in out.splitlines()[-1]


def test_bench_rewards_check_servers():
    """The compile check servers against the per-job path and the authors' way (the verdicts
    of ours and the per-job path must agree)."""
    out = _run("bench_rewards.py", "--langs", "javascript,php", "--n", "4", "--rounds", "2")
    rows = [line.split() for line in out.splitlines() if line.startswith(("javascript", "php"))]
    for row in rows:
        assert row[-2] == "4/4" or row[1] == "skipped:", row


def test_bench_rewards_unit_tests_and_breakdown():
    out = _run("bench_rewards.py", "--unit-tests", "--n", "4", "--rounds", "1")
    assert "verdicts agree 4/4" in out and "x;" in out.splitlines()[-1]
    out = _run("bench_rewards.py", "--breakdown", "--n", "2")
    assert "interpreter start" in out and "runner + tests" in out


def test_bench_model_decode_tiny():
    out = _run(
        "bench_model_decode.py", "--d-model", "32", "--layers", "1", "--heads", "2",
        "--vocab", "100", "--batch", "2", "--prompt", "8", "--new", "8", "--repeats", "1",
    )  # fmt: skip
    assert "identical greedy tokens: True" in out


def test_bench_memory_two_iterations(tmp_path):
    out = _run("bench_memory.py", "--iters", "2", "--out", str(tmp_path / "run"))
    assert "| 2 |" in out and "peak RSS" in out
    assert (tmp_path / "run" / "rss.json").exists()


def test_bench_overlap_tiny(tmp_path):
    import json

    out_json = tmp_path / "overlap.json"
    _run(
        "bench_overlap.py", "--iters", "3", "--warmup", "1", "--rounds", "1",
        "--json", str(out_json), *TINY_MODEL_OVERRIDES, "train.batch_size=2",
        "rollout.num_samples=2", "ppo.num_minibatches=1",
    )  # fmt: skip
    data = json.loads(out_json.read_text())
    assert [r["mode"] for r in data["runs"]] == ["sync", "overlap"]
    assert [r["rollout_lag"] for r in data["runs"]] == [[0, 0], [1, 1]]
    assert data["summary"]["speedup"] > 0


def test_bench_grpo_step_quick():
    pytest.importorskip("torch")
    pytest.importorskip("trl")
    out = _run("bench_grpo_step.py", "--quick")
    table = {
        line.split()[0]: line for line in out.splitlines() if line.startswith(("ours ", "trl "))
    }
    for side in ("ours", "trl"):  # every completion exactly --new-tokens (16) long
        assert " 16-16 " in table[side], out
    assert "floor 1.5x TRL's samples/s" in out
    assert "GFLOP/iter" in out and "best matmul rate on the model's shapes" in out


def test_bench_reward_servers_small():
    out = _run("bench_reward_servers.py", "--n", "6", "--rounds", "1", "--workers", "1")
    assert "remote / local:" in out and "problems/s" in out
