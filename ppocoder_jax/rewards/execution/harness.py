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
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

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


def parse_channel(stdout: bytes, nonce: str) -> ChannelReport:
    """Read the runner's nonce-prefixed lines; anything else on the channel is ignored."""
    report = ChannelReport(results={})
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
    return report


# The runner executes inside the sandbox, with the sandbox's Python. Kept dependency-free.
# RUNNER_BODY defines main(); the Python test server (zygote.py) preloads it once and calls
# main() in each job's process, a fresh interpreter runs RUNNER_SOURCE.
RUNNER_BODY = r'''
import _ast, json, os, signal, sys

PROGRAM_MODULE = "__program__"
_DUNDERS = frozenset("""__eq__ __ne__ __lt__ __le__ __gt__ __ge__ __bool__ __len__ __abs__
__sub__ __rsub__ __add__ __radd__ __contains__ __float__ __int__ __index__ __round__ __str__
__repr__ __format__ __iter__ __getitem__ __hash__ __instancecheck__""".split())
_ATOMS = (type(None), bool, int, float, complex, str, bytes)


class _TestTimeout(BaseException):
    pass


class _Forged(BaseException):
    pass


def _trusted_class(klass):
    if not (klass.__flags__ & (1 << 9)):  # static (C) types are trusted
        return True
    if not any(name in vars(klass) for name in _DUNDERS):
        return True
    module = sys.modules.get(klass.__module__)
    if module is None or klass.__module__ == PROGRAM_MODULE:
        return False
    obj = module
    for part in klass.__qualname__.split("."):
        obj = getattr(obj, part, None)
    return obj is klass


def _inspect(value, budget):
    budget[0] -= 1
    if budget[0] < 0:
        return
    t = type(value)
    if t in _ATOMS:
        return
    if t in (list, tuple, set, frozenset):
        for item in value:
            _inspect(item, budget)
        return
    if t is dict:
        for k, v in value.items():
            _inspect(k, budget)
            _inspect(v, budget)
        return
    for klass in t.__mro__:
        if not _trusted_class(klass):
            raise _Forged("value of program-defined type %s overrides comparison" % t.__name__)


def _checked(value):
    _inspect(value, [100000])
    return value


def _wrap_calls(node):
    # Every call's value goes through __ppocoder_checked__. The C module _ast, not ast.py:
    # importing ast (enum, contextlib, ...) cost more than the rest of the runner's start-up.
    for name in node._fields:
        value = getattr(node, name, None)
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, _ast.AST):
                    value[i] = _wrap_calls(item)
        elif isinstance(value, _ast.AST):
            setattr(node, name, _wrap_calls(value))
    if not isinstance(node, _ast.Call):
        return node
    func = _ast.Name(id="__ppocoder_checked__", ctx=_ast.Load())
    wrapped = _ast.Call(func=func, args=[node], keywords=[])
    for new in (func, wrapped):
        for attr in ("lineno", "col_offset", "end_lineno", "end_col_offset"):
            setattr(new, attr, getattr(node, attr))
    return wrapped


def _plain(value, depth=0):
    if depth > 100:
        raise TypeError("value nested too deeply")
    t = type(value)
    if t in (type(None), bool, int, float, str):
        return value
    if t in (list, tuple):
        return [_plain(v, depth + 1) for v in value]
    if t is dict:
        return {str(k) if type(k) in (int, float, bool) else k: _plain(v, depth + 1) for k, v in value.items() if type(k) in (str, int, float, bool)}
    raise TypeError("return value of type %s is not plain data" % t.__name__)


def _describe(err):
    text = "%s: %s" % (type(err).__name__, err)
    return " ".join(text.split())[:300]


def _alarm(signum, frame):
    raise _TestTimeout()


def main():
    nonce = sys.stdin.readline().strip()
    job = json.loads(sys.stdin.read())
    chan = os.fdopen(os.dup(1), "w", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)

    def say(*parts):
        chan.write(nonce + " " + " ".join(parts) + "\n")
        chan.flush()

    timeout = float(job["timeout"])
    with open(job["program"], "rb") as f:
        source = f.read()
    ns = {"__name__": PROGRAM_MODULE, "__builtins__": __builtins__}
    signal.signal(signal.SIGALRM, _alarm)
    try:
        code = compile(source, job["program"], "exec", dont_inherit=True)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        exec(code, ns)
        signal.setitimer(signal.ITIMER_REAL, 0)
    except _TestTimeout:
        say("load", "timeout")
        return
    except BaseException as err:
        signal.setitimer(signal.ITIMER_REAL, 0)
        say("load", "error", _describe(err))
        return
    say("loaded")
    if job["kind"] == "call":
        fn = ns.get(job["fn_name"])
        if fn is None and isinstance(ns.get("Solution"), type):
            fn = getattr(ns["Solution"](), job["fn_name"], None)
        if not callable(fn):
            say("0", "error", "NameError: function %s not defined" % job["fn_name"])
            return
        for i, args in enumerate(job["inputs"]):
            try:
                signal.setitimer(signal.ITIMER_REAL, timeout)
                out = fn(*args)
                signal.setitimer(signal.ITIMER_REAL, 0)
            except _TestTimeout:
                say(str(i), "timeout")
                return
            except BaseException as err:
                signal.setitimer(signal.ITIMER_REAL, 0)
                say(str(i), "error", _describe(err))
                return
            try:
                say(str(i), "value", json.dumps(_plain(out)))
            except Exception as err:
                say(str(i), "unplain", _describe(err))
    else:
        try:
            tree = compile(job["test_code"], "tests.py", "exec", _ast.PyCF_ONLY_AST, dont_inherit=True)
            test = compile(_wrap_calls(tree), "tests.py", "exec", dont_inherit=True)
        except SyntaxError as err:
            say("0", "badtest", _describe(err))
            return
        ns["__ppocoder_checked__"] = _checked
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            exec(test, ns)
            signal.setitimer(signal.ITIMER_REAL, 0)
        except _TestTimeout:
            say("0", "timeout")
            return
        except (AssertionError, _Forged) as err:
            signal.setitimer(signal.ITIMER_REAL, 0)
            say("0", "fail", _describe(err))
        except BaseException as err:
            signal.setitimer(signal.ITIMER_REAL, 0)
            say("0", "error", _describe(err))
            return
        else:
            say("0", "pass")
    say("done")


'''
RUNNER_SOURCE = RUNNER_BODY + "main()\n"
