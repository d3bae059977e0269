"""scripts/compare_runs.py: two run directories compared value for value (metrics but the
clocks, results, final parameters), the check behind "rollout.turns=1 changes nothing"."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers.scripts import load_script
from helpers.tiny_models import tiny_t5_config

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "compare_runs.py"

ROWS = [
    {"phase": "sft", "step": 0, "loss": 8.97, "elapsed_s": 5.1},
    {"phase": "ppo", "step": 0, "score": 0.25, "pass_rate": 0.5, "time_update_s": 1.3,
     "reward_wait_frac": 0.02, "reward_programs_per_s": 50.0, "policy_loss": -0.01},
    {"phase": "ppo", "step": 1, "score": 0.5, "pass_rate": 0.75, "time_update_s": 1.2},
]  # fmt: skip
RESULTS = {"seed": 0, "after": {"greedy": {"pass@1": 0.75, "eval_s": 12.0}}}


def _run(path: Path, rows=ROWS, results=RESULTS, params=None) -> Path:
    path.mkdir()
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if results is not None:
        (path / "results.json").write_text(json.dumps(results))
    if params is not None:
        from ppocoder_jax.model.store import save_model

        save_model(path / "final_model", params, tiny_t5_config())
    return path


def _main(*args) -> tuple[int, str]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = load_script("compare_runs").main([str(a) for a in args])
    return rc, out.getvalue()


def _timed_differently(rows):
    return [{k: (v * 3 if k.startswith("time_") or k.endswith("_s") else v) for k, v in r.items()}
            for r in rows]  # fmt: skip


def test_runs_that_differ_only_in_their_clocks_are_the_same(tmp_path):
    a = _run(tmp_path / "a")
    b = _run(tmp_path / "b", rows=_timed_differently(ROWS),
             results={"seed": 0, "after": {"greedy": {"pass@1": 0.75, "eval_s": 99.0}}})  # fmt: skip
    rc, out = _main(a, b)
    assert rc == 0, out
    # timings left out: phase, step, loss; phase, step, score, pass_rate, policy_loss; 4 more
    assert "metrics.jsonl: 12 values compared, 0 differ" in out
    assert "results.json: identical" in out


@pytest.mark.parametrize(
    "change, said",
    [
        (lambda rows: [rows[0], {**rows[1], "score": 0.25000001}, rows[2]],
         "score 0.25 against 0.25000001"),
        (lambda rows: rows[:2], "3 rows against 2"),
        (lambda rows: [rows[0], {k: v for k, v in rows[1].items() if k != "score"}, rows[2]],
         "score logged by one run only"),
    ],
    ids=["a-value", "a-row", "a-key-in-one-row"],
)  # fmt: skip
def test_any_logged_difference_is_found_and_said(tmp_path, change, said):
    a = _run(tmp_path / "a")
    b = _run(tmp_path / "b", rows=change(ROWS))
    rc, out = _main(a, b)
    assert rc == 1
    assert said in out


def test_results_and_renamed_and_new_keys(tmp_path):
    a = _run(tmp_path / "a")
    newer = [ROWS[0], {**ROWS[1], "policy_loss_token_mean": -0.01, "policy_loss": -0.5,
                       "skipped_updates": 0}, ROWS[2]]  # fmt: skip
    b = _run(tmp_path / "b", rows=newer, results={"seed": 0, "after": {"greedy": {"pass@1": 0.7}}})
    rc, out = _main(a, b)
    assert rc == 1
    assert "policy_loss -0.01 against -0.5" in out
    assert "results.json: differs" in out and "after.greedy.pass@1 0.75 against 0.7" in out
    rc, out = _main(a, b, "--renamed", "policy_loss_token_mean=policy_loss")
    assert rc == 1  # results.json still differs
    assert "metrics.jsonl: 12 values compared, 0 differ" in out
    assert "logged by one run only (not compared): skipped_updates" in out


def test_final_parameters_are_compared_bit_for_bit(tmp_path):
    from ppocoder_jax.model import t5

    params = jax.device_get(t5.init_params(tiny_t5_config(), jax.random.PRNGKey(0)))
    nudged = jax.tree.map(np.array, params)
    leaf = nudged["value_head"]["bias"]
    leaf[...] = np.nextafter(leaf, np.float32(1))  # one ulp in one array
    a = _run(tmp_path / "a", params=params)
    same = _run(tmp_path / "same", params=params)
    other = _run(tmp_path / "other", params=nudged)
    n = len(jax.tree.leaves(params))
    rc, out = _main(a, same)
    assert rc == 0 and f"final_model: {n} of {n} arrays identical" in out
    rc, out = _main(a, other)
    assert rc == 1
    assert f"final_model: {n - 1} of {n} arrays identical" in out
    assert "['value_head']['bias'] differs" in out


def test_a_missing_run_is_a_one_line_error(tmp_path):
    a = _run(tmp_path / "a")
    (tmp_path / "empty").mkdir()
    for other in (tmp_path / "nowhere", tmp_path / "empty"):
        proc = subprocess.run([sys.executable, str(SCRIPT), str(a), str(other)],
                              capture_output=True, text=True)  # fmt: skip
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    bad = _run(tmp_path / "bad")
    (bad / "metrics.jsonl").write_text('{"phase": "sft"}\nnot json\n')
    rc, _ = _main(a, bad)
    assert rc == 2
    broken = _run(tmp_path / "broken")
    (broken / "results.json").write_text("{")
    proc = subprocess.run([sys.executable, str(SCRIPT), str(a), str(broken)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and "results.json: malformed JSON" in proc.stderr, proc.stderr
