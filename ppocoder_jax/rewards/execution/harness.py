"""Unit-test formats, the in-sandbox Python test runner, and output comparison in the parent.

Test formats (SPEC):
- standard input/output (every language): {"inputs": [...], "outputs": [...]} (APPS);
- call-based (Python): the same with "fn_name": inputs are argument lists (APPS);
- assert-style (Python): {"test_code": "..."} run against the program (MBPP, HumanEval).

The parent decides every verdict. For call-based and assert-style tests the runner below reports
over a channel the program cannot forge easily: result lines on a duplicate of the original
stdout, each prefixed with a per-run random nonce read from stdin before the program is loaded;
the program's own stdout goes to /dev/null. A program that exits (sys.exit / os._exit) before the
runner prints its final line does not pass. Call-based return values travel as JSON and are
compared in the parent, so an object whose __eq__ always returns True cannot pass; in assert-style
test code, every call's return value is checked for program-defined classes overriding
comparison/truth dunders before the test code can compare it.

What failed (for feedback, never for the verdict): before an assert-style test's result line the
runner says `info 0 <json>` with the source of the statement that failed or was running (from the
traceback's innermost frame in the test code) and, for `assert <call> == <value>` (a call on
either side of one comparison), `assert <call>` and `assert not <call>`, the call's source and
the repr of the value it returned in that very evaluation (captured as the assertion evaluates
it, so nothing runs twice; sets are shown sorted, object addresses dropped: the text does not
depend on the hash seed or the heap).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ppocoder_jax.rewards.execution import programs

RUNNER_NAME = "ppocoder_runner.py"
PROGRAM_MODULE = "__program__"


@dataclass(frozen=True)
class TestSpec:
    kind: str  # "stdio" | "call" | "assert"
    inputs: tuple = ()
    outputs: tuple = ()
    fn_name: str = ""
    test_code: str = ""

    @property
    def total(self) -> int:
        return 1 if self.kind == "assert" else len(self.inputs)


def parse_tests(tests: Any, lang: str) -> TestSpec | None:
    """Validate a tests object; raises ValueError naming the problem."""
    if tests is None:
        return None
    if not isinstance(tests, dict):
        raise ValueError("tests must be a JSON object")
    if "test_code" in tests:
        if not isinstance(tests["test_code"], str):
            raise ValueError("tests.test_code must be a string")
        if lang != "python":
            raise ValueError(f"assert-style test_code is only supported for python, not {lang}")
        return TestSpec("assert", test_code=tests["test_code"])
    if "inputs" not in tests or "outputs" not in tests:
        raise ValueError('tests need "inputs" and "outputs" (or "test_code")')
    inputs, outputs = tests["inputs"], tests["outputs"]
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise ValueError("tests.inputs and tests.outputs must be lists")
    if len(inputs) != len(outputs):
        raise ValueError(f"tests have {len(inputs)} inputs but {len(outputs)} outputs")
    if not inputs:
        raise ValueError("tests.inputs is empty")
    fn_name = tests.get("fn_name")
    if fn_name:
        if lang != "python":
            raise ValueError(
                f"call-based tests (fn_name) are only supported for python, not {lang}"
            )
        if not isinstance(fn_name, str):
            raise ValueError("tests.fn_name must be a string")
        args = [a if isinstance(a, list) else [a] for a in inputs]
        return TestSpec("call", tuple(args), tuple(outputs), fn_name=fn_name)
    for i, value in enumerate(inputs):
        if not isinstance(value, (str, list)):
            raise ValueError(f"tests.inputs[{i}] must be a string (or a list of lines)")
    return TestSpec("stdio", tuple(inputs), tuple(outputs))


def as_text(value: Any) -> str:
    """APPS stores some stdin/stdout values as lists of lines."""
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value)


def _tokens_equal(a: list[str], b: list[str]) -> bool:
    if a == b:
        return True
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x == y:
            continue
        try:
            fx, fy = float(x), float(y)
        except ValueError:
            return False
        if not math.isclose(fx, fy, rel_tol=1e-6, abs_tol=1e-6):
            return False
    return True


def stdout_matches(actual: bytes, expected: Any) -> bool:
    """Whitespace-insensitive comparison with a float tolerance (as APPS/CodeRL checkers)."""
    got = actual.decode("utf-8", errors="replace")
    want = as_text(expected)
    return _tokens_equal(got.split(), want.split())


def call_output_matches(actual_json: str, expected: Any) -> bool:
    """Compare a JSON-encoded return value with the expected one (APPS wraps it in a list)."""
    try:
        actual = json.loads(actual_json)
    except ValueError:
        return False
    if actual == expected:
        return True
    return isinstance(expected, list) and len(expected) == 1 and actual == expected[0]


def runner_job(spec: TestSpec, program_file: str, timeout_s: float) -> dict:
    job = {"program": program_file, "timeout": timeout_s, "kind": spec.kind}
    if spec.kind == "call":
        job.update(fn_name=spec.fn_name, inputs=list(spec.inputs))
    else:
        job.update(test_code=spec.test_code)
    return job


@dataclass
class ChannelReport:
    loaded: bool = False
    done: bool = False
    load_error: str = ""  # "timeout" or "<ExcType>: message"
    results: dict | None = None  # index -> (status, payload)
    info: dict | None = None  # index -> {"input", "expected", "actual", "call"} (str values)


_INFO_KEYS = ("input", "expected", "actual", "call")


def _parse_info(payload: str) -> dict | None:
    try:
        info = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(info, dict):
        return None
    return {k: info[k] for k in _INFO_KEYS if isinstance(info.get(k), str)}


def parse_channel(stdout: bytes, nonce: str) -> ChannelReport:
    """Read the runner's nonce-prefixed lines; anything else on the channel is ignored."""
    report = ChannelReport(results={}, info={})
    prefix = nonce + " "
    for raw in stdout.decode("utf-8", errors="replace").splitlines():
        if not raw.startswith(prefix):
            continue
        parts = raw[len(prefix) :].split(" ", 2)
        tag = parts[0]
        if tag == "loaded":
            report.loaded = True
        elif tag == "done":
            report.done = True
        elif tag == "load":  # "load timeout" | "load error <description>"
            report.load_error = parts[2] if len(parts) > 2 else parts[-1]
        elif tag.isdigit() and len(parts) >= 2:
            report.results[int(tag)] = (parts[1], parts[2] if len(parts) > 2 else "")
        elif tag == "info" and len(parts) == 3 and parts[1].isdigit():
            info = _parse_info(parts[2])
            if info is not None:
                report.info[int(parts[1])] = info
    return report


# The runner executes inside the sandbox, with the sandbox's Python. Kept dependency-free.
# RUNNER_BODY defines main(); the Python test server (zygote.py) preloads it once and calls
# main() in each job's process, a fresh interpreter runs RUNNER_SOURCE.
RUNNER_BODY = programs.source("python_runner.py")
RUNNER_SOURCE = RUNNER_BODY + "main()\n"
