"""The sandbox-serve wire format: one problem per request, one ExecutionResult per answer.

    POST /v1/run   {"protocol": 1, "lang": "python", "program": "...", "tests": {...} | null,
                    "link": false}
    200            {"protocol": 1, "result": ExecutionResult.to_dict()}
    4xx / 503      {"error": "<one line>"}            (503: "busy", try another server)

The result carries the verdict, the tests passed / total and the failing test's detail
(TestFailure), which multi-turn feedback shows the policy. The client trusts nothing in an
answer: a result that does not parse, names an unknown verdict or kind, or does not fit the
job it asked for (another number of tests) is refused (WireError), so it becomes an
INFRA_ERROR (masked), never a score.
"""

from __future__ import annotations

import json
import math
from dataclasses import fields

from ppocoder_jax.rewards.execution import harness
from ppocoder_jax.rewards.execution.languages import canonical_language
from ppocoder_jax.rewards.execution.verdicts import (
    ExecutionResult,
    TestFailure,
    Verdict,
    make_result,
)

PROTOCOL = 1
RUN_PATH = "/v1/run"
HEALTH_PATH = "/health"
_FAILURE_FIELDS = {f.name: f.type for f in fields(TestFailure)}


class BadRequest(ValueError):
    """A request the server refuses (its message is the one-line 4xx answer)."""


class WireError(ValueError):
    """An answer that is not a real verdict for the job asked."""


def job_body(lang: str, program: str, tests: dict | None, link: bool) -> bytes:
    # ensure_ascii: lone surrogates (a non-UTF-8 program, see job_text) travel as \\udcxx
    # escapes and come back as the same str.
    job = {"protocol": PROTOCOL, "lang": lang, "program": program, "tests": tests, "link": link}
    return json.dumps(job, ensure_ascii=True).encode("ascii")


def parse_job(body: bytes, allowed: frozenset[str]) -> tuple[str, str, dict | None, bool]:
    """(lang, program, tests, link) of a request, or BadRequest naming what is wrong."""
    try:
        job = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadRequest(f"body is not JSON: {err}") from None
    if not isinstance(job, dict):
        raise BadRequest("body must be a JSON object")
    if job.get("protocol") != PROTOCOL:
        raise BadRequest(f"protocol must be {PROTOCOL}, got {job.get('protocol')!r}")
    unknown = set(job) - {"protocol", "lang", "program", "tests", "link"}
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    try:
        lang = canonical_language(str(job.get("lang")))
    except ValueError as err:
        raise BadRequest(f"lang: {err}") from None
    if lang not in allowed:
        raise BadRequest(f"lang: {lang} is not served here (allowed: {', '.join(sorted(allowed))})")
    program, tests, link = job.get("program"), job.get("tests"), job.get("link", False)
    if not isinstance(program, str):
        raise BadRequest("program must be a string")
    if not isinstance(link, bool):
        raise BadRequest("link must be true or false")
    try:
        harness.parse_tests(tests, lang)
    except ValueError as err:
        raise BadRequest(f"tests: {' '.join(str(err).split())}") from None
    return lang, program, tests, link


def tests_total(lang: str, tests: dict | None) -> int:
    spec = harness.parse_tests(tests, lang)
    return spec.total if spec is not None else 0


def parse_result(answer, expected_total: int) -> ExecutionResult:
    """The ExecutionResult in a 200 answer; WireError for anything else."""
    if not isinstance(answer, dict) or answer.get("protocol") != PROTOCOL:
        raise WireError("not a sandbox-serve answer")
    r = answer.get("result")
    if not isinstance(r, dict):
        raise WireError("answer without a result")
    try:
        verdict = Verdict(r["verdict"])
        compiled, passed, total = r["compiled"], r["tests_passed"], r["tests_total"]
        detail, duration = r.get("detail", ""), r.get("duration_s", 0.0)
    except (KeyError, ValueError, TypeError) as err:
        raise WireError(f"malformed result: {err}") from None
    ints_ok = all(type(v) is int for v in (passed, total)) and 0 <= passed <= total
    if not (type(compiled) is bool and ints_ok and isinstance(detail, str)):
        raise WireError("malformed result fields")
    if not (isinstance(duration, (int, float)) and math.isfinite(duration)):
        raise WireError("malformed duration")
    if verdict is not Verdict.INFRA_ERROR and total != expected_total:
        raise WireError(f"result for {total} tests, the job has {expected_total}")
    failure = None
    if r.get("failure") is not None:
        f = r["failure"]
        if not isinstance(f, dict) or set(f) - set(_FAILURE_FIELDS):
            raise WireError("malformed failure")
        if not all(
            (type(v) is int or v is None) if k == "index" else isinstance(v, str)
            for k, v in f.items()
        ):
            raise WireError("malformed failure fields")
        try:
            failure = TestFailure(**f)
        except (TypeError, ValueError) as err:
            raise WireError(f"malformed failure: {err}") from None
    # The reward follows from the verdict here, never from the answer.
    return make_result(
        verdict,
        compiled=compiled,
        tests_passed=passed,
        tests_total=total,
        duration_s=float(duration),
        detail=detail,
        failure=failure,
    )
