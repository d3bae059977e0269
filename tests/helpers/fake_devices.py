"""Run a script of this folder in a fresh Python that sees several fake CPU devices.

XLA's host device count has to be set before jax is imported, so a test that needs a mesh of
several devices runs its helper script in a subprocess:

    proc = run_on_fake_devices("sharded_step_run.py", out_path, 2, "t5")   # 8 CPU devices

It runs from the repository root with XLA_FLAGS / JAX_PLATFORMS=cpu set, asserts the exit
status 0 (showing the end of stderr otherwise) and returns the CompletedProcess (text output).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HELPERS = Path(__file__).resolve().parent
ROOT = HELPERS.parent.parent


def run_on_fake_devices(
    script: str, *args, devices: int = 8, timeout: float = 600
) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, str(HELPERS / script), *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc
