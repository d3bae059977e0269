"""Reward throughput in every PPO iteration's log: programs scored per second and the reward
pool's busy fraction (the Executor's workers' job seconds over workers x the scoring window),
beside reward_wait_frac. Where they are drawn: test_plot.py; logged by a real run:
test_overlap_rollouts.py (the demo end to end)."""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from types import SimpleNamespace

import pytest

from ppocoder_jax.rollout.scoring import Scoring, ThroughputMeter


def test_executor_busy_seconds_count_running_and_finished_jobs():
    from ppocoder_jax.rewards.execution import Executor

    with Executor(workers=2) as ex:
        before = ex.busy_seconds()
        programs = [f"import time\ntime.sleep(0.6)\nx = {i}\n" for i in range(2)]
        futures = [ex.submit("python", p, tests={"test_code": "assert x >= 0"}) for p in programs]
        time.sleep(0.3)
        running = ex.busy_seconds() - before
        results = [f.result() for f in futures]
        assert all(r.verdict.name == "PASS" for r in results), results
        after = ex.busy_seconds()
        # both jobs were counted while they ran, and exactly their durations once done
        assert 0.0 < running < sum(r.duration_s for r in results)
        assert after - before == pytest.approx(sum(r.duration_s for r in results), abs=1e-6)
        assert 2 * 0.6 <= after - before
        ex.submit("python", programs[0], tests={"test_code": "assert x >= 0"}).result()
        assert ex.busy_seconds() == after  # a cache hit costs the workers nothing


def test_scoring_is_timed_from_hand_over_to_the_last_result():
    clock = {"busy": 1.0}
    futures = [cf.Future() for _ in range(3)]
    scoring = Scoring(futures, lambda: clock["busy"])
    t_submitted, busy_submitted = scoring.submitted
    assert busy_submitted == 1.0 and scoring.done is None

    def finish():
        for i, f in enumerate(futures):
            time.sleep(0.05)
            clock["busy"] = 2.0 + i
            f.set_result(i)

    worker = threading.Thread(target=finish)
    worker.start()
    assert scoring.results() == [0, 1, 2]
    worker.join()
    t_done, busy_done = scoring.done
    assert t_done - t_submitted >= 0.15 and busy_done == 4.0
    empty = Scoring([], lambda: 7.0)  # nothing to score: done at once
    assert empty.results() == [] and empty.done[1] == 7.0


def test_throughput_window_starts_when_the_batch_before_was_done():
    """Batches are scored in order: a batch handed over while the one before is still scored
    (train.overlap_rollouts) is timed from that one's end."""
    meter = ThroughputMeter(workers=2)
    a = SimpleNamespace(futures=[None] * 8, submitted=(10.0, 0.0), done=(12.0, 3.0))
    assert meter.measure(a) == (8 / 2.0, 3.0 / (2 * 2.0))
    b = SimpleNamespace(futures=[None] * 8, submitted=(11.0, 1.0), done=(16.0, 7.0))
    assert meter.measure(b) == (8 / 4.0, (7.0 - 3.0) / (2 * 4.0))
    c = SimpleNamespace(futures=[None] * 4, submitted=(20.0, 7.0), done=(21.0, 8.0))
    assert meter.measure(c) == (4 / 1.0, 1.0 / 2)  # the one before ended earlier
