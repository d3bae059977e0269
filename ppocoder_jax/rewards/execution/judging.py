"""How a test run becomes a verdict: a process's ending (process_failure), a stdio problem's
tests one by one (StdioJudge: the worst verdict, stopping where the reward cannot change, the
deciding test described for feedback), and the Python runner's report (runner_result). The
same rules whoever ran the process: this host's sandbox, a Python server, or SandboxFusion."""

from __future__ import annotations

from dataclasses import replace

from ppocoder_jax.rewards.execution import failures, harness, sandbox
from ppocoder_jax.rewards.execution.job_text import described, tail
from ppocoder_jax.rewards.execution.languages import SPECS, Language
from ppocoder_jax.rewards.execution.verdicts import (
    STOPS_TESTING,
    ExecutionResult,
    TestFailure,
    Verdict,
    make_result,
    worst,
)


def process_failure(spec: Language, out: sandbox.RunOutcome) -> tuple[Verdict, str] | None:
    """The verdict implied by how the process ended, or None when it exited cleanly."""
    if not out.started:
        return Verdict.INFRA_ERROR, out.infra_detail
    if out.timed_out or out.cpu_limited:
        return Verdict.TIMEOUT, "time limit exceeded"
    if out.output_limited:
        return Verdict.OUTPUT_LIMIT, f"output exceeded {len(out.stdout)} bytes"
    if out.returncode != 0:
        err = out.stderr.decode("utf-8", errors="replace")
        if any(marker in err for marker in spec.memory_markers):
            return Verdict.MEMORY_LIMIT, tail(err)
        sig = out.signal
        why = f"killed by signal {sig}" if sig else f"exit code {out.returncode}"
        return Verdict.RUNTIME_ERROR, f"{why}: {tail(err)}"
    return None


class StdioJudge:
    """A stdio problem's verdict, fed one test's process outcome at a time."""

    def __init__(self, spec: Language, tests: harness.TestSpec):
        self.spec, self.tests = spec, tests
        self.verdict, self.passed, self.detail = Verdict.PASS, 0, ""
        self.first: TestFailure | None = None
        self.infra: str | None = None

    def add(self, i: int, given, expected, out: sandbox.RunOutcome) -> bool:
        """Judge test i; True when no later test can change the result (stop running them)."""
        failure = process_failure(self.spec, out)
        if failure is None:
            if harness.stdout_matches(out.stdout, expected):
                self.passed += 1
                return False
            failure = (Verdict.WRONG_ANSWER, f"test {i}: wrong answer: {tail(out.stdout, 200)!r}")
        if failure[0] is Verdict.INFRA_ERROR:
            self.infra = failure[1]
            return True
        if worst(self.verdict, failure[0]) is not self.verdict:
            self.verdict = failure[0]
            wrong = failure[0] is Verdict.WRONG_ANSWER
            self.detail = failure[1] if wrong else f"test {i}: {failure[1]}"
            self.first = described(
                failures.stdio_failure, self.spec.name, i, given, expected, out, failure[0]
            )
        return failure[0] in STOPS_TESTING

    def result(self) -> ExecutionResult:
        if self.infra is not None:
            return make_result(
                Verdict.INFRA_ERROR,
                compiled=True,
                tests_passed=self.passed,
                tests_total=self.tests.total,
                detail=self.infra,
            )
        return make_result(
            self.verdict,
            compiled=True,
            tests_passed=self.passed,
            tests_total=self.tests.total,
            detail=self.detail,
            failure=self.first,
        )


def runner_result(out, nonce, tests) -> ExecutionResult:
    """The verdict from the runner's channel and how its process ended (both paths)."""
    spec = SPECS["python"]
    report = harness.parse_channel(out.stdout, nonce)
    total = tests.total
    if not out.started:
        return make_result(
            Verdict.INFRA_ERROR, compiled=True, tests_total=total, detail=out.infra_detail
        )
    if report.load_error:
        v = Verdict.TIMEOUT if report.load_error == "timeout" else error_verdict(report.load_error)
        return make_result(
            v,
            compiled=True,
            tests_total=total,
            detail=f"loading the program: {report.load_error}",
            failure=described(failures.load_failure, v, report.load_error),
        )
    verdict, passed, detail, first = Verdict.PASS, 0, "", None
    for i in range(total):
        if i not in report.results:
            failure = process_failure(spec, out) or (
                Verdict.RUNTIME_ERROR,
                "the program exited before its tests finished",
            )
            if worst(verdict, failure[0]) is not verdict:
                first = described(runner_exit_failure, tests, i, failure[0], out, report)
            verdict, detail = worst(verdict, failure[0]), f"test {i}: {failure[1]}"
            break
        status, payload = report.results[i]
        if status == "badtest":
            return make_result(
                Verdict.INFRA_ERROR,
                compiled=True,
                tests_total=total,
                detail=f"the test code does not compile: {payload}",
            )
        if status == "pass" or (
            status == "value" and harness.call_output_matches(payload, tests.outputs[i])
        ):
            passed += 1
            continue
        if status in ("value", "unplain", "fail"):
            v, why = Verdict.WRONG_ANSWER, f"test {i}: wrong answer: {payload[:200]}"
        elif status == "timeout":
            v, why = Verdict.TIMEOUT, f"test {i}: time limit exceeded"
        else:
            v, why = error_verdict(payload), f"test {i}: {payload}"
        if worst(verdict, v) is not verdict:
            verdict, detail = v, why
            first = described(
                failures.runner_failure,
                tests,
                i,
                v,
                status=status,
                payload=payload,
                info=report.info.get(i),
                message="time limit exceeded" if status == "timeout" else "",
            )
        if v in STOPS_TESTING:
            break
    if verdict is Verdict.PASS and not (report.done and out.returncode == 0):
        failure = process_failure(spec, out) or (
            Verdict.RUNTIME_ERROR,
            "the runner did not finish",
        )
        verdict, detail = failure
        passed = min(passed, total - 1)
        first = described(runner_exit_failure, tests, passed, verdict, out, report)
    elif out.output_limited and verdict is not Verdict.PASS:
        verdict = Verdict.OUTPUT_LIMIT
        if first is not None:
            first = replace(first, kind="output_limit", message="output limit exceeded")
    return make_result(
        verdict,
        compiled=True,
        tests_passed=passed,
        tests_total=total,
        detail=detail,
        failure=first,
    )


def runner_exit_failure(tests, index, verdict, out, report) -> TestFailure | None:
    """Test `index` has no result: the runner's process ended (crashed, was killed, hit a
    limit, or exited) before saying it."""
    if verdict is Verdict.INFRA_ERROR:
        return None
    if verdict is Verdict.TIMEOUT:
        message = "time limit exceeded"
    elif verdict is Verdict.OUTPUT_LIMIT:
        message = "output limit exceeded"
    elif out.returncode == 0 or (out.returncode is None and not out.stderr):
        message = "the program exited before its tests finished"
    else:
        message = failures.runtime_message("python", b"", out.stderr, out.returncode, out.signal)
    return failures.runner_failure(
        tests, index, verdict, info=report.info.get(index), message=message
    )


def error_verdict(description: str) -> Verdict:
    return Verdict.MEMORY_LIMIT if description.startswith("MemoryError") else Verdict.RUNTIME_ERROR
