"""scripts/revision_report.py: what a multi-turn evaluation's revisions did, read from
`ppocoder eval --samples`."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "revision_report.py"


def _module():
    spec = importlib.util.spec_from_file_location("revision_report", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(attempts, passed, first_verdict):
    return {
        "id": "p", "sample": 0, "prompt": "q", "output": attempts[-1], "verdict": "X",
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
    report = _module().revision_outcomes(records)
    assert report["samples"] == 6 and report["revised"] == 5
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
