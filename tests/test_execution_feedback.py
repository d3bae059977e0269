"""Execution feedback a policy reads: ExecutionResult.failure and rewards.feedback.feedback_text.

For Python (assert-style, call-based, stdin), C++ and JavaScript (stdin): a compile error, a wrong
answer, a runtime error and a timeout give the failure detail and the text a reader expects,
scrubbed of job paths and nonces, within max_chars; the verdicts are the ones the executor gave
before failures existed (fixed below); a cached second submit carries the same failure.
"""

from __future__ import annotations

import re
import shutil

import pytest

from ppocoder_jax.rewards.execution import Executor, Verdict
from ppocoder_jax.rewards.execution.failures import scrub
from ppocoder_jax.rewards.execution.languages import SPECS
from ppocoder_jax.rewards.execution.verdicts import (
    FAILURE_FIELD_CHARS,
    TestFailure,
    make_result,
)
from ppocoder_jax.rewards.feedback import feedback_text

pytestmark = pytest.mark.toolchain

TIMEOUT_S = 1.0
ADD = {"inputs": ["1 2\n", "30 12\n"], "outputs": ["3\n", "42\n"]}
CALL = {"inputs": [[1, 2], [3, 4]], "outputs": [[3], [7]], "fn_name": "add"}
V = Verdict

# name -> (job, (verdict, tests_passed, tests_total), detail or None): the verdicts, counts and
# (where the toolchain does not word it) detail that the executor gave before this change.
JOBS = {
    "py_stdio_compile": (
        ("python", "def f(x)\n    return x\n", ADD),
        (V.COMPILE_ERROR, 0, 2),
        "SyntaxError: expected ':' (<ppocoder-program>, line 1)",
    ),
    "py_stdio_wrong": (
        ("python", "a, b = map(int, input().split())\nprint(a - b)\n", ADD),
        (V.WRONG_ANSWER, 0, 2),
        "test 0: wrong answer: '-1'",
    ),
    "py_stdio_crash": (
        ("python", "a, b = map(int, input().split())\nprint(a // 0)\n", ADD),
        (V.RUNTIME_ERROR, 0, 2),
        None,
    ),
    "py_stdio_timeout": (
        ("python", "while True:\n    pass\n", ADD),
        (V.TIMEOUT, 0, 2),
        "test 0: time limit exceeded",
    ),
    "py_assert_compile": (
        ("python", "def add(a, b)\n    return a + b\n", {"test_code": "assert add(1, 2) == 3\n"}),
        (V.COMPILE_ERROR, 0, 1),
        "SyntaxError: expected ':' (<ppocoder-program>, line 1)",
    ),
    "py_assert_wrong": (
        (
            "python",
            "def add(a, b):\n    return a - b\n",
            {"test_code": "assert add(1, 0) == 1\nassert add(1, 1) == 2\n"},
        ),
        (V.WRONG_ANSWER, 0, 1),
        "test 0: wrong answer: AssertionError:",
    ),
    "py_assert_crash": (
        ("python", "def add(a, b):\n    return a / 0\n", {"test_code": "assert add(1, 2) == 3\n"}),
        (V.RUNTIME_ERROR, 0, 1),
        "test 0: ZeroDivisionError: division by zero",
    ),
    "py_assert_timeout": (
        (
            "python",
            "def add(a, b):\n    while True:\n        pass\n",
            {"test_code": "assert add(1, 2) == 3\n"},
        ),
        (V.TIMEOUT, 0, 1),
        "test 0: time limit exceeded",
    ),
    "py_call_compile": (
        ("python", "def add(a, b):\nreturn a + b\n", CALL),
        (V.COMPILE_ERROR, 0, 2),
        "IndentationError: expected an indented block after function definition on line 1 "
        "(<ppocoder-program>, line 2)",
    ),
    "py_call_wrong": (
        ("python", "def add(a, b):\n    return a * b\n", CALL),
        (V.WRONG_ANSWER, 0, 2),
        "test 0: wrong answer: 2",
    ),
    "py_call_crash": (
        ("python", "def add(a, b):\n    return a / 0\n", CALL),
        (V.RUNTIME_ERROR, 0, 2),
        "test 0: ZeroDivisionError: division by zero",
    ),
    "py_call_timeout": (
        ("python", "def add(a, b):\n    while True:\n        pass\n", CALL),
        (V.TIMEOUT, 0, 2),
        "test 0: time limit exceeded",
    ),
    "cpp_compile": (("cpp", "int main() { return x }\n", ADD), (V.COMPILE_ERROR, 0, 2), None),
    "cpp_wrong": (
        (
            "cpp",
            "#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a*b<<std::endl;}\n",
            ADD,
        ),
        (V.WRONG_ANSWER, 0, 2),
        "test 0: wrong answer: '2'",
    ),
    "cpp_crash": (
        ("cpp", "#include <vector>\nint main(){std::vector<int> v; return v.at(5);}\n", ADD),
        (V.RUNTIME_ERROR, 0, 2),
        None,
    ),
    "cpp_segfault": (
        ("cpp", "int main(){ volatile int *p = 0; *p = 1; return 0; }\n", ADD),
        (V.RUNTIME_ERROR, 0, 2),
        "test 0: killed by signal 11: ",
    ),
    "cpp_timeout": (
        ("cpp", "int main(){ volatile int x = 0; for (;;) x++; }\n", ADD),
        (V.TIMEOUT, 0, 2),
        "test 0: time limit exceeded",
    ),
    "js_compile": (
        ("javascript", "function add(a, b) { return a + b;\n", ADD),
        (V.COMPILE_ERROR, 0, 2),
        None,
    ),
    "js_wrong": (("javascript", "console.log(7);\n", ADD), (V.WRONG_ANSWER, 0, 2), None),
    "js_crash": (
        ("javascript", "throw new Error('boom');\n", ADD),
        (V.RUNTIME_ERROR, 0, 2),
        None,
    ),
    "js_timeout": (
        ("javascript", "for (;;) {}\n", ADD),
        (V.TIMEOUT, 0, 2),
        "test 0: time limit exceeded",
    ),
}

# name -> the feedback text (max_chars=2000), exactly
TEXTS = {
    "py_stdio_compile": "Compilation failed:\nSyntaxError: expected ':' (program.py, line 1)\n"
    "    def f(x)",
    "py_stdio_wrong": "Test 0 failed.\nInput:\n1 2\nExpected output:\n3\nYour output:\n-1",
    "py_stdio_crash": "Runtime error: ZeroDivisionError: integer division or modulo by zero\n"
    "Input:\n1 2",
    "py_stdio_timeout": "Time limit exceeded on test 0\nInput:\n1 2",
    "py_assert_compile": "Compilation failed:\nSyntaxError: expected ':' (program.py, line 1)\n"
    "    def add(a, b)",
    "py_assert_wrong": "Test failed: assert add(1, 1) == 2\nadd(1, 1) returned 0",
    "py_assert_crash": "Runtime error: ZeroDivisionError: division by zero\n"
    "While running: assert add(1, 2) == 3",
    "py_assert_timeout": "Time limit exceeded on test 0\nWhile running: assert add(1, 2) == 3",
    "py_call_compile": "Compilation failed:\nIndentationError: expected an indented block after "
    "function definition on line 1 (program.py, line 2)\n    return a + b",
    "py_call_wrong": "Test 0 failed.\nCall: add(1, 2)\nExpected: 3\nReturned: 2",
    "py_call_crash": "Runtime error: ZeroDivisionError: division by zero\nWhile running: add(1, 2)",
    "py_call_timeout": "Time limit exceeded on test 0\nWhile running: add(1, 2)",
    "cpp_wrong": "Test 0 failed.\nInput:\n1 2\nExpected output:\n3\nYour output:\n2",
    "cpp_crash": "Runtime error: std::out_of_range: vector::_M_range_check: __n (which is 5) "
    ">= this->size() (which is 0)\nInput:\n1 2",
    "cpp_segfault": "Runtime error: killed by signal 11 (SIGSEGV)\nInput:\n1 2",
    "cpp_timeout": "Time limit exceeded on test 0\nInput:\n1 2",
    "js_wrong": "Test 0 failed.\nInput:\n1 2\nExpected output:\n3\nYour output:\n7",
    "js_crash": "Runtime error: Error: boom\nInput:\n1 2",
    "js_timeout": "Time limit exceeded on test 0\nInput:\n1 2",
}

# name -> the failure, exactly (for the toolchain-worded compile errors: see the tests below)
FAILURES = {
    "py_stdio_wrong": TestFailure(0, "wrong_answer", "stdio", "1 2\n", "3\n", "-1\n"),
    "py_stdio_crash": TestFailure(
        0,
        "runtime_error",
        "stdio",
        "1 2\n",
        "3\n",
        message="ZeroDivisionError: integer division or modulo by zero",
    ),
    "py_stdio_timeout": TestFailure(
        0, "timeout", "stdio", "1 2\n", "3\n", message="time limit exceeded"
    ),
    "py_assert_wrong": TestFailure(
        0,
        "assert",
        "assert",
        input="assert add(1, 1) == 2",
        expected="2",
        actual="0",
        call="add(1, 1)",
        message="AssertionError:",
    ),
    "py_assert_crash": TestFailure(
        0,
        "runtime_error",
        "assert",
        input="assert add(1, 2) == 3",
        message="ZeroDivisionError: division by zero",
    ),
    "py_assert_timeout": TestFailure(
        0, "timeout", "assert", input="assert add(1, 2) == 3", message="time limit exceeded"
    ),
    "py_call_wrong": TestFailure(
        0, "wrong_answer", "call", "add(1, 2)", "3", "2", call="add(1, 2)"
    ),
    "py_call_crash": TestFailure(
        0,
        "runtime_error",
        "call",
        "add(1, 2)",
        "3",
        call="add(1, 2)",
        message="ZeroDivisionError: division by zero",
    ),
    "py_call_timeout": TestFailure(
        0, "timeout", "call", "add(1, 2)", "3", call="add(1, 2)", message="time limit exceeded"
    ),
    "cpp_wrong": TestFailure(0, "wrong_answer", "stdio", "1 2\n", "3\n", "2\n"),
    "cpp_segfault": TestFailure(
        0, "runtime_error", "stdio", "1 2\n", "3\n", message="killed by signal 11 (SIGSEGV)"
    ),
    "cpp_timeout": TestFailure(
        0, "timeout", "stdio", "1 2\n", "3\n", message="time limit exceeded"
    ),
    "js_wrong": TestFailure(0, "wrong_answer", "stdio", "1 2\n", "3\n", "7\n"),
    "js_crash": TestFailure(0, "runtime_error", "stdio", "1 2\n", "3\n", message="Error: boom"),
    "js_timeout": TestFailure(0, "timeout", "stdio", "1 2\n", "3\n", message="time limit exceeded"),
}

_NONCE = re.compile(r"[0-9a-f]{32}")
_PATHS = ("/sandbox", "ppocoder-exec-", "/tmp/", "job-")


def _have(lang: str) -> bool:
    return all(shutil.which(t) for t in SPECS[lang].tools)


def _lang(name: str) -> str:
    return JOBS[name][0][0]


def _clean(text: str) -> None:
    assert not any(p in text for p in _PATHS), text
    assert not _NONCE.search(text), text


# Python jobs go to the Python servers and to one interpreter per job: the same failures.
@pytest.fixture(scope="module", params=["servers", "per_job"])
def ex(request):
    with Executor(
        workers=2,
        timeout_s=TIMEOUT_S,
        compile_timeout_s=60.0,
        python_server=request.param == "servers",
    ) as executor:
        yield executor


@pytest.fixture(scope="module")
def results(ex):
    names = [n for n in JOBS if _have(_lang(n))]
    futures = {n: ex.submit(*JOBS[n][0]) for n in names}
    return {n: f.result() for n, f in futures.items()}


@pytest.mark.parametrize("name", sorted(JOBS))
def test_verdicts_are_the_ones_given_before(results, name):
    if name not in results:
        pytest.skip(f"{_lang(name)} toolchain not installed")
    result = results[name]
    _job, (verdict, passed, total), detail = JOBS[name]
    assert (result.verdict, result.tests_passed, result.tests_total) == (verdict, passed, total)
    if detail is not None:
        assert result.detail == detail
    assert result.failure is not None
    assert result.failure.kind == (
        "assert" if name == "py_assert_wrong" else result.verdict.lower()
    )


@pytest.mark.parametrize("name", sorted(JOBS))
def test_failure_and_feedback_text(results, name):
    if name not in results:
        pytest.skip(f"{_lang(name)} toolchain not installed")
    result = results[name]
    if name in FAILURES:
        assert result.failure == FAILURES[name]
    text = feedback_text(result, max_chars=2000)
    if name in TEXTS:
        assert text == TEXTS[name]
    _clean(text)
    for field in ("input", "expected", "actual", "call", "message"):
        _clean(getattr(result.failure, field))


def test_compile_errors_show_the_first_error_without_paths(results):
    if "cpp_compile" in results:
        failure = results["cpp_compile"].failure
        assert failure.index is None and failure.kind == "compile_error"
        first = failure.message.splitlines()[0]
        assert first.startswith("program.cpp:1:") and "error:" in first, failure.message
        assert "return x }" in failure.message  # the source excerpt of that first error
        text = feedback_text(results["cpp_compile"], max_chars=2000)
        assert text == "Compilation failed:\n" + failure.message
    if "js_compile" in results:
        failure = results["js_compile"].failure
        assert failure.message.startswith("program.js:2\n"), failure.message
        assert "SyntaxError: Unexpected end of input" in failure.message
        assert " at " not in failure.message and "Node.js" not in failure.message  # no stack


def test_python_compile_errors_read_the_same_in_and_out_of_process(ex):
    # over executor._IN_PROCESS_PY_LIMIT characters: byte-compiled in the sandbox instead
    program = "def f(x)\n    return x\n"
    small, big = ex.run_many([("python", program), ("python", program + "# padding\n" * 25_000)])
    assert small.verdict is big.verdict is V.COMPILE_ERROR
    assert small.failure == big.failure
    assert small.failure.message == "SyntaxError: expected ':' (program.py, line 1)\n    def f(x)"


def test_a_cached_result_carries_the_same_failure(ex):
    job = (
        "python",
        "def add(a, b):\n    return a - b\n",
        {"test_code": "assert add(5, 5) == 10\n"},
    )
    first = ex.submit(*job).result()
    hits = ex.stats["cache_hits"]
    again = ex.submit(*job).result()
    assert ex.stats["cache_hits"] == hits + 1
    assert again.failure == first.failure and again.failure.actual == "0"
    assert feedback_text(again, max_chars=500) == feedback_text(first, max_chars=500)


def test_assert_details(ex):
    loop = (
        "python",
        "def f(x):\n    return x + 1 if x < 3 else x\n",
        {"test_code": "for x in range(5):\n    assert f(x) == x + 1, 'f(%d)' % x\n"},
    )
    humaneval = (
        "python",
        "def add(a, b):\n    return {'b', 'a', 'c'}\n",
        {"test_code": "def check(candidate):\n    assert candidate(1, 2) == {'a'}\n\ncheck(add)\n"},
    )
    program_assert = (
        "python",
        "def add(a, b):\n    assert a > 5, 'a too small'\n    return a + b\n",
        {"test_code": "assert add(1, 2) == 3\n"},
    )
    bare = ("python", "def is_prime(n):\n    return False\n", {"test_code": "assert is_prime(7)\n"})
    multiline = (
        "python",
        "def f(x):\n    return x\n",
        {"test_code": "assert f(0) == 0\nassert (\n    f(1)\n    == 2\n)\n"},
    )
    flipped = ("python", "def f(x):\n    return x\n", {"test_code": "assert [2] == f([1])\n"})
    r_loop, r_he, r_prog, r_bare, r_multi, r_flip = ex.run_many(
        [loop, humaneval, program_assert, bare, multiline, flipped]
    )
    assert {r.verdict for r in (r_loop, r_he, r_prog, r_bare, r_multi, r_flip)} == {V.WRONG_ANSWER}
    assert (r_flip.failure.call, r_flip.failure.expected, r_flip.failure.actual) == (
        "f([1])",
        "[2]",
        "[1]",
    )
    # the failing iteration's value, and the assertion's own message
    assert feedback_text(r_loop, max_chars=1000) == (
        "Test failed: assert f(x) == x + 1, 'f(%d)' % x\nf(x) returned 3\nAssertionError: f(3)"
    )
    # a set is shown sorted (the sandbox's hash seed varies), the call as the test wrote it
    assert r_he.failure.actual == "{'a', 'b', 'c'}" and r_he.failure.expected == "{'a'}"
    assert feedback_text(r_he, max_chars=1000) == (
        "Test failed: assert candidate(1, 2) == {'a'}\ncandidate(1, 2) returned {'a', 'b', 'c'}"
    )
    # raised inside the program: no returned value to show
    assert r_prog.failure.actual == "" and r_prog.failure.call == ""
    assert feedback_text(r_prog, max_chars=1000) == (
        "Test failed: assert add(1, 2) == 3\nAssertionError: a too small"
    )
    assert feedback_text(r_bare, max_chars=1000) == (
        "Test failed: assert is_prime(7)\nis_prime(7) returned False"
    )
    assert r_multi.failure.input == "assert (\n    f(1)\n    == 2\n)"
    assert (r_multi.failure.call, r_multi.failure.actual) == ("f(1)", "1")


def test_the_failure_is_the_test_that_decided_the_verdict(ex):
    # test 0 wrong, test 1 crashes: a RUNTIME_ERROR (the worst), described by test 1
    prog = "x = int(input())\nprint(10 // x)\n"
    r = ex.submit("python", prog, {"inputs": ["1", "0"], "outputs": ["99", "0"]}).result()
    assert (r.verdict, r.tests_passed) == (V.RUNTIME_ERROR, 0)
    assert (r.failure.index, r.failure.kind, r.failure.input) == (1, "runtime_error", "0")
    # test 0 passes, test 1 wrong: test 1
    r = ex.submit("python", prog, {"inputs": ["1", "2"], "outputs": ["10", "6"]}).result()
    assert (r.verdict, r.tests_passed, r.failure.index) == (V.WRONG_ANSWER, 1, 1)
    assert feedback_text(r, max_chars=1000).startswith("Test 1 failed.\nInput:\n2\n")
    # a program that fails while it loads, before any call-based test
    r = ex.submit("python", "x = 1 / 0\ndef add(a, b):\n    return a + b\n", CALL).result()
    assert (r.verdict, r.failure.index, r.failure.test_format) == (V.RUNTIME_ERROR, 0, "")
    assert feedback_text(r, max_chars=1000) == "Runtime error: ZeroDivisionError: division by zero"


def test_memory_limit(ex):
    r = ex.submit("python", "x = [0] * (10**10)\n", ADD).result()
    assert r.verdict is V.MEMORY_LIMIT
    assert feedback_text(r, max_chars=1000) == "Memory limit exceeded on test 0\nInput:\n1 2"


def test_long_fields_share_max_chars(ex):
    n = 3000
    tests = {"inputs": ["7 " * n], "outputs": ["1 " * n]}
    r = ex.submit("python", f"print('2 ' * {n})\n", tests).result()
    assert r.verdict is V.WRONG_ANSWER
    failure = r.failure
    for field in (failure.input, failure.expected, failure.actual):
        assert len(field) == FAILURE_FIELD_CHARS and field.endswith("...")
    for max_chars in (120, 300, 1000):
        text = feedback_text(r, max_chars=max_chars)
        assert len(text) <= max_chars
        # every part keeps its label and a share: the input does not crowd out the output
        assert text.startswith("Test 0 failed.\nInput:\n7 7")
        assert "\nExpected output:\n1 1" in text and "\nYour output:\n2 2" in text
        assert text.endswith("...")
    assert feedback_text(r, max_chars=300) == feedback_text(r, max_chars=300)  # deterministic


@pytest.mark.skipif(not _have("c"), reason="gcc not installed")
def test_a_long_compiler_message_still_shows_its_first_error():
    # 300 errors: more than a check server sends back; its beginning is kept for the failure
    program = "int main(void) {\n" + "".join(f"  int x{i} = y{i};\n" for i in range(300))
    program += "  return 0;\n}\n"
    messages = []
    for servers in (True, False):
        with Executor(workers=1, compile_servers=servers) as executor:
            r = executor.submit("c", program).result()
        assert r.verdict is V.COMPILE_ERROR and "y299" in r.detail  # detail: the end, as before
        messages.append(r.failure.message)
    assert messages[0] == messages[1]
    assert messages[0].startswith("program.c:2:12: error:") and "y0" in messages[0]


def test_a_failure_that_cannot_be_described_leaves_the_verdict(monkeypatch, caplog):
    from ppocoder_jax.rewards.execution import failures

    def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(failures, "stdio_failure", broken)
    with Executor(workers=1, timeout_s=TIMEOUT_S, cache=False) as executor:
        r = executor.submit(*JOBS["py_stdio_wrong"][0]).result()
    assert (r.verdict, r.detail, r.failure) == (V.WRONG_ANSWER, "test 0: wrong answer: '-1'", None)
    assert "describing a failure failed" in caplog.text
    assert feedback_text(r, max_chars=100) == "Wrong answer."


def test_feedback_text_contract():
    passed = make_result(V.PASS, compiled=True, tests_passed=2, tests_total=2)
    assert passed.failure is None and feedback_text(passed, max_chars=100) == "All tests passed."
    assert "failure" not in passed.to_dict()
    compiled = make_result(V.COMPILED, compiled=True)
    assert feedback_text(compiled, max_chars=100) == "The program compiles (no tests were run)."
    infra = make_result(V.INFRA_ERROR, compiled=False, detail="sandbox down")
    with pytest.raises(ValueError, match="INFRA_ERROR"):
        feedback_text(infra, max_chars=100)
    with pytest.raises(ValueError, match="max_chars"):
        feedback_text(passed, max_chars=0)
    # the whole text is cut too, its beginning kept
    assert feedback_text(passed, max_chars=10) == "All tes..."
    # no failure recorded (a result made elsewhere): the verdict and its detail
    crash = make_result(V.RUNTIME_ERROR, compiled=True, detail="test 0: exit code 1: boom")
    assert feedback_text(crash, max_chars=100) == "Runtime error: test 0: exit code 1: boom"
    failure = TestFailure(None, "compile_error", message="x" * 5000)
    assert len(failure.message) < 5000 and failure.message.endswith("...")
    with pytest.raises(ValueError, match="kind"):
        TestFailure(0, "nonsense")
    cut = make_result(V.COMPILE_ERROR, compiled=False, failure=failure)
    assert cut.to_dict()["failure"]["kind"] == "compile_error"
    text = feedback_text(cut, max_chars=50)
    assert len(text) == 50 and text.startswith("Compilation failed:\nxxx") and text.endswith("...")


def test_scrub():
    assert scrub('File "/tmp/ppocoder-exec-ab_1/job-3/program.py", line 2') == (
        'File "program.py", line 2'
    )
    assert scrub("in /sandbox/program.php on line 2") == "in program.php on line 2"
    assert scrub("cwd: /sandbox") == "cwd: <sandbox>"
    assert scrub("/srv/ppocoder-exec-x/c-server-0/program.c:1:2") == "program.c:1:2"
    assert scrub("/data/sandboxes/a") == "/data/sandboxes/a"
    assert scrub("<Foo object at 0x7f00ab12>") == "<Foo object>"
