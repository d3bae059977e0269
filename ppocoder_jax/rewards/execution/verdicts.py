"""Verdicts, rewards and the result record of one execution job.

Reward values follow SPEC (CodeRL values reused by PPOCoder): compile-only checks score +1/-1;
with tests PASS +1, WRONG_ANSWER -0.3, RUNTIME_ERROR/TIMEOUT/MEMORY_LIMIT/OUTPUT_LIMIT -0.6,
COMPILE_ERROR -1. INFRA_ERROR is our own failure: its reward is None so that callers mask it.
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


@dataclass(frozen=True)
class ExecutionResult:
    verdict: Verdict
    reward: float | None
    compiled: bool
    tests_passed: int
    tests_total: int
    duration_s: float
    detail: str = ""

    @property
    def infra_error(self) -> bool:
        return self.verdict is Verdict.INFRA_ERROR

    def to_dict(self) -> dict:
        d = asdict(self)
        d["verdict"] = self.verdict.value
        d["duration_s"] = round(self.duration_s, 4)
        return d


def make_result(
    verdict: Verdict,
    *,
    compiled: bool,
    tests_passed: int = 0,
    tests_total: int = 0,
    duration_s: float = 0.0,
    detail: str = "",
) -> ExecutionResult:
    return ExecutionResult(
        verdict=verdict,
        reward=REWARDS[verdict],
        compiled=compiled,
        tests_passed=tests_passed,
        tests_total=tests_total,
        duration_s=duration_s,
        detail=detail,
    )
