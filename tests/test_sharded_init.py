"""Sharded from the first byte: the real PPOTrainer on 8 fake CPU devices (mesh fsdp=8), both
model families. Each device holds 1/8 of the train state (parameters, Adam moments) and of the
frozen reference, plus the few small replicated leaves (<2%), whether the run starts fresh (a
random tiny model, or a Hugging Face directory) or resumes from an Orbax checkpoint; the Adam
state is only ever built inside a jit with out_shardings (never eagerly on whole arrays); no
other array is left on any device; the reference shares no buffer with the policy and outlives
its donated buffers. The device count must be set before jax is imported, hence the
subprocess (tests/helpers/sharded_init_run.py asserts; this checks its report)."""

import json

import pytest
from helpers.fake_devices import run_on_fake_devices


@pytest.mark.parametrize("family", ["t5", "decoder"])
def test_state_and_reference_are_created_sharded(tmp_path, family):
    proc = run_on_fake_devices("sharded_init_run.py", tmp_path, family)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for what in ("state", "reference", "resumed_state", "hf_state"):
        r = report[what]
        # per device: an eighth of the sharded bytes plus the replicated ones, nothing more
        assert r["per_device"] <= (r["total"] - r["replicated"]) / 8 * 1.01 + r["replicated"]
        assert r["replicated"] <= 0.02 * r["total"]
    # the state is parameters + two Adam moments (+ counters): three times the parameters
    assert 3 * report["params"]["total"] <= report["state"]["total"]
    assert report["state"]["total"] < 3 * report["params"]["total"] + 1024
