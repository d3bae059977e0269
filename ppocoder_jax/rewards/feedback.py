"""Execution feedback a policy reads between attempts (multi-turn RL, as RLEF).

`feedback_text(result, max_chars=...)` turns an ExecutionResult (its verdict and its
`failure`, the failing test that decided the verdict) into one short paragraph:

    COMPILE_ERROR  Compilation failed:
                   <the compiler's first error lines>
    WRONG_ANSWER   Test <i> failed.                  (standard input/output test)
                   Input:
                   <stdin>
                   Expected output:
                   <expected stdout>
                   Your output:
                   <the program's stdout, or "(no output)">
                   Test <i> failed.                  (call-based test)
                   Call: <f(args)>
                   Expected: <repr>
                   Returned: <repr>                  (or the reason there is no value)
                   Test failed: <assert statement>   (assert-style test)
                   <call> returned <repr>            (where the assert compares a call's value)
                   <the assertion's message>         (where it has one)
    RUNTIME_ERROR  Runtime error: <the exception's last line / the signal>
                   + where: "Input:\\n<stdin>" (stdin/stdout test <i>) or "While running: ..."
    TIMEOUT        Time limit exceeded on test <i>   + where, as for a runtime error
    MEMORY_LIMIT   Memory limit exceeded on test <i> + where
    OUTPUT_LIMIT   Output limit exceeded on test <i> + where
    PASS           All tests passed.
    COMPILED       The program compiles (no tests were run).
    INFRA_ERROR    ValueError: the sandbox failed, not the program; the caller masks the row.

Every variable part (input, expected, output, message, ...) shares what `max_chars` leaves
after the fixed words (short parts whole, long ones cut to a fair share: their beginning, the
cut marked "..."), and the whole text is cut to `max_chars` the same way. The text depends only
on the result: no sandbox paths (scrubbed by the executor, again here), no nonces, no timings.
"""

from __future__ import annotations

from ppocoder_jax.rewards.execution.failures import scrub
from ppocoder_jax.rewards.execution.verdicts import ExecutionResult, TestFailure, Verdict, clip

_LIMITS = {
    Verdict.TIMEOUT: "Time limit exceeded",
    Verdict.MEMORY_LIMIT: "Memory limit exceeded",
    Verdict.OUTPUT_LIMIT: "Output limit exceeded",
}
_EMPTY_ASSERT_MESSAGES = ("", "AssertionError", "AssertionError:")


class _Field(str):
    """A variable part of the text (cut to its share of the budget); plain str: fixed words."""


def feedback_text(result: ExecutionResult, *, max_chars: int) -> str:
    """The paragraph a policy reads about `result` (see the module docstring), at most
    `max_chars` characters. Raises ValueError for an INFRA_ERROR result (our failure: the caller
    masks such a row and never shows it to the policy) and for max_chars < 1."""
    if not isinstance(max_chars, int) or max_chars < 1:
        raise ValueError(f"max_chars must be a positive int, not {max_chars!r}")
    verdict = result.verdict
    if verdict is Verdict.INFRA_ERROR:
        raise ValueError(
            "feedback_text: an INFRA_ERROR result has no feedback (the sandbox failed, not "
            f"the program; mask the row): {result.detail[:200]}"
        )
    return _fit(_parts(result), max_chars)


def _parts(result: ExecutionResult) -> list[str]:
    verdict, failure = result.verdict, result.failure
    if verdict is Verdict.PASS:
        return ["All tests passed."]
    if verdict is Verdict.COMPILED:
        return ["The program compiles (no tests were run)."]
    if verdict is Verdict.COMPILE_ERROR:
        message = failure.message if failure is not None else result.detail
        return ["Compilation failed:\n", _Field(scrub(message).strip() or "(no message)")]
    if failure is None:  # a result made without one: what the verdict and its detail say
        return _without_failure(result)
    if verdict is Verdict.WRONG_ANSWER:
        return _wrong_answer(failure)
    if verdict is Verdict.RUNTIME_ERROR:
        message = scrub(failure.message).strip() or "the program failed"
        return ["Runtime error: ", _Field(message), *_where(failure)]
    head = _LIMITS.get(verdict, verdict.value)
    if failure.index is not None:
        head += f" on test {failure.index}"
    return [head, *_where(failure)]


def _wrong_answer(failure: TestFailure) -> list[str]:
    i = failure.index if failure.index is not None else 0
    if failure.test_format == "stdio":
        return [
            f"Test {i} failed.\nInput:\n",
            _Field(_shown(failure.input, "(empty)")),
            "\nExpected output:\n",
            _Field(_shown(failure.expected, "(empty)")),
            "\nYour output:\n",
            _Field(_shown(scrub(failure.actual), "(no output)")),
        ]
    if failure.test_format == "call":
        parts = [f"Test {i} failed.\nCall: ", _Field(failure.call or failure.input)]
        parts += ["\nExpected: ", _Field(failure.expected)]
        if failure.actual:
            parts += ["\nReturned: ", _Field(failure.actual)]
        elif failure.message:
            parts += ["\n", _Field(scrub(failure.message))]
        return parts
    parts = ["Test failed", *((": ", _Field(failure.input)) if failure.input else (".",))]
    if failure.call and failure.actual:
        parts += ["\n", _Field(failure.call), " returned ", _Field(failure.actual)]
    message = scrub(failure.message).strip()
    if message not in _EMPTY_ASSERT_MESSAGES:
        parts += ["\n", _Field(message)]
    return parts


def _where(failure: TestFailure) -> list[str]:
    """Which test was running when the program crashed or hit a limit."""
    if failure.test_format == "stdio":
        return ["\nInput:\n", _Field(_shown(failure.input, "(empty)"))]
    running = failure.call if failure.test_format == "call" else failure.input
    if running:
        return ["\nWhile running: ", _Field(running)]
    return []


def _without_failure(result: ExecutionResult) -> list[str]:
    verdict = result.verdict
    if verdict is Verdict.WRONG_ANSWER:
        return ["Wrong answer."]
    lines = [ln.strip() for ln in scrub(result.detail).splitlines() if ln.strip()]
    if verdict is Verdict.RUNTIME_ERROR:
        return ["Runtime error: ", _Field(lines[-1] if lines else "the program failed")]
    return [_LIMITS.get(verdict, verdict.value) + "."]


def _shown(text: str, empty: str) -> str:
    text = text.rstrip()
    return text if text.strip() else empty


def _fit(parts: list[str], max_chars: int) -> str:
    """Cut the fields to fair shares of what the fixed words leave, then the whole text."""
    fields = [i for i, p in enumerate(parts) if isinstance(p, _Field)]
    left = max_chars - sum(len(p) for p in parts if not isinstance(p, _Field))
    budget: dict[int, int] = {}
    for n, i in enumerate(sorted(fields, key=lambda i: (len(parts[i]), i))):
        share = max(0, left) // (len(fields) - n)
        budget[i] = min(len(parts[i]), share)
        left -= budget[i]
    text = "".join(clip(str(p), budget[i]) if i in budget else p for i, p in enumerate(parts))
    return clip(text, max_chars)
