"""Exact resume after SIGKILL, for real: a toy PPO run in a subprocess is killed at a random
point after a checkpoint landed, resumed, and must end with the parameters, optimizer state,
KL controller, RNG and step of a run that was never interrupted (CPU: within 1e-6)."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "helpers" / "ppo_toy_train.py"
ARGS = ["--iters", "12", "--save-every", "3", "--seed", "3"]


def _env():
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("XLA_FLAGS", None)
    return env


def _run(run_dir, out, tmp_path, extra=()):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(run_dir), "--out", str(out), *ARGS, *extra],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout.splitlines()


def test_sigkill_and_resume_matches_uninterrupted(tmp_path):
    # 1) the reference: never interrupted
    ref_out = tmp_path / "ref.npz"
    lines = _run(tmp_path / "ref", ref_out, tmp_path)
    assert lines[-1] == "done" and "saved 12" in lines

    # 2) the same run, slowed down, SIGKILLed at a random moment after the first save
    run_dir, out = tmp_path / "killed", tmp_path / "killed.npz"
    delay = random.uniform(0.0, 1.5)
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), str(run_dir), "--out", str(out), *ARGS, "--delay", "0.4"],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        seen = []
        for line in proc.stdout:
            seen.append(line.strip())
            if line.startswith("saved"):
                break
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=60)
    seen += rest.splitlines()
    assert proc.returncode == -signal.SIGKILL, (seen, delay)
    assert "done" not in seen, f"run finished before the kill (delay {delay:.2f}s)"
    last_saved = max(int(s.split()[1]) for s in seen if s.startswith("saved"))
    assert not out.exists()

    # 3) resume: it restarts from a checkpoint at least as new as the last confirmed save
    lines = _run(run_dir, out, tmp_path)
    resumed = [s for s in lines if s.startswith("resumed")]
    assert len(resumed) == 1, lines
    step, position = int(resumed[0].split()[1]), int(resumed[0].split()[3])
    assert step >= last_saved and step % 3 == 0 and position == step, (resumed, seen, delay)
    assert lines[-1] == "done"

    ref, got = np.load(ref_out), np.load(out)
    assert sorted(ref.files) == sorted(got.files)
    assert any("opt_state" in k for k in ref.files) and any(".kl" in k for k in ref.files)
    for k in ref.files:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-6, atol=0, err_msg=f"{k} {delay}")
    # keep-N: only the newest keep_checkpoints (3) survive, no temporary directories left
    kept = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert kept == ["12", "6", "9"], kept
