"""scripts/revision_report.py: what a multi-turn evaluation's revisions did, read from
`ppocoder eval --samples`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers.scripts import load_script

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "revision_report.py"


def _module():
    return load_script("revision_report")


def _record(attempts, passed, first_verdict, id="p"):
    return {
        "id": id, "sample": 0, "prompt": "q", "output": attempts[-1], "verdict": "X",
        "passed": passed, "score": 0.0, "attempts": attempts, "feedback": ["f"] * (len(attempts) - 1),
        "first_verdict": first_verdict,
    }  # fmt: skip


def test_outcomes_are_repeated_changed_or_fixed():
    records = [
        _record(["a"], True, "PASS"),  # passed first: not revised
        _record(["a", "a"], False, "WRONG_ANSWER"),
        _record(["a", "b"], False, "WRONG_ANSWER"),
        _record(["a", "b"], True, "WRONG_ANSWER"),
        _record(["a", "a", "c"], False, "COMPILE_ERROR"),  # changed in the last turn
        _record(["a", "a", "a"], False, "COMPILE_ERROR"),
    ]
    records.append(_record(["d"], False, "WRONG_ANSWER"))  # passed the public test only
    report = _module().revision_outcomes(records)
    assert report["samples"] == 7 and report["revised"] == 5
    assert report["unrevised_failures"] == 1
    assert report["by_verdict"]["WRONG_ANSWER"] == {"repeated": 1, "changed": 1, "fixed": 1}
    assert report["by_verdict"]["COMPILE_ERROR"] == {"changed": 1, "repeated": 1}


def test_the_script_prints_a_table_and_rejects_single_turn_files(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps(r) for r in [_record(["a", "a"], False, "RUNTIME_ERROR")]))
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(good)], capture_output=True, text=True, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    assert "| RUNTIME_ERROR | 1 | 1 (100.0%) | 0 (0.0%) | 0 (0.0%) |" in out.stdout
    single = tmp_path / "single.jsonl"
    single.write_text(json.dumps({"id": "p", "passed": False}) + "\n")
    for path, message in ((single, "single-turn"), (tmp_path / "missing.jsonl", "not found")):
        out = subprocess.run(
            [sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True, cwd=REPO
        )
        assert out.returncode == 2 and message in out.stderr, out.stderr


def test_pairs_two_models_on_the_same_problems(tmp_path):
    sft = [
        _record(["a", "b"], True, "WRONG_ANSWER", id="p1"),  # both revise; only SFT fixes
        _record(["a", "b"], False, "WRONG_ANSWER", id="p2"),  # both revise; neither fixes
        _record(["a", "b"], True, "WRONG_ANSWER", id="p3"),  # SFT only revises and fixes
        _record(["a", "b"], False, "WRONG_ANSWER", id="p4"),  # SFT only revises, fails
        _record(["a"], True, "PASS", id="p5"),
    ]
    ppo = [
        _record(["c", "d"], False, "WRONG_ANSWER", id="p1"),
        _record(["c", "d"], False, "WRONG_ANSWER", id="p2"),
        _record(["c"], True, "PASS", id="p3"),
        _record(["c"], False, "WRONG_ANSWER", id="p4"),
        _record(["c", "d"], True, "WRONG_ANSWER", id="p5"),
    ]
    paired = _module().paired_outcomes(sft, ppo)
    assert paired == {
        "both": 2, "fixed_first": 1, "fixed_second": 0,
        "first_only": 2, "first_only_fixed": 1, "first_only_second_passed": 1,
    }  # fmt: skip
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("\n".join(json.dumps(r) for r in sft))
    b.write_text("\n".join(json.dumps(r) for r in ppo[:4]))
    run = [sys.executable, str(SCRIPT), "--pair", str(a)]
    out = subprocess.run([*run, str(a)], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and "| 4 | 2 | 2 | 0 | 0 | 0 |" in out.stdout, out.stderr
    out = subprocess.run([*run, str(b)], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2 and "different problems" in out.stderr
    out = subprocess.run(run, capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2 and "exactly two files" in out.stderr
