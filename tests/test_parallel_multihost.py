"""Two real processes (jax.distributed, gloo CPU collectives), 2 fake devices each, a mesh
spanning both (fsdp=2 x tensor=2), each process holding only its own rows of the rollout batch:
one train step and a multi-host Orbax save/restore must match the single-device run."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
HELPER = ROOT / "tests" / "helpers" / "multihost_run.py"


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    return env


@pytest.mark.slow
def test_two_process_step_and_checkpoint_match_single_device(tmp_path):
    port = str(_free_port())
    (tmp_path / "multi").mkdir()
    (tmp_path / "single").mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, str(HELPER), str(i), "2", port, str(tmp_path / "multi")],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    single = subprocess.run(
        [sys.executable, str(HELPER), "0", "1", "0", str(tmp_path / "single")],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-4000:]
    assert single.returncode == 0, single.stderr[-4000:]
    assert "process 0: rows 0:8 ok" in outs[0] and "process 1: rows 8:16 ok" in outs[1]
    multi = np.load(tmp_path / "multi" / "result.npz")
    ref = np.load(tmp_path / "single" / "result.npz")
    assert sorted(multi.files) == sorted(ref.files)
    for k in multi.files:
        if k == "rows":
            continue
        got, want = multi[k], ref[k]
        if k.startswith("grad") or ".opt_state" in k:  # summation order: relative to scale
            tol = 1e-5 * np.max(np.abs(want))
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=tol, err_msg=k)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=0, err_msg=k)
    # the multi-host checkpoint restores exactly what was saved
    restored = [k for k in multi.files if k.startswith("restored")]
    assert any(".params" in k for k in restored) and any(".opt_state" in k for k in restored)
    for k in restored:
        if ".params" in k:
            np.testing.assert_array_equal(multi[k], multi["param" + k.split(".params", 1)[1]])
