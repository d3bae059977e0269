"""A SandboxFusion deployment as the reward backend (`reward.backend: sandbox_fusion`).

SandboxFusion's POST /run_code runs one program on one stdin:

    request   {"code", "language", "stdin", "compile_timeout", "run_timeout"}
    answer    {"status": "Success" | "Failed" | "SandboxError", "message",
               "compile_result": CommandRun | null, "run_result": CommandRun | null}
    CommandRun {"status": "Finished" | "Error" | "TimeLimitExceeded", "return_code",
                "stdout", "stderr", "execution_time"}

So a problem costs one request per test, run in order and stopped, as locally, at the first
test after which the reward cannot change. Each answer becomes a verdict only when its command
results say what happened: a compile step that exited non-zero (COMPILE_ERROR) or ran out of
time, a run that ran out of time (TIMEOUT), exited non-zero (RUNTIME_ERROR, or MEMORY_LIMIT by
the language's out-of-memory message), or exited 0 (its stdout compared here, as locally).
Everything else is no verdict and is retried on another endpoint, then masked as an
INFRA_ERROR: "SandboxError" (the service's own failure; under concurrent failing stdin
programs the stock image answers it in place of the verdict), a command with status "Error",
"Failed" with no command result that explains it (or a status its results contradict), an
answer that does not parse, the request's deadline.

What /run_code cannot express is refused per job (an INFRA_ERROR saying why): call-based and
assert-style tests (our runner is not installed there), C (no such language there), and
compile-only checks of JavaScript and PHP (there is no compile step: /run_code would run
them). Compile-only checks of C++, Java and C# are link checks there (a program with a main);
Python's are done here, in-process (compile(), nothing runs).
"""

from __future__ import annotations

import json

from ppocoder_jax.rewards.execution import failures, harness, sandbox
from ppocoder_jax.rewards.execution.executor import python_compiles
from ppocoder_jax.rewards.execution.job_text import described, tail
from ppocoder_jax.rewards.execution.judging import StdioJudge
from ppocoder_jax.rewards.execution.languages import SPECS
from ppocoder_jax.rewards.execution.verdicts import (
    ExecutionResult,
    Verdict,
    make_result,
)
from ppocoder_jax.rewards.remote.client import EndpointPool, Retry

RUN_CODE_PATH = "/run_code"
# Our language names -> SandboxFusion's.
LANGUAGE_NAMES = {
    "python": "python",
    "cpp": "cpp",
    "java": "java",
    "csharp": "csharp",
    "javascript": "nodejs",
    "php": "php",
}
COMPILED_LANGUAGES = ("cpp", "java", "csharp")


def _infra(detail: str, total: int) -> ExecutionResult:
    return make_result(Verdict.INFRA_ERROR, compiled=False, tests_total=total, detail=detail)


def _command(answer: dict, key: str) -> dict | None:
    run = answer.get(key)
    if run is None:
        return None
    if not isinstance(run, dict) or run.get("status") not in (
        "Finished",
        "Error",
        "TimeLimitExceeded",
    ):
        raise Retry(f"malformed {key}")
    if run["status"] == "Error":
        raise Retry(f"{key} status Error: {str(run.get('stderr') or '')[:200]}")
    return run


def _text(run: dict, key: str) -> bytes:
    value = run.get(key) or ""
    if not isinstance(value, str):
        raise Retry(f"malformed {key}")
    return value.encode("utf-8", errors="surrogateescape")


def parse_answer(status: int, data: bytes):
    """('compile', message) | ('compile_timeout', '') | ('run', RunOutcome), or Retry."""
    if status != 200:
        raise Retry(f"HTTP {status}: {' '.join(data[:200].decode(errors='replace').split())}")
    try:
        answer = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise Retry(f"answer is not JSON: {err}") from None
    if not isinstance(answer, dict) or answer.get("status") not in (
        "Success",
        "Failed",
        "SandboxError",
    ):
        raise Retry("not a /run_code answer")
    if answer["status"] == "SandboxError":
        raise Retry(f"SandboxError: {str(answer.get('message') or '')[:200]}", down=False)
    compiled = _command(answer, "compile_result")
    if compiled is not None:
        if compiled["status"] == "TimeLimitExceeded":
            return "compile_timeout", ""
        if compiled.get("return_code") != 0:
            return "compile", (_text(compiled, "stderr") + _text(compiled, "stdout")).decode(
                "utf-8", errors="replace"
            )
    run = _command(answer, "run_result")
    if run is None:
        raise Retry(f"{answer['status']} without a run result")
    timed_out = run["status"] == "TimeLimitExceeded"
    rc = run.get("return_code")
    if not timed_out and type(rc) is not int:
        raise Retry("run result without a return code")
    if (answer["status"] == "Success") == (timed_out or rc != 0):  # they contradict
        raise Retry(f"{answer['status']} with a run that says otherwise")
    out = sandbox.RunOutcome(
        returncode=None if timed_out else rc,
        timed_out=timed_out,
        stdout=_text(run, "stdout"),
        stderr=_text(run, "stderr"),
        output_limited=False,
        duration_s=0.0,
    )
    return "run", out


class SandboxFusionDialect:
    def __init__(self, timeout_s: float = 4.0, compile_timeout_s: float = 30.0):
        self.timeout_s, self.compile_timeout_s = timeout_s, compile_timeout_s

    def _body(self, lang: str, program: str, stdin: str) -> bytes:
        request = {
            "code": program,
            "language": LANGUAGE_NAMES[lang],
            "stdin": stdin,
            "compile_timeout": self.compile_timeout_s,
            "run_timeout": self.timeout_s,
        }
        return json.dumps(request, ensure_ascii=True).encode("ascii")

    def _compile_error(self, lang: str, message: str, total: int) -> ExecutionResult:
        return make_result(
            Verdict.COMPILE_ERROR,
            compiled=False,
            tests_total=total,
            detail=tail(message),
            failure=described(failures.compile_failure, message, lang),
        )

    async def run(self, pool: EndpointPool, lang, program, tests, link) -> ExecutionResult:
        spec = harness.parse_tests(tests, lang)
        total = spec.total if spec is not None else 0
        if lang not in LANGUAGE_NAMES:
            return _infra(f"sandbox_fusion: no {lang} there", total)
        if spec is not None and spec.kind != "stdio":
            return _infra(f"sandbox_fusion: {spec.kind} tests need our runner (stdio only)", total)
        if spec is None:
            return await self._compile_only(pool, lang, program)
        if lang == "python":  # a syntax error is a COMPILE_ERROR, as locally (not a crash)
            ok, why = python_compiles(program)
            if not ok:
                return self._compile_error(lang, why, total)
        judge = StdioJudge(SPECS[lang], spec)
        for i, (given, expected) in enumerate(zip(spec.inputs, spec.outputs)):
            body = self._body(lang, program, harness.as_text(given))
            (kind, value), _url = await pool.call(RUN_CODE_PATH, body, parse_answer)
            if kind == "compile_timeout":
                why = f"compilation exceeded {self.compile_timeout_s:g}s"
                return self._compile_error(lang, why, total)
            if kind == "compile":
                return self._compile_error(lang, value, total)
            if judge.add(i, given, expected, value):  # the same rules as local stdio tests
                break
        return judge.result()

    async def _compile_only(self, pool: EndpointPool, lang, program) -> ExecutionResult:
        if lang == "python":  # compile() here: nothing runs
            ok, detail = python_compiles(program)
            if ok:
                return make_result(Verdict.COMPILED, compiled=True)
            return self._compile_error(lang, detail, 0)
        if lang not in COMPILED_LANGUAGES:
            return _infra(f"sandbox_fusion: {lang} has no compile step there (it would run)", 0)
        (kind, value), _url = await pool.call(
            RUN_CODE_PATH, self._body(lang, program, ""), parse_answer
        )
        if kind == "compile_timeout":
            return self._compile_error(lang, f"compilation exceeded {self.compile_timeout_s:g}s", 0)
        if kind == "compile":
            return self._compile_error(lang, value, 0)
        return make_result(Verdict.COMPILED, compiled=True)
