"""Pieces of preemption and resume that need no trainer: the SIGTERM guard (a second SIGTERM
and SIGINT keep their old behaviour), the metrics rewind of a resumed run, the fault-injection
spec. The trainer itself is killed and SIGTERMed in tests/test_trainer_resume.py."""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest

from ppocoder_jax import faults
from ppocoder_jax.pipeline.preemption import PreemptionGuard
from ppocoder_jax.pipeline.run_dir import MetricsLogger, read_metrics


def test_first_sigterm_is_a_request_the_second_is_the_old_handler():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda *a: seen.append("old"))
    sigint = signal.getsignal(signal.SIGINT)
    try:
        with PreemptionGuard() as guard:
            assert not guard() and signal.getsignal(signal.SIGINT) is sigint
            os.kill(os.getpid(), signal.SIGTERM)
            assert guard() and seen == []
            os.kill(os.getpid(), signal.SIGTERM)  # the handler from before the guard
            assert seen == ["old"] and guard()
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == ["old", "old"]
        with PreemptionGuard() as guard:  # nothing received: the old handler comes back
            pass
        assert not guard()
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == ["old"] * 3
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_guard_does_nothing_outside_the_main_thread():
    before = signal.getsignal(signal.SIGTERM)
    out = {}

    def body():
        with PreemptionGuard() as guard:
            out["handler"] = signal.getsignal(signal.SIGTERM)
            out["requested"] = guard()

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert out == {"handler": before, "requested": False}
    assert signal.getsignal(signal.SIGTERM) is before


def test_rewind_drops_rows_after_the_checkpoint_and_partial_lines(tmp_path):
    logger = MetricsLogger(tmp_path)
    logger.log("sft", 5, {"loss": 1.0})
    for step in (1, 2, 3, 4):
        logger.log("ppo", step, {"score": float(step)})
    logger.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"phase": "ppo", "step": 5, "sc')  # a write the kill cut short
    logger = MetricsLogger(tmp_path)
    assert logger.rewind("ppo", 2) == 3
    logger.log("ppo", 3, {"score": 30.0})
    logger.close()
    rows = read_metrics(tmp_path)
    assert [(r["phase"], r["step"]) for r in rows] == [
        ("sft", 5), ("ppo", 1), ("ppo", 2), ("ppo", 3),
    ]  # fmt: skip
    assert rows[-1]["score"] == 30.0
    logger = MetricsLogger(tmp_path)
    assert logger.rewind("ppo", 3) == 0  # nothing to drop: the file is left alone
    logger.close()
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 3


def test_kill_spec():
    assert faults._parse("rewards@2+0.05, saved@3") == {("rewards", 2): 0.05, ("saved", 3): 0.0}
    assert faults._parse("") == {}
    with pytest.raises(ValueError, match="PPOCODER_KILL_AT"):
        faults._parse("lunch@2")
    faults.point("sample", 1)  # nothing armed in this process: a no-op
