"""What failed, for ExecutionResult.failure: compiler and runtime messages made readable.

Pure functions of a job's outputs (no process, no file): the compiler's first error, the
exception line of a crash in each language, the signal or exit status otherwise, with job
directory paths and object addresses scrubbed so that the same program gives the same text in
every run, on every sandbox path (bwrap's /sandbox, limits-only job directories, servers).
"""

from __future__ import annotations

import json
import re
import signal
from typing import Any

from ppocoder_jax.rewards.execution import harness
from ppocoder_jax.rewards.execution.verdicts import (
    FAILURE_FIELD_CHARS,
    TestFailure,
    Verdict,
    failure_kind,
)

# Only this much of a stream is searched (the end of stderr holds an uncaught exception; a
# Java stack overflow prints ~1024 frames after its line, ~50 KB).
_SEARCH_BYTES = 256 << 10
_LINE_CHARS = 1000  # a message line is cut to this before the path regexes see it
_MAX_COMPILE_LINES = 10

# A job's directory, as the program, the compiler or a server sees it: "/sandbox" (bwrap),
# "<root>/ppocoder-exec-<id>[/job-<n>|/<lang>-server-<n>|/pyserver-<n>]" (limits-only mode).
# Found by its own name, then extended back over the path before it (a regex that starts
# with the path backtracks quadratically on a long run of "/x/x/x").
_DIR = re.compile(
    r"/(?:sandbox|ppocoder-exec-\w+)(?:/(?:job-\d+(?:-io)?|[\w.-]+-server-\d+|pyserver-\d+))?"
)
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_PATH_CHARS = _NAME_CHARS | {"/"}
_BACK_CHARS = 4096  # how far back a directory's path is looked for
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")

_JAVA = re.compile(r'^Exception in thread "[^"\n]*" (.+)$', re.MULTILINE)
_CSHARP = re.compile(
    r"^(?:\[ERROR\] FATAL UNHANDLED EXCEPTION: |Unhandled Exception:\s*)?"
    r"([\w.`]+(?:Exception|Error)\b.*)$",
    re.MULTILINE,
)
_JS = re.compile(r"^(?:Uncaught )?((?:[A-Za-z_$][\w$.]*)?(?:Error|Exception)\b.*)$", re.MULTILINE)
_PHP = re.compile(r"^(?:PHP )?(?:Fatal error|Parse error): +(.+)$", re.MULTILINE)
_CPP = re.compile(
    r"terminate called after throwing an instance of '([^'\n]+)'\n\s*what\(\):\s*(.*)$",
    re.MULTILINE,
)
_NODE_NOISE = re.compile(r"^(?:\s+at |Node\.js v|\(Use `node )")
_PY_LINE = re.compile(r"\(<ppocoder-program>, line (\d+)\)$")


def scrub(text: str) -> str:
    """Job directory paths dropped ("/sandbox/program.js:1" -> "program.js:1"; a bare
    directory -> "<sandbox>") and object addresses (" at 0x7f...") removed. Linear time."""
    if "/sandbox" in text or "/ppocoder-exec-" in text:
        out, pos = [], 0
        for m in _DIR.finditer(text):
            start, end = m.start(), m.end()
            after = text[end : end + 1]
            if after == "." and text[end + 1 : end + 2] not in _NAME_CHARS:
                after = ""  # the end of a sentence
            if after in _NAME_CHARS and after:  # "/sandboxes": another name
                continue
            j = start
            while j > max(pos, start - _BACK_CHARS) and text[j - 1] in _PATH_CHARS:
                j -= 1
            first_slash = text.find("/", j, start)
            out.append(text[pos : start if first_slash < 0 else first_slash])
            if after == "/":
                end += 1
            else:
                out.append("<sandbox>")
            pos = end
        out.append(text[pos:])
        text = "".join(out)
    return _ADDRESS.sub("", text)


def _decode(data: bytes | str, tail: bool = True) -> str:
    if isinstance(data, str):
        return data[-_SEARCH_BYTES:] if tail else data[:_SEARCH_BYTES]
    part = data[-_SEARCH_BYTES:] if tail else data[:_SEARCH_BYTES]
    return part.decode("utf-8", errors="replace")


def _line(text: str) -> str:
    return scrub(text.strip()[:_LINE_CHARS])


def _last(pattern: re.Pattern, text: str, group: int = 1) -> str:
    last = None
    for last in pattern.finditer(text):  # noqa: B007 - the last match is the one wanted
        pass
    return "" if last is None else last.group(group)


def status_text(returncode: int | None, sig: int | None) -> str:
    """'killed by signal 11 (SIGSEGV)' / 'exit code 3'."""
    if sig:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            return f"killed by signal {sig}"
        return f"killed by signal {sig} ({name})"
    return f"exit code {returncode}"


def runtime_message(lang: str, stdout: bytes, stderr: bytes, returncode, sig) -> str:
    """The exception's line of a crashed program (per language), else the last line it wrote
    to stderr and how it ended."""
    err = _decode(stderr)
    found = ""
    if lang == "java":
        found = _last(_JAVA, err)
    elif lang == "csharp":
        found = _last(_CSHARP, err)
    elif lang == "javascript":
        found = _last(_JS, err)
    elif lang == "php":
        found = _last(_PHP, err) or _last(_PHP, _decode(stdout))
    elif lang in ("cpp", "c"):
        m = None
        for m in _CPP.finditer(err):  # noqa: B007
            pass
        if m is not None:
            kind, what = m.group(1), m.group(2).strip()
            found = kind if what in ("", kind) else f"{kind}: {what}"
    if found:
        return _line(found)
    lines = [
        ln
        for ln in err.splitlines()
        if ln.strip() and not (lang == "javascript" and _NODE_NOISE.match(ln))
    ]
    if lang == "python":
        # A traceback ends with the exception's line; a program that wrote to stderr and
        # exited: its last line and the status.
        if lines and not lines[-1].startswith(" "):
            tail = _line(lines[-1])
            if ":" in tail or tail.endswith(("Error", "Exception", "Interrupt", "Exit")):
                return tail
    status = status_text(returncode, sig)
    return f"{_line(lines[-1])} ({status})" if lines else status


def compile_message(text: str, lang: str) -> str:
    """The compiler's first error: from its first line mentioning an error, up to the next
    such line (its source excerpt, caret and notes), at most _MAX_COMPILE_LINES lines; node's
    stack frames and banner dropped; paths scrubbed."""
    head = _decode(text, tail=False)
    lines = [ln.rstrip()[:_LINE_CHARS] for ln in head.splitlines()]
    if lang == "javascript":
        # "program.js:1\n<source line>\n<caret>\n\nSyntaxError: ...\n    at ...": all of it
        # but the frames, the blank lines and the banner.
        kept = [ln for ln in lines if ln.strip() and not _NODE_NOISE.match(ln)]
        return scrub("\n".join(kept[:_MAX_COMPILE_LINES]))
    if lang == "python":
        return _python_compile_message(lines)
    start = next((i for i, ln in enumerate(lines) if "error" in ln.lower()), None)
    if start is None:  # a limit, a crash: the beginning of whatever it said
        kept = [ln for ln in lines if ln.strip()][:_MAX_COMPILE_LINES]
        return scrub("\n".join(kept))
    kept = [lines[start]]
    for ln in lines[start + 1 :]:
        if len(kept) >= _MAX_COMPILE_LINES or "error" in ln.lower():
            break
        if ln.strip():
            kept.append(ln)
    return scrub("\n".join(kept))


_PY_FILE_LINE = re.compile(r'^\s*File "([^"]*)", line (\d+)')


def _python_compile_message(lines: list[str]) -> str:
    """python_compiles' one line, or the traceback of a compile in the sandbox (a program too
    long to byte-compile in-process) said the same way: "<error> (program.py, line N)" and the
    line's source."""
    lines = [ln for ln in lines if ln.strip()]
    if len(lines) <= 1:
        return scrub((lines[0] if lines else "").replace("<ppocoder-program>", "program.py"))
    message = lines[-1].strip()
    for i in range(len(lines) - 2, -1, -1):
        m = _PY_FILE_LINE.match(lines[i])
        if m is not None:
            name = m.group(1).rsplit("/", 1)[-1]
            message += f" ({name}, line {m.group(2)})"
            if i + 1 < len(lines) - 1 and lines[i + 1].startswith("    "):
                message += "\n    " + lines[i + 1].strip()
            break
    return scrub(message)


def python_compile_message(detail: str, program: str) -> str:
    """python_compiles' message with the file named program.py and the offending line."""
    message = compile_message(detail, "python")
    m = _PY_LINE.search(detail)
    if m is not None:
        n = int(m.group(1))
        lines = program.split("\n", n)
        if 1 <= n <= len(lines):
            line = lines[n - 1].strip()[:_LINE_CHARS]
            if line:
                message += "\n    " + line
    return message


def compile_failure(text: str, lang: str, *, program: str = "") -> TestFailure:
    if lang == "python" and program:
        message = python_compile_message(text, program)
    else:
        message = compile_message(text, lang)
    return TestFailure(None, "compile_error", message=message or "compilation failed")


def load_failure(verdict: Verdict, why: str) -> TestFailure:
    """The program failed while it was loaded, before its first call- or assert-style test."""
    if why == "timeout":
        why = "time limit exceeded while loading the program"
    return TestFailure(0, failure_kind(verdict), message=scrub(why[:_LINE_CHARS]))


def _clipped(text: str) -> str:
    return text[: FAILURE_FIELD_CHARS + 1]


def _value_text(value: Any) -> str:
    try:
        return _clipped(repr(value))
    except (ValueError, RecursionError):  # an int beyond the str-conversion limit, ...
        return f"<{type(value).__name__}>"


def stdio_failure(lang: str, index: int, given, expected, out, verdict: Verdict) -> TestFailure:
    """A failing standard input/output test (out: its sandbox.RunOutcome)."""
    if verdict is Verdict.WRONG_ANSWER or verdict is Verdict.OUTPUT_LIMIT:
        message = "output limit exceeded" if verdict is Verdict.OUTPUT_LIMIT else ""
    elif verdict is Verdict.TIMEOUT:
        message = "time limit exceeded"
    else:
        message = runtime_message(lang, out.stdout, out.stderr, out.returncode, out.signal)
    return TestFailure(
        index,
        failure_kind(verdict),
        "stdio",
        input=_clipped(harness.as_text(given)),
        expected=_clipped(harness.as_text(expected)),
        # The program's own stdout, but without our job directory's path (PHP prints its
        # warnings there, with the file's path).
        actual=scrub(out.stdout[: 4 * FAILURE_FIELD_CHARS].decode("utf-8", errors="replace")),
        message=message,
    )


def call_text(tests: harness.TestSpec, index: int) -> str:
    """A call-based test's call as Python source: "f(1, [2, 3])"."""
    args = ", ".join(_value_text(a) for a in tests.inputs[index])
    return _clipped(f"{tests.fn_name}({args})")


def expected_value_text(expected: Any) -> str:
    """APPS wraps a call's expected return value in a list of one."""
    if isinstance(expected, list) and len(expected) == 1:
        expected = expected[0]
    return _value_text(expected)


def returned_value_text(payload: str) -> str:
    try:
        return _value_text(json.loads(payload))
    except ValueError:
        return _clipped(payload)


def runner_failure(
    tests: harness.TestSpec,
    index: int,
    verdict: Verdict,
    *,
    status: str = "",
    payload: str = "",
    info: dict | None = None,
    message: str = "",
) -> TestFailure:
    """A failing call-based or assert-style test, from the runner's report (status and payload
    of the test's result line, info: its `info` line) or from how the process ended."""
    kind = failure_kind(verdict)
    if tests.kind == "assert":
        info = info or {}
        if status == "fail":
            kind = "assert"
            payload = payload.removeprefix("_Forged: ")  # the runner's name for it
        return TestFailure(
            index,
            kind,
            "assert",
            input=info.get("input", ""),
            expected=info.get("expected", ""),
            actual=info.get("actual", ""),
            call=info.get("call", ""),
            message=scrub((message or payload)[:_LINE_CHARS]),
        )
    call = call_text(tests, index)
    actual = returned_value_text(payload) if status == "value" else ""
    return TestFailure(
        index,
        kind,
        "call",
        input=call,
        expected=expected_value_text(tests.outputs[index]),
        actual=actual,
        call=call,
        message="" if status == "value" else scrub((message or payload)[:_LINE_CHARS]),
    )
