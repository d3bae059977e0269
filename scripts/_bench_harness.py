"""The turn-taking worker harness of the side-by-side benchmarks (bench_ppo_step.py,
bench_grpo_step.py).

Each side runs in its own worker subprocess (the benchmark script again, with `--worker SIDE`),
so memory does not mix. The driver starts the workers one at a time (set-up and compiles do not
overlap); a worker sets up, runs one warm-up iteration and prints `READY {json}`. Then the sides
take turns one iteration at a time (A B C A B C ...): the driver writes `iter` to a worker's
stdin and reads its `RESULT {json}`; any other line (or the end of stdin) ends the worker. A
worker's other output is passed through prefixed with `[side]`. The scripts report medians.

Memory: before each iteration a worker resets the kernel's peak-RSS counter (writes 5 to
/proc/self/clear_refs) and reads VmHWM after it: the peak resident set *of that iteration*.

Scripts import this as a sibling (`import _bench_harness as harness`: a script's own directory
is first on sys.path), as scripts/paper/*.py import `_common`. Only the standard library at
import time: a worker may run under another Python (bench_grpo_step.py's tunix side).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# ---------------------------------------------------------------------------------------------
# memory


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Resets the kernel's peak-RSS counter; False where it cannot (then the peak read after an
    iteration is the process's lifetime peak)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    hwm = _status_kib("VmHWM")
    if hwm is None:  # not Linux: the lifetime peak
        import resource

        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if sys.platform == "darwin":
            hwm //= 1024
    return hwm / 1024


def rss_mib() -> float:
    rss = _status_kib("VmRSS")
    return -1.0 if rss is None else rss / 1024


# ---------------------------------------------------------------------------------------------
# the worker's side


def pin_threads(threads: int) -> None:
    """XLA's CPU client uses every core it may run on: with fewer threads than cores, pin this
    process to the first `threads` cores it may run on (every worker to the same ones)."""
    if threads < (os.cpu_count() or 1) and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:threads]))


def emit(tag: str, payload: dict) -> None:
    """One protocol line to the driver: `READY {json}` or `RESULT {json}`."""
    print(tag + " " + json.dumps(payload), flush=True)


def start(setup: Callable[[], tuple]) -> tuple[Callable, object, dict, dict]:
    """A worker that runs its iterations itself: set-up, the warm-up iteration (jit compiles,
    allocator warm-up) and, after it (so compile time stays in the warm-up), the work
    measurement. `setup()` returns (iteration, number of parameters, info, measure_work or
    None); measure_work()'s numbers and its time (`measure_work_s`) go into info.

    Returns (iteration, what the warm-up iteration returned, {setup_s, warmup_s, params},
    info); the script composes its READY from the last two."""
    t0 = time.perf_counter()
    iteration, n_params, info, measure_work = setup()
    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    first = iteration()
    warm_s = time.perf_counter() - t0
    if measure_work is not None:
        t0 = time.perf_counter()
        info.update(measure_work())
        info["measure_work_s"] = time.perf_counter() - t0
    return iteration, first, {"setup_s": setup_s, "warmup_s": warm_s, "params": n_params}, info


def serve(
    iteration: Callable[[], dict | None],
    *,
    before: Callable[[], None] | None = None,
    after: Callable[[], dict] | None = None,
) -> None:
    """The worker's turns: one timed iteration and its RESULT per `iter` line on stdin.

    The RESULT is what iteration() returned (a dict, or nothing) plus time_s (wall clock),
    cpu_s (the process's CPU seconds, all threads), rss_before_mib, peak_rss_mib and
    peak_is_per_iteration (see reset_peak_rss), and after()'s fields. before() runs after the
    peak-RSS reset, outside the timing."""
    for line in sys.stdin:
        if line.strip() != "iter":
            break
        reset_ok = reset_peak_rss()
        if before is not None:
            before()
        rss_before = rss_mib()
        t0, c0 = time.perf_counter(), time.process_time()
        res = dict(iteration() or {})
        res["time_s"] = time.perf_counter() - t0
        res["cpu_s"] = time.process_time() - c0
        res["rss_before_mib"] = rss_before
        res["peak_rss_mib"] = peak_rss_mib()
        res["peak_is_per_iteration"] = reset_ok
        if after is not None:
            res.update(after())
        emit("RESULT", res)


# ---------------------------------------------------------------------------------------------
# the driver's side


class Worker:
    """One side's worker subprocess, started from `cmd`; waits for its READY (in `ready`)."""

    def __init__(self, side: str, cmd: list[str], env: dict[str, str], close_timeout: float):
        self.side = side
        self.close_timeout = close_timeout
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self.ready = self._read("READY")
        self.results: list[dict] = []

    def _read(self, tag: str) -> dict:
        for line in self.proc.stdout:
            if line.startswith(tag + " "):
                return json.loads(line[len(tag) + 1 :])
            sys.stdout.write(f"[{self.side}] {line}")
        raise RuntimeError(f"worker {self.side} exited with {self.proc.wait()}")

    def run_once(self) -> dict:
        self.proc.stdin.write("iter\n")
        self.proc.stdin.flush()
        res = self._read("RESULT")
        self.results.append(res)
        return res

    def close(self) -> None:
        """Ends the worker (`quit`); killed if it has not exited within close_timeout."""
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            self.proc.wait(timeout=self.close_timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def parse_args(
    p: argparse.ArgumentParser, sides, worker_main: Callable
) -> argparse.Namespace | None:
    """The script's arguments, with the hidden options a worker is started with (`--worker
    SIDE --model-dir DIR`, see worker_command). In a worker, runs worker_main(args) and
    returns None; in the driver, returns the arguments."""
    p.add_argument("--worker", choices=sides, help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker_main(args)
        return None
    return args


def worker_command(script: str, side: str, model_dir: Path, python: str = sys.executable):
    """The command line that starts `script`'s worker for `side` (the script adds its own
    options after it)."""
    return [python, str(Path(script).resolve()), "--worker", side, "--model-dir", str(model_dir)]


def take_turns(
    sides: list[str],
    build_model: Callable[[Path], object],
    start_worker: Callable[[str, Path], Worker],
    repeats: int,
    show_ready: Callable[[dict], str],
    show_result: Callable[[Worker, dict], str],
    prefix: str,
) -> list[Worker]:
    """The driver: build_model(DIR) writes the model every side loads to a temporary
    directory (`prefix`...), removed at the end. Starts each side's worker in turn (so set-up
    and compiles do not overlap), printing `SIDE: ready show_ready(READY)`; then `repeats`
    rounds in which the workers run one iteration each, in order, printing
    `  round R show_result(worker, RESULT)`. Every worker is closed at the end, or on an error.
    Returns the workers (their RESULTs in `results`)."""
    workers = []
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        model_dir = Path(tmp) / "hf"
        build_model(model_dir)
        try:
            for side in sides:
                w = start_worker(side, model_dir)
                print(f"{side}: ready {show_ready(w.ready)}", flush=True)
                workers.append(w)
            for r in range(repeats):
                for w in workers:
                    res = w.run_once()
                    print(f"  round {r + 1} {show_result(w, res)}", flush=True)
        finally:
            for w in workers:
                w.close()
    return workers


def load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except (AttributeError, OSError):  # no getloadavg on this platform, or no answer
        return (float("nan"),) * 3


# ---------------------------------------------------------------------------------------------
# work: XLA's FLOP counts and the device's best matmul rate


def xla_flops(compiled) -> float:
    """XLA's FLOP count of a compiled program (nan where its cost analysis gives none)."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan")))


def best_matmul_gflops(rows: int, d: int, d_ff: int, vocab: int, dtype="float32", tries=5):
    """The best rate this worker's device reaches on a model's own matmul shapes, `rows` (the
    batch's response tokens) times: attention projection d x d, FFN / MLP d x d_ff and d_ff x
    d, LM head d x vocab; each the best of `tries` timed calls after one untimed call. What
    any implementation's GFLOP/s is measured against."""
    import jax
    import jax.numpy as jnp

    mm = jax.jit(lambda x, y: x @ y)
    best_rate = 0.0
    for k, n in ((d, d), (d, d_ff), (d_ff, d), (d, vocab)):
        a, b = jnp.ones((rows, k), dtype), jnp.ones((k, n), dtype)
        jax.block_until_ready(mm(a, b))
        best = float("inf")
        for _ in range(tries):
            t0 = time.perf_counter()
            jax.block_until_ready(mm(a, b))
            best = min(best, time.perf_counter() - t0)
        best_rate = max(best_rate, 2 * rows * k * n / best / 1e9)
    return best_rate
