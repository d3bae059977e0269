"""Bounded memory over long runs: the execution result cache and the matching program caches
are LRU with a cap (reward.cache_size, reward.match_cache_size), under the reward pool's
threads, and their hits still hit."""

from __future__ import annotations

import threading

import pytest

from ppocoder_jax.config import RewardConfig
from ppocoder_jax.data import Example
from ppocoder_jax.rewards.composite import CompositeReward
from ppocoder_jax.rewards.execution import Executor
from ppocoder_jax.rewards.matching import _match_module as matching

REFERENCE = "def f(x):\n    y = x + 1\n    return y\n"


def _example() -> Example:
    return Example(
        id="e", prompt="p", target=REFERENCE, lang="python", tests=None, context_prefix=""
    )


def _program(i: int) -> str:
    return f"def f(x):\n    y = x + {i}\n    return y * {i % 7}\n"


@pytest.fixture
def restore_match_cache_size():
    before = matching.cache_size()
    yield
    matching.set_cache_size(before)


def test_streaming_thousands_of_programs_keeps_the_caches_at_their_caps(
    restore_match_cache_size,
):
    cap, match_cap, n, batch = 400, 64, 6000, 300
    cfg = RewardConfig(
        compile_weight=1.0,
        ast_weight=1.0,
        dfg_weight=1.0,
        workers=2,
        cache_size=cap,
        match_cache_size=match_cap,
    )
    with CompositeReward(cfg) as reward:
        ex = reward.executor
        first = None
        for start in range(0, n, batch):
            outs = [_program(i) for i in range(start, start + batch)]
            parts = reward.score([_example()] * batch, outs)
            assert all(p.compiled and not p.masked for p in parts)
            first = first or parts
            assert ex.cache_len() <= cap
            assert all(size <= match_cap for size in matching.cache_lengths())
        assert ex.cache_len() == cap
        assert ex.stats["submitted"] == n and ex.stats["cache_hits"] == 0
        assert ex.stats["cache_evictions"] == n - cap
        assert max(matching.cache_lengths()) == match_cap

        # The newest programs are still cached: submitting them again is all hits ...
        recent = [_program(i) for i in range(n - 100, n)]
        again = reward.score([_example()] * 100, recent)
        assert ex.stats["cache_hits"] == 100 and ex.cache_len() == cap
        # ... and the oldest were evicted: they run again, to the same results.
        old = reward.score([_example()] * batch, [_program(i) for i in range(batch)])
        assert ex.stats["cache_hits"] == 100
        assert old == first
        assert all(p.compiled for p in again)


def test_concurrent_submitters_share_in_flight_jobs_and_respect_the_cap():
    with Executor(workers=2, cache_size=50) as ex:
        # the same job submitted again while it runs is the same future (in-flight
        # de-duplication); once done, the cache holds its result, not the future
        gate = threading.Event()
        real_job = ex._job
        ex._job = lambda *args: (gate.wait(30), real_job(*args))[1]
        a = ex.submit("python", "x = 1\n")
        b = ex.submit("python", "x = 1\n")
        assert a is b and not a.done() and ex.stats["cache_hits"] == 1
        gate.set()
        assert a.result().compiled
        ex._job = real_job
        c = ex.submit("python", "x = 1\n")
        assert c is not a and c.done() and c.result() == a.result()
        assert ex.stats["cache_hits"] == 2
        errors: list[BaseException] = []

        def stream(offset: int) -> None:
            try:
                futures = [ex.submit("python", f"y = {offset + i % 300}\n") for i in range(1500)]
                assert all(f.result().compiled for f in futures)
            except BaseException as err:  # noqa: BLE001 - reported below
                errors.append(err)

        threads = [threading.Thread(target=stream, args=(k * 100,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert ex.cache_len() == 50
        assert ex.stats["submitted"] == 3 + 6 * 1500
        assert ex.stats["cache_hits"] > 2  # overlapping streams hit each other's jobs


def test_cache_size_zero_turns_the_cache_off():
    with Executor(workers=1, cache_size=0) as ex:
        a = ex.submit("python", "x = 1\n")
        b = ex.submit("python", "x = 1\n")
        assert a is not b and a.result().verdict == b.result().verdict
        assert ex.cache_len() == 0 and ex.stats["cache_hits"] == 0
    with pytest.raises(ValueError, match="cache_size"):
        Executor(workers=1, cache_size=-1)


def test_config_keys():
    from ppocoder_jax.config import load_config
    from ppocoder_jax.errors import UserError

    cfg = load_config(None, ["reward.cache_size=10", "reward.match_cache_size=0"])
    assert cfg.reward.cache_size == 10 and cfg.reward.match_cache_size == 0
    assert RewardConfig().cache_size == 50_000
    with pytest.raises(UserError, match="reward.cache_size"):
        load_config(None, ["reward.cache_size=-1"])


def test_infrastructure_errors_are_not_cached():
    from ppocoder_jax.rewards.execution.verdicts import Verdict, make_result

    with Executor(workers=1, cache_size=10) as ex:
        calls = []

        def broken(*args):
            calls.append(args)
            return make_result(Verdict.INFRA_ERROR, compiled=False, detail="sandbox down")

        ex._execute = broken
        assert ex.submit("python", "x = 1\n").result().infra_error
        assert ex.submit("python", "x = 1\n").result().infra_error
        assert len(calls) == 2 and ex.cache_len() == 0


def test_a_cache_made_before_a_resize_is_not_counted(restore_match_cache_size):
    """An idle thread keeps its old cache until it next matches; it is not a current cache (in
    CI's xdist workers earlier tests' threads held such caches, above a later test's cap)."""
    matching.set_cache_size(1024)
    for i in range(100):
        matching.match(_program(i), REFERENCE, "python")
    assert max(matching.cache_lengths()) >= 100
    matching.set_cache_size(64)
    assert all(n <= 64 for n in matching.cache_lengths())
    matching.match(_program(0), REFERENCE, "python")  # this thread starts a fresh cache
    assert 2 in matching.cache_lengths()  # the candidate and the reference
