"""scripts/multiturn_vs_single.py: the per-seed comparison of a 2-turn demo run with the
single-turn run of the same seed, read from the runs' files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers.scripts import load_script

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "multiturn_vs_single.py"


def _module():
    return load_script("multiturn_vs_single")


def _metrics(p1, fix=None, turn1=None, problems=600):
    m = {"num_problems": problems, "pass@1": p1}
    if fix is not None:
        m |= {"fix_rate": fix, "pass@1_turn1": turn1}
    return m


def _run(path: Path, turns, seed=0, steps=200, family="", greedy=0.5, sampled=0.3, fix=(0.2, 0.05)):
    path.mkdir()
    multi = (turns or 1) > 1
    f = fix if multi else (None, None)
    t1 = greedy - 0.01 if multi else None
    results = {
        "seed": seed,
        "before": {"greedy": _metrics(0.4, f[0], t1), "sampled": _metrics(0.2, f[0], t1)},
        "after": {"greedy": _metrics(greedy, f[1], t1), "sampled": _metrics(sampled, f[1], t1)},
    }
    (path / "results.json").write_text(json.dumps(results))
    cfg = {"train": {"seed": seed, "steps": steps}, "model": {"family": family}}
    if turns is not None:
        cfg["rollout"] = {"turns": turns}
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    return path


def _pass2(path: Path, value=0.6, problems=600):
    path.mkdir()
    (path / "eval_test.json").write_text(json.dumps({"num_problems": problems, "pass@2": value}))
    return path


def test_compare_gives_the_differences_in_points(tmp_path):
    m = _module()
    two = m.load_run(_run(tmp_path / "mt", 2, greedy=0.748, sampled=0.528, fix=(0.151, 0.019)), "t")
    one = m.load_run(_run(tmp_path / "st", None, greedy=0.773, sampled=0.481), "s")  # pre-turns run
    row = m.compare(two, one, m.load_pass2(_pass2(tmp_path / "ev", 0.619)))
    assert row["greedy_gain"] == pytest.approx(-2.5)
    assert row["sampled_gain_vs_pass2"] == pytest.approx(52.8 - 61.9)
    assert row["fix_greedy_gain"] == pytest.approx(-13.2)
    assert row["two_turn_greedy_first_attempt"] == pytest.approx(73.8)
    assert "| 0 | 77.3% | 74.8% (73.8%) | -2.5 |" in m.table([row])


@pytest.mark.parametrize(
    "single_kwargs, pass2_kwargs, message",
    [
        ({"seed": 1}, {}, "train.seed"),
        ({"steps": 300}, {}, "train.steps"),
        ({"family": "decoder"}, {}, "model.family"),
        ({"turns": 2}, {}, "rollout.turns=2"),
        ({}, {"problems": 500}, "500 problems"),
    ],
)
def test_mismatched_runs_are_refused(tmp_path, single_kwargs, pass2_kwargs, message):
    m = _module()
    two = m.load_run(_run(tmp_path / "mt", 2), "t")
    one = m.load_run(_run(tmp_path / "st", **({"turns": 1} | single_kwargs)), "s")
    with pytest.raises(m.InputError, match=message):
        m.compare(two, one, m.load_pass2(_pass2(tmp_path / "ev", **pass2_kwargs)))


def test_cli_prints_the_table_and_rejects_bad_input(tmp_path):
    mt, st, ev = _run(tmp_path / "mt", 2), _run(tmp_path / "st", 1), _pass2(tmp_path / "ev")
    out = tmp_path / "rows.json"
    cmd = [sys.executable, str(SCRIPT), "--two-turn", str(mt), "--single", str(st)]
    ok = subprocess.run(
        cmd + ["--single-pass2", str(ev), "--json", str(out)], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("\n| 0 |") == 1 and json.loads(out.read_text())[0]["seed"] == 0
    (ev / "eval_test.json").write_text(json.dumps({"num_problems": 600, "pass@1": 0.5}))
    bad = subprocess.run(cmd + ["--single-pass2", str(ev)], capture_output=True, text=True)
    assert bad.returncode == 2 and "no pass@2" in bad.stderr and not bad.stdout
    missing = subprocess.run(
        cmd + ["--single-pass2", str(ev), str(ev)], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "one entry per seed" in missing.stderr


def test_a_two_turn_run_without_fix_rates_is_refused(tmp_path):
    m = _module()
    mt = _run(tmp_path / "mt", 2)
    results = json.loads((mt / "results.json").read_text())
    del results["before"]["sampled"]["fix_rate"]
    (mt / "results.json").write_text(json.dumps(results))
    two, one = m.load_run(mt, "t"), m.load_run(_run(tmp_path / "st", 1), "s")
    with pytest.raises(m.InputError, match="before.sampled has no fix_rate"):
        m.compare(two, one, m.load_pass2(_pass2(tmp_path / "ev")))
