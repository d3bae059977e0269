"""Verdicts, rewards and the result record of one execution job.

Reward values follow SPEC (CodeRL values reused by PPOCoder): compile-only checks score +1/-1;
with tests PASS +1, WRONG_ANSWER -0.3, RUNTIME_ERROR/TIMEOUT/MEMORY_LIMIT/OUTPUT_LIMIT -0.6,
COMPILE_ERROR -1. INFRA_ERROR is our own failure: its reward is None so that callers mask it.

A result that failed also says what failed (`ExecutionResult.failure`, a TestFailure): the test
that decided the verdict, with its input, expected and actual values or the error, for feedback a
policy can read (rewards/feedback.py). It never changes a verdict, a reward or a count.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass


class Verdict(enum.StrEnum):
    COMPILED = "COMPILED"
    PASS = "PASS"
    WRONG_ANSWER = "WRONG_ANSWER"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    TIMEOUT = "TIMEOUT"
    MEMORY_LIMIT = "MEMORY_LIMIT"
    OUTPUT_LIMIT = "OUTPUT_LIMIT"
    COMPILE_ERROR = "COMPILE_ERROR"
    INFRA_ERROR = "INFRA_ERROR"


REWARDS: dict[Verdict, float | None] = {
    Verdict.COMPILED: 1.0,
    Verdict.PASS: 1.0,
    Verdict.WRONG_ANSWER: -0.3,
    Verdict.RUNTIME_ERROR: -0.6,
    Verdict.TIMEOUT: -0.6,
    Verdict.MEMORY_LIMIT: -0.6,
    Verdict.OUTPUT_LIMIT: -0.6,
    Verdict.COMPILE_ERROR: -1.0,
    Verdict.INFRA_ERROR: None,
}

# Higher = worse; a program's outcome over several tests is the worst one (SPEC).
_SEVERITY = {
    Verdict.PASS: 0,
    Verdict.WRONG_ANSWER: 1,
    Verdict.OUTPUT_LIMIT: 2,
    Verdict.MEMORY_LIMIT: 2,
    Verdict.TIMEOUT: 2,
    Verdict.RUNTIME_ERROR: 2,
    Verdict.COMPILE_ERROR: 3,
}

# Verdicts after which running further tests cannot change the reward.
STOPS_TESTING = frozenset(
    {
        Verdict.RUNTIME_ERROR,
        Verdict.TIMEOUT,
        Verdict.MEMORY_LIMIT,
        Verdict.OUTPUT_LIMIT,
        Verdict.INFRA_ERROR,
    }
)


def worst(a: Verdict, b: Verdict) -> Verdict:
    """The worse of two per-test verdicts (the first one wins ties)."""
    return b if _SEVERITY[b] > _SEVERITY[a] else a


# TestFailure.kind values: one per failing verdict, and "assert" (an assert-style test's assertion
# failed: a WRONG_ANSWER).
FAILURE_KINDS = (
    "wrong_answer",
    "runtime_error",
    "timeout",
    "memory_limit",
    "output_limit",
    "compile_error",
    "assert",
)
# Each text field of a TestFailure keeps at most this many characters (its beginning, then
# "..."): results are cached, and a test's input can be megabytes.
FAILURE_FIELD_CHARS = 500
FAILURE_MESSAGE_CHARS = 800


def clip(text: str, limit: int) -> str:
    """The beginning of `text` in at most `limit` characters, a cut marked with "..."."""
    if len(text) <= limit:
        return text
    return text[: limit - 3] + "..." if limit >= 3 else text[:limit]


@dataclass(frozen=True)
class TestFailure:
    """The failing test that decided a result's verdict (the first one with that verdict: a
    wrong answer on test 0 and a crash on test 2 is a RUNTIME_ERROR described by test 2).

    index: the test, 0-based (None for a compile error: no test ran). A program that fails while
    it is loaded, before any call- or assert-style test ran, is described as test 0.
    kind: one of FAILURE_KINDS ("assert" for an assert-style test whose assertion failed).
    test_format: "stdio" | "call" | "assert" (how the test was given), "" for compile errors.
    input: the test's stdin (stdio), the call (call-based: "f(1, [2])"), or the source of the
    test statement that failed (assert-style; for a crash or a timeout, the statement running).
    expected: the expected stdout (stdio), the expected return value's repr (call-based), or
    the right-hand side's source of a failing `assert <call> == <value>`; "" when unknown.
    actual: the program's stdout (stdio), or the repr of the value `call` returned.
    call: the call whose value `actual` is (call-based: as input; assert-style: the call on
    either side of a comparison, `assert <call>` or `assert not <call>`), "" otherwise.
    message: the compiler's first error lines, the exception's last line, or what limit was hit.
    Texts are cut to FAILURE_FIELD_CHARS / FAILURE_MESSAGE_CHARS (their beginning, then "...");
    job directory paths are scrubbed from messages and from the program's output, never from
    the test's input or expected output.
    """

    __test__ = False  # not a pytest test class

    index: int | None
    kind: str
    test_format: str = ""
    input: str = ""
    expected: str = ""
    actual: str = ""
    call: str = ""
    message: str = ""

    def __post_init__(self) -> None:
        if self.kind not in FAILURE_KINDS:
            raise ValueError(f"TestFailure.kind must be one of {FAILURE_KINDS}, not {self.kind!r}")
        for name in ("input", "expected", "actual", "call", "message"):
            limit = FAILURE_MESSAGE_CHARS if name == "message" else FAILURE_FIELD_CHARS
            value = getattr(self, name)
            if len(value) > limit:
                object.__setattr__(self, name, clip(value, limit))


def failure_kind(verdict: Verdict) -> str:
    """The TestFailure.kind of a failing verdict (WRONG_ANSWER -> "wrong_answer", ...)."""
    return verdict.value.lower()


@dataclass(frozen=True)
class ExecutionResult:
    verdict: Verdict
    reward: float | None
    compiled: bool
    tests_passed: int
    tests_total: int
    duration_s: float
    detail: str = ""
    # The failing test that decided the verdict (None for PASS, COMPILED and INFRA_ERROR).
    failure: TestFailure | None = None

    @property
    def infra_error(self) -> bool:
        return self.verdict is Verdict.INFRA_ERROR

    def to_dict(self) -> dict:
        """JSON-ready; "failure" (a dict of TestFailure's fields) only when there is one."""
        d = asdict(self)
        d["verdict"] = self.verdict.value
        d["duration_s"] = round(self.duration_s, 4)
        if d["failure"] is None:
            del d["failure"]
        return d


def make_result(
    verdict: Verdict,
    *,
    compiled: bool,
    tests_passed: int = 0,
    tests_total: int = 0,
    duration_s: float = 0.0,
    detail: str = "",
    failure: TestFailure | None = None,
) -> ExecutionResult:
    return ExecutionResult(
        verdict=verdict,
        reward=REWARDS[verdict],
        compiled=compiled,
        tests_passed=tests_passed,
        tests_total=tests_total,
        duration_s=duration_s,
        detail=detail,
        failure=failure if verdict not in _NO_FAILURE else None,
    )


_NO_FAILURE = frozenset({Verdict.PASS, Verdict.COMPILED, Verdict.INFRA_ERROR})
