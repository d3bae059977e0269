"""Exact resume of the real trainer: `ppocoder train --config tiny` (random tiny model, the real
reward pool running the embedded synthesis task's unit tests), for each model family, is
SIGKILLed at several points - while rewards run, while its first checkpoint is being written,
at a random moment from outside, during the update, while sampling - and the same command is
re-run each time until it finishes. Its final parameters, optimizer state, KL controller, RNG,
step and data position, and every iteration's logged metrics (wall-clock timings aside), must
equal an uninterrupted run's (within 1e-6; they are in fact bitwise equal on CPU). A
checkpoint being written when the kill came must never be resumed from. The T5 family runs
again with `train.overlap_rollouts=true`, whose checkpoints hold the batch sampled for the next
update (its rollout item), and the decoder family with `rollout.turns=2` (attempt, public-test
feedback, revision): the same kills, the same comparison.

Kills come from inside (PPOCODER_KILL_AT, see ppocoder_jax/faults.py: a SIGKILL at a
named phase of an iteration, after a random delay) and from outside (SIGKILL after some
metrics rows plus a random delay). Every run gets its own PYTHONHASHSEED. The runs share a
persistent JAX compilation cache, which only saves compile time. Slow (~2-3 min per family
on 2 cores): `-m slow`, run by CI (.ci/run).

Also: SIGTERM (preemption) checkpoints at the next safe point and exits 0; the re-run resumes.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
STEPS, SAVE_EVERY = 10, 3
TIMINGS = (
    "time_sample_s",
    "time_rewards_s",
    "time_feedback_s",
    "time_update_s",
    "reward_wait_frac",
    "reward_programs_per_s",
    "reward_busy_frac",
)


# rollout.turns=2: attempt, public-test feedback, revision (rollout/turns.py)
TWO_TURNS = (
    "rollout.turns=2",
    "data.max_source_length=128",
    "rollout.length_buckets=[16,32,64,128]",
)
# "<family>-lora": that family with LoRA adapters (the checkpoints hold adapters + value head)
LORA = ("model.lora.rank=4", "model.lora.alpha=8")


def _cmd(run_dir: Path, family: str, steps: int = STEPS, overlap: bool = False, extra=()):
    family, lora = family.removesuffix("-lora"), family.endswith("-lora")
    return [
        sys.executable, "-m", "ppocoder_jax", "train", "--config", "tiny",
        f"model.family={family}", f"train.steps={steps}", f"train.save_every={SAVE_EVERY}",
        "train.keep_checkpoints=2", "train.tensorboard=false", f"train.run_dir={run_dir}",
        f"train.overlap_rollouts={str(overlap).lower()}", *(LORA if lora else ()), *extra,
    ]  # fmt: skip


def _env(cache_dir: Path, kill_at: str = "", hash_seed: int = 0) -> dict:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env.pop("PPOCODER_KILL_AT", None)
    env.update(
        JAX_PLATFORMS="cpu",
        PYTHONHASHSEED=str(hash_seed),
        JAX_COMPILATION_CACHE_DIR=str(cache_dir),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    if kill_at:
        env["PPOCODER_KILL_AT"] = kill_at
    return env


def _ppo_rows(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("phase") == "ppo":
            rows.append(row)
    return rows


def _checkpoints(run_dir: Path) -> tuple[list[int], list[str]]:
    """(committed steps, leftover temporary directories) as Orbax leaves them on disk."""
    d = run_dir / "checkpoints"
    names = [p.name for p in d.iterdir()] if d.exists() else []
    return sorted(int(n) for n in names if n.isdigit()), sorted(n for n in names if "tmp" in n)


def _resumed_at(log: str) -> int | None:
    found = re.findall(r"resumed from \S+ at iteration (\d+)", log)
    assert len(found) <= 1, found
    return int(found[0]) if found else None


class Runs:
    def __init__(self, tmp_path, family: str, rng: random.Random, overlap=False, extra=()):
        self.tmp, self.family, self.rng, self.overlap = tmp_path, family, rng, overlap
        self.extra = extra
        self.cache = tmp_path.parent / "jax-cache"  # shared by the families and runs
        self.n = 0

    def start(self, run_dir: Path, kill_at: str = "", steps: int = STEPS):
        self.n += 1
        log = open(self.tmp / f"run{self.n}.log", "w+")  # noqa: SIM115
        env = _env(self.cache, kill_at, hash_seed=self.rng.randrange(1, 2**31))
        proc = subprocess.Popen(
            _cmd(run_dir, self.family, steps, self.overlap, self.extra),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
        return proc, log

    @staticmethod
    def finish(proc, log, timeout: float = 600) -> tuple[int, str]:
        code = proc.wait(timeout=timeout)
        log.seek(0)
        text = log.read()
        log.close()
        return code, text

    def run(self, run_dir: Path, kill_at: str = "", steps: int = STEPS) -> tuple[int, str]:
        return self.finish(*self.start(run_dir, kill_at, steps))


def _final(run_dir: Path):
    import orbax.checkpoint as ocp

    path = run_dir / "checkpoints" / str(STEPS)
    with ocp.StandardCheckpointer() as ck:
        state = ck.restore(path / "state")
    meta = json.loads((path / "meta" / "metadata").read_text())
    return state, meta


def _assert_same_state(got, ref):
    import jax

    flat_ref = jax.tree_util.tree_flatten_with_path(ref)[0]
    flat_got = jax.tree_util.tree_flatten_with_path(got)[0]
    assert [p for p, _ in flat_got] == [p for p, _ in flat_ref]
    for (path, x), (_, y) in zip(flat_got, flat_ref):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape, path
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6, err_msg=str(path))
        else:
            np.testing.assert_array_equal(x, y, err_msg=str(path))


def _assert_same_metrics(got: list[dict], ref: list[dict]):
    assert [r["step"] for r in ref] == list(range(1, STEPS + 1))
    assert [r["step"] for r in got] == list(range(1, STEPS + 1)), "one row per iteration"
    for g, r in zip(got, ref):
        assert g.keys() == r.keys()
        for key in r:
            if key in TIMINGS:
                continue
            if isinstance(r[key], float):
                assert g[key] == pytest.approx(r[key], rel=1e-6, abs=1e-6), (r["step"], key)
            else:
                assert g[key] == r[key], (r["step"], key)


@pytest.mark.slow
@pytest.mark.parametrize(
    "family, overlap, turns",
    [
        ("t5", False, 1),
        ("decoder", False, 1),
        ("t5", True, 1),
        ("decoder", False, 2),
        ("decoder-lora", False, 1),
    ],
    ids=["t5", "decoder", "t5-overlap", "decoder-2turns", "decoder-lora"],
)
def test_sigkill_anywhere_then_resume_equals_an_uninterrupted_run(tmp_path, family, overlap, turns):
    seed = random.randrange(2**31)
    rng = random.Random(seed)
    why = f"(family {family}, overlap {overlap}, turns {turns}, seed {seed}; logs in {tmp_path})"
    runs = Runs(tmp_path, family, rng, overlap, TWO_TURNS if turns == 2 else ())

    ref_dir = tmp_path / "uninterrupted"
    code, log = runs.run(ref_dir)
    assert code == 0, log[-3000:]
    ref_state, ref_meta = _final(ref_dir)
    ref_rows = _ppo_rows(ref_dir)

    run_dir = tmp_path / "killed"
    # (where, what the kill interrupts); each is later than where the run before can resume
    plan = [
        (f"rewards@2+{rng.uniform(0, 0.05):.3f}", "reward jobs"),  # before any checkpoint
        ("saved@3", "checkpoint 3 being written"),
        ("outside", "a random moment"),
        (f"update@8+{rng.uniform(0, 0.03):.3f}", "the PPO update"),
        (f"sample@10+{rng.uniform(0, 0.03):.3f}", "sampling"),
    ]
    history = []
    for kill_at, what in plan:
        committed, _ = _checkpoints(run_dir)
        if kill_at == "outside":
            proc, logf = runs.start(run_dir)
            deadline = time.time() + 600
            while len(_ppo_rows(run_dir)) < 4 and proc.poll() is None and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.3))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            code, log = runs.finish(proc, logf)
        else:
            code, log = runs.run(run_dir, kill_at)
        history.append((kill_at, code, _resumed_at(log), *_checkpoints(run_dir)))
        assert code == -signal.SIGKILL, (what, history, log[-3000:], why)
        # it resumed from the newest committed checkpoint, whatever was half-written
        assert _resumed_at(log) == (max(committed) if committed else None), (history, why)
        assert not (run_dir / "final_model").exists()

    code, log = runs.run(run_dir)
    history.append(("-", code, _resumed_at(log), *_checkpoints(run_dir)))
    assert code == 0, (history, log[-3000:], why)
    assert _resumed_at(log) is not None
    committed, leftovers = _checkpoints(run_dir)
    assert committed == [9, 10] and not leftovers, (history, why)
    assert (run_dir / "final_model").exists()

    if family.endswith("-lora"):
        assert (run_dir / "final_lora_adapter" / "adapter_model.safetensors").is_file()
    state, meta = _final(run_dir)
    if family.endswith("-lora"):  # only what trains is checkpointed; the base is not in it
        assert set(state["params"]) == {"lora", "value_head"}
    assert (
        meta["data_state"]
        == ref_meta["data_state"]
        == {
            "position": STEPS * 8,
            "iteration": STEPS,
        }
    )
    _assert_same_state(state, ref_state)
    _assert_same_metrics(_ppo_rows(run_dir), ref_rows)
    # with overlap every update but the first learned from a batch sampled one update earlier,
    # the resumed ones too (rollout_lag is compared above): checkpoints 3, 6, 9 held that batch
    lags = [0] + [int(overlap)] * (STEPS - 1)
    assert [r["rollout_lag"] for r in ref_rows] == lags, why
    print(why, history)


@pytest.mark.slow
def test_sigterm_checkpoints_at_the_next_safe_point_and_exits_0(tmp_path):
    runs = Runs(tmp_path, "t5", random.Random(0))
    run_dir = tmp_path / "run"
    steps = 30
    proc, logf = runs.start(run_dir, steps=steps)
    deadline = time.time() + 600
    while len(_ppo_rows(run_dir)) < 4 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "finished before the signal"
    proc.send_signal(signal.SIGTERM)
    sent = time.time()
    code, log = runs.finish(proc, logf, timeout=120)
    took = time.time() - sent
    assert code == 0, log[-3000:]
    assert took < 60, took
    reached = len(_ppo_rows(run_dir))
    assert 4 <= reached < steps
    committed, leftovers = _checkpoints(run_dir)
    # a checkpoint at exactly the iteration reached, fully written
    assert committed[-1] == reached and not leftovers, (committed, reached)
    assert "preempted (SIGTERM): checkpoint at iteration" in log
    assert not (run_dir / "final_model").exists()

    # the same command resumes there and finishes
    code, log = runs.run(run_dir, steps=steps)
    assert code == 0, log[-3000:]
    assert _resumed_at(log) == reached
    assert [r["step"] for r in _ppo_rows(run_dir)] == list(range(1, steps + 1))
    assert (run_dir / "final_model").exists()


@pytest.mark.slow
def test_lora_resume_with_other_adapters_is_one_line(tmp_path):
    """A run's checkpoints hold rank-4 adapters: resuming it with another rank is exit 2 with
    one line naming the checkpoint, not a traceback."""
    runs = Runs(tmp_path, "decoder-lora", random.Random(0))
    run_dir = tmp_path / "run"
    code, log = runs.run(run_dir, steps=SAVE_EVERY)
    assert code == 0, log[-3000:]
    cmd = _cmd(run_dir, "decoder-lora", STEPS) + ["model.lora.rank=8"]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(runs.cache), capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr[-3000:]
    # Orbax's reader threads may still print tracebacks around it ("Exception ignored in
    # <coroutine ...>", "Event loop is closed"), even mid-line before it: the line is ours
    # from its "ppocoder train: error:" on, written in one piece, and there is one
    errors = [line for line in proc.stderr.splitlines() if "ppocoder train: error:" in line]
    assert len(errors) == 1, proc.stderr[-3000:]
    error = errors[0][errors[0].index("ppocoder train: error:") :]
    assert "does not fit this configuration" in error and "checkpoints" in error
    assert "_check_closed" not in error and "Traceback" not in error
