"""Fuzz (issue #18): whatever text a policy emits, execution returns a verdict and never raises.

Seeded junk in all seven languages (random bytes with NULs and invalid UTF-8, random code points
with control characters and lone surrogates, empty and blank programs, megabytes of text, very
long lines, deep brackets, programs printing megabytes) goes through the Executor, the training
reward (CompositeReward, with and without unit tests) and `ppocoder check`. Every answer must be
a member of the verdict enum with its documented reward; INFRA_ERROR only where the toolchain is
missing (it masks the sample, so it must never stand in for a bad program).

Regressions pinned here: quadratic regexes in the parent (a program printing "/a/a/a..." or a
Java source of blank lines / unterminated "/*" / escaped quotes held a worker thread for hours),
a Java public class whose name is too long for a file name (INFRA_ERROR), and `ppocoder check`
refusing non-UTF-8 files (exit 2) or crashing with a traceback on non-UTF-8 stdin.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys
import time

import pytest

from ppocoder_jax.config import RewardConfig
from ppocoder_jax.data import Example
from ppocoder_jax.rewards.composite import CompositeReward, RewardParts
from ppocoder_jax.rewards.execution import LANGUAGES, REWARDS, ExecutionResult, Executor, Verdict
from ppocoder_jax.rewards.execution.executor import _tail, program_bytes
from ppocoder_jax.rewards.execution.languages import (
    SPECS,
    _strip_java_noise,
    java_file_name,
    java_main_class,
    missing_tools,
)

SEED = 18
WAIT_S = 300  # per job: far above any honest job here, far below a quadratic hang
OUTPUT_CAP = 1 << 20  # the fuzz executor's output limit (training uses the 16 MiB default)
VERDICTS = {v.value for v in Verdict}
ECHO = {"inputs": ["7\n"], "outputs": ["7\n"]}  # stdin/stdout: every language
PY_CALL = {"inputs": [[1]], "outputs": [2], "fn_name": "f"}
PY_ASSERT = {"test_code": "assert f(1) == 2\n"}
# A correct reference per language: the matching half of the training reward compares with it.
REFERENCES = {
    "python": "def f(x):\n    return x + 1\n",
    "java": "class Main { static int f(int x) { return x + 1; } }\n",
    "cpp": "int f(int x) { return x + 1; }\n",
    "c": "int f(int x) { return x + 1; }\n",
    "csharp": "class P { static int F(int x) { return x + 1; } }\n",
    "php": "<?php\nfunction f($x) { return $x + 1; }\n",
    "javascript": "function f(x) { return x + 1; }\n",
}
_RANGES = [  # code point pools: controls, ASCII, lone surrogates, BMP, astral
    (0x00, 0x20),
    (0x7F, 0xA0),
    (0x20, 0x7F),
    (0xD800, 0xE000),
    (0xE000, 0x10000),
    (0x10000, 0x110000),
]


def _random_bytes(rng: random.Random, n: int) -> str:
    """Bytes as the CLI decodes them: invalid UTF-8 becomes lone surrogates U+DC80..U+DCFF."""
    data = bytearray(rng.randbytes(n))
    data[rng.randrange(n)] = 0
    return bytes(data).decode("utf-8", errors="surrogateescape")


def _random_code_points(rng: random.Random, n: int) -> str:
    return "".join(chr(rng.randrange(*rng.choice(_RANGES))) for _ in range(n))


def _deep_brackets(depth: int) -> str:
    opening = "([{" * depth
    return opening + opening[::-1].translate(str.maketrans("([{", ")]}"))


def _small_junk(seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    return {
        "random_bytes": _random_bytes(rng, 3000),
        "random_code_points": _random_code_points(rng, 1500),
        "empty": "",
        "blank": "".join(rng.choice(" \t\n") for _ in range(2000)),
        "control_chars": "".join(map(chr, range(32))) * 40 + "\x7f",
        "deep_brackets": _deep_brackets(300),
    }


# Megabytes of text: the Java source scans and the compilers read all of it.
HUGE = {
    "huge_blank": "\n" * 3_000_000,
    "huge_unterminated_comments": "/* " * 1_000_000,
    "long_line_escaped_quotes": '"' + '\\"' * 500_000,
    "deep_brackets_20k": _deep_brackets(20_000),
}


def _printer(lang: str, n_out: int, n_err: int, code: int) -> str:
    """A full program writing n_out times "/a" to stdout, n_err times to stderr, exiting code."""
    if lang == "python":
        return (
            f'import sys\nsys.stdout.write("/a" * {n_out})\nsys.stderr.write("/a" * {n_err})\n'
            f"sys.stdout.flush()\nsys.exit({code})\n"
        )
    if lang in ("c", "cpp"):
        return (
            "#include <stdio.h>\nint main(void) {\n"
            f'  for (long i = 0; i < {n_out}; i++) fputs("/a", stdout);\n'
            f'  for (long i = 0; i < {n_err}; i++) fputs("/a", stderr);\n'
            f"  return {code};\n}}\n"
        )
    if lang == "java":
        return (
            "public class Main { public static void main(String[] a) {\n"
            f'  System.out.print("/a".repeat({n_out})); System.out.flush();\n'
            f'  System.err.print("/a".repeat({n_err})); System.err.flush();\n'
            f"  System.exit({code}); }} }}\n"
        )
    if lang == "csharp":
        return (
            "using System;\nclass P { static int Main() {\n"
            f'  Console.Out.Write(new System.Text.StringBuilder().Insert(0, "/a", {n_out}));\n'
            f'  Console.Error.Write(new System.Text.StringBuilder().Insert(0, "/a", {n_err}));\n'
            f"  Console.Out.Flush(); return {code}; }} }}\n"
        )
    if lang == "php":
        return (
            f'<?php\nfwrite(STDOUT, str_repeat("/a", {n_out}));\n'
            f'fwrite(STDERR, str_repeat("/a", {n_err}));\nexit({code});\n'
        )
    assert lang == "javascript"
    return (
        f'process.stdout.write("/a".repeat({n_out}));\n'
        f'process.stderr.write("/a".repeat({n_err}));\nprocess.exitCode = {code};\n'
    )


# name -> (n_out, n_err, exit code, verdict with ECHO tests under OUTPUT_CAP)
PRINTERS = {
    "paths_to_stderr_then_exit_1": (150_000, 150_000, 1, Verdict.RUNTIME_ERROR),
    "paths_to_stdout": (150_000, 0, 0, Verdict.WRONG_ANSWER),
    "megabytes_to_stdout": (2_000_000, 0, 0, Verdict.OUTPUT_LIMIT),
}


def _toolchain_missing(lang: str) -> bool:
    return bool(missing_tools(SPECS[lang]))


def _check_result(result, lang: str, tests_total: int) -> None:
    """What every execution answer must satisfy, whatever the program."""
    assert isinstance(result, ExecutionResult)
    assert isinstance(result.verdict, Verdict)
    assert result.reward == REWARDS[result.verdict]
    if result.verdict is Verdict.INFRA_ERROR:
        assert _toolchain_missing(lang), f"{lang}: INFRA_ERROR for a program: {result.detail}"
        return
    assert result.compiled == (result.verdict is not Verdict.COMPILE_ERROR)
    if tests_total == 0:
        assert result.verdict in (Verdict.COMPILED, Verdict.COMPILE_ERROR)
    else:
        assert result.verdict is not Verdict.COMPILED
        assert result.tests_total == tests_total
        assert 0 <= result.tests_passed <= tests_total
        assert (result.tests_passed == tests_total) == (result.verdict is Verdict.PASS)
    assert isinstance(result.detail, str) and len(result.detail) <= 2000
    assert result.duration_s >= 0
    json.dumps(result.to_dict())


def _expect(result, lang: str, verdict: Verdict) -> None:
    if not _toolchain_missing(lang):
        assert result.verdict is verdict, (lang, result.verdict, result.detail)


@pytest.fixture(scope="module")
def ex():
    with Executor(
        workers=2, timeout_s=4.0, compile_timeout_s=60.0, output_bytes=OUTPUT_CAP
    ) as executor:
        yield executor


def test_executor_gives_every_fuzzed_program_a_verdict(ex):
    jobs = []  # (lang, case, tests, future)

    def submit(lang, case, program, tests=None):
        jobs.append((lang, case, tests, ex.submit(lang, program, tests)))

    for i, lang in enumerate(LANGUAGES):
        for case, program in _small_junk(SEED + i).items():
            submit(lang, case, program)
            submit(lang, case, program, ECHO)
        for case, program in HUGE.items():
            submit(lang, case, program)
        for case, (n_out, n_err, code, _verdict) in PRINTERS.items():
            submit(lang, case, _printer(lang, n_out, n_err, code), ECHO)
    for case, program in _small_junk(SEED + 100).items():
        submit("python", case, program, PY_CALL)
        submit("python", case, program, PY_ASSERT)
    # A valid program too big to byte-compile in-process (compiled in the sandbox instead).
    big_python = "x = 1\n" * 50_000 + REFERENCES["python"]
    submit("python", "big_valid", big_python, PY_CALL)
    submit("python", "returns_megabytes", "def f(x):\n    return '/a' * 3_000_000\n", PY_CALL)
    submit("java", "public_class_name_too_long", "public class " + "A" * 300 + " {}\n")

    start = time.monotonic()
    for lang, case, tests, future in jobs:
        result = future.result(timeout=max(1.0, WAIT_S - (time.monotonic() - start)))
        total = len(tests["inputs"]) if tests and "inputs" in tests else (1 if tests else 0)
        _check_result(result, lang, total)
        if tests is None and case in ("empty", "blank", "huge_blank"):
            _expect(result, lang, Verdict.COMPILED)
        if case in ("huge_unterminated_comments", "long_line_escaped_quotes", "deep_brackets_20k"):
            # not code in any language; PHP passes text outside <?php through as output
            _expect(result, lang, Verdict.COMPILED if lang == "php" else Verdict.COMPILE_ERROR)
        if tests is not None:  # junk never passes; full printers fail the way they should
            assert result.verdict is not Verdict.PASS or case == "big_valid", (lang, case)
        if case in PRINTERS:
            _expect(result, lang, PRINTERS[case][3])
        if lang == "python" and case in ("random_bytes", "control_chars"):  # NUL bytes
            _expect(result, lang, Verdict.COMPILE_ERROR)
    by_case = {(lang, case, json.dumps(tests)): f.result() for lang, case, tests, f in jobs}
    _expect(by_case["python", "big_valid", json.dumps(PY_CALL)], "python", Verdict.PASS)
    returns_mb = by_case["python", "returns_megabytes", json.dumps(PY_CALL)]
    assert returns_mb.verdict in (Verdict.WRONG_ANSWER, Verdict.OUTPUT_LIMIT), returns_mb.detail
    long_name = by_case["java", "public_class_name_too_long", "null"]
    _expect(long_name, "java", Verdict.COMPILE_ERROR)
    assert ex.submit("python", "print(input())\n", ECHO).result().verdict is Verdict.PASS


# --- the training reward -----------------------------------------------------------------------
def _check_parts(parts, cfg: RewardConfig, lang: str, use_tests: bool) -> None:
    assert isinstance(parts, RewardParts)
    # An exception inside one sample comes back as REWARD_ERROR: here that is a bug.
    assert parts.reward_error is None, (lang, parts.reward_error)
    assert parts.verdict in VERDICTS, (lang, parts.verdict)
    infra = parts.verdict == Verdict.INFRA_ERROR
    assert parts.infra_error is infra
    if infra:
        assert _toolchain_missing(lang)
        assert parts.compile == 0.0
    else:
        assert parts.compile == (-1.0 if parts.verdict == Verdict.COMPILE_ERROR else 1.0)
    if use_tests and not infra:
        assert parts.verdict != Verdict.COMPILED
        assert parts.tests == REWARDS[Verdict(parts.verdict)]
    else:
        assert parts.tests == 0.0
        if not use_tests:
            assert parts.verdict in (Verdict.COMPILED, Verdict.COMPILE_ERROR, Verdict.INFRA_ERROR)
    for value, weight in ((parts.ast, cfg.ast_weight), (parts.dfg, cfg.dfg_weight)):
        assert 0.0 <= value <= 1.0
        if not weight:
            assert value == 0.0
    total = (
        cfg.compile_weight * parts.compile
        + cfg.tests_weight * parts.tests
        + cfg.ast_weight * parts.ast
        + cfg.dfg_weight * parts.dfg
    )
    assert math.isfinite(parts.total) and math.isclose(parts.total, total, abs_tol=1e-9)


def _example(lang: str, tests, prefix: str = "") -> Example:
    return Example(
        id=f"fuzz-{lang}",
        prompt="fuzz",
        target=REFERENCES[lang][len(prefix) :] if prefix else REFERENCES[lang],
        lang=lang,
        tests=tests,
        context_prefix=prefix,
    )


def test_composite_reward_default_config_scores_junk(ex):
    """The paper's reward (compile + AST + data-flow match) on small junk in every language.

    Small only: the matcher is quadratic on some error-heavy parses (reported separately)."""
    cfg = RewardConfig()  # compile 1, ast 1, dfg 1, no unit tests
    examples, outputs = [], []
    for i, lang in enumerate(LANGUAGES):
        variants = [_example(lang, None)]
        if lang == "python":  # a completion task: the output continues a given prefix
            variants.append(_example(lang, None, "def f(x):\n"))
        for output in _small_junk(SEED + 200 + i).values():
            for example in variants:
                examples.append(example)
                outputs.append(output)
    with CompositeReward(cfg, executor=ex) as reward:
        futures = reward.submit(examples, outputs)
        for example, future in zip(examples, futures):
            _check_parts(future.result(timeout=WAIT_S), cfg, example.lang, use_tests=False)


def test_composite_reward_with_unit_tests_scores_junk():
    """Unit-test reward with the training pool's own executor (its 16 MiB output limit)."""
    cfg = RewardConfig(tests_weight=1.0, ast_weight=0.0, dfg_weight=0.0, workers=2)
    rng = random.Random(SEED + 300)
    examples, outputs, expected = [], [], []
    for lang in LANGUAGES:
        programs = [
            (_random_bytes(rng, 2000), None),
            (_random_code_points(rng, 800), None),
            ("", None),
            (HUGE["huge_unterminated_comments"], None),
            (_printer(lang, 150_000, 150_000, 1), Verdict.RUNTIME_ERROR),
            # 4 MB of "/a/a...": under the 16 MiB cap, so it is compared (a wrong answer)
            (_printer(lang, 2_000_000, 0, 0), Verdict.WRONG_ANSWER),
        ]
        for tests in [ECHO] + ([PY_CALL, PY_ASSERT] if lang == "python" else []):
            for program, verdict in programs:
                examples.append(_example(lang, tests))
                outputs.append(program)
                expected.append(verdict if tests is ECHO else None)
    with CompositeReward(cfg) as reward:
        futures = reward.submit(examples, outputs)
        results = [f.result(timeout=WAIT_S) for f in futures]
    for example, parts, verdict in zip(examples, results, expected):
        _check_parts(parts, cfg, example.lang, use_tests=True)
        assert parts.verdict != Verdict.PASS
        if verdict is not None and not _toolchain_missing(example.lang):
            assert parts.verdict == verdict, (example.lang, parts.verdict)


# --- ppocoder check ------------------------------------------------------------------------------
def _cli(args: list[str], stdin: bytes | None = None, env: dict | None = None):
    return subprocess.Popen(
        [sys.executable, "-m", "ppocoder_jax", "check", "--json", *args],
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


def test_cli_check_gives_fuzzed_files_a_verdict(tmp_path):
    rng = random.Random(SEED + 400)
    runs = []  # (lang, expected verdict or None, process, stdin)
    for lang in LANGUAGES:
        path = tmp_path / f"junk-{lang}"
        path.write_bytes(rng.randbytes(2000) + b"\0\xff\xfe")  # never valid UTF-8
        runs.append((lang, None, _cli(["--lang", lang, str(path)]), None))
    tests = tmp_path / "tests.json"
    tests.write_text(json.dumps(ECHO))
    junk_py = tmp_path / "junk.py"
    junk_py.write_bytes(rng.randbytes(1000) + b"\0")
    args = ["--lang", "python", "--tests", str(tests), str(junk_py)]
    runs.append(("python", "COMPILE_ERROR", _cli(args), None))
    # Byte for byte: one latin-1 byte is one character under its coding cookie (a re-encoded
    # file would hold 3 bytes there and print 3).
    latin1 = tmp_path / "latin1.py"
    latin1.write_bytes(b'# -*- coding: latin-1 -*-\nprint(len("\xe9") + 6)\n')
    args = ["--lang", "python", "--tests", str(tests), str(latin1)]
    runs.append(("python", "PASS", _cli(args), None))
    # Non-UTF-8 stdin under a strict decoder (any locale but C) used to end in a traceback.
    stdin = b'# -*- coding: latin-1 -*-\nprint(len("\xe9") + 6)\n'
    env = {"PYTHONIOENCODING": "utf-8:strict"}
    args = ["--lang", "python", "--tests", str(tests), "-"]
    runs.append(("python", "PASS", _cli(args, stdin=stdin, env=env), stdin))
    for lang, expected, proc, data in runs:
        out, err = proc.communicate(data, timeout=WAIT_S)
        assert proc.returncode == 0, (lang, err.decode(errors="replace")[-2000:])
        assert b"Traceback" not in err
        report = json.loads(out)
        assert report["verdict"] in VERDICTS
        assert report["reward"] == REWARDS[Verdict(report["verdict"])]
        if report["verdict"] == "INFRA_ERROR":
            assert _toolchain_missing(lang), report["detail"]
        elif expected is not None:
            assert report["verdict"] == expected, (lang, report)
        elif lang == "python":
            assert report["verdict"] == "COMPILE_ERROR"


# --- the parent-side scans, directly -------------------------------------------------------------
# The patterns before the fix: the rewrites must find exactly what these found.
_OLD_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_OLD_STRINGS = re.compile(r'"(?:\\.|[^"\\\n])*"')


def test_java_scans_match_the_plain_patterns():
    rng = random.Random(SEED + 500)
    alphabet = ['"', "\\", "/", "*", "\n", " ", "a", "{", "}", "'", "public class X ", "\t"]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))
        assert _strip_java_noise(text) == _OLD_COMMENTS.sub(" ", _OLD_STRINGS.sub('""', text))
    assert java_file_name("\n\n  public final class Foo {}\n") == "Foo.java"
    assert java_file_name('/* public class A {} */ "\\" public class B" x') == "Main.java"


@pytest.mark.parametrize(
    "text",
    ["\n" * 150_000, "/* " * 50_000, '"' + '\\"' * 30_000, " \n" * 100_000],
    ids=["blank_lines", "unterminated_comments", "escaped_quotes", "blank_lines_with_spaces"],
)
def test_java_scans_are_linear(text):
    # Each took about 20 s before (quadratic), and hours at the fuzz sizes above.
    start = time.monotonic()
    java_file_name(text)
    java_main_class(text)
    assert time.monotonic() - start < 3.0


def test_message_tail_is_linear():
    start = time.monotonic()
    tail = _tail(b"/a" * 30_000 + b"\nerror at /tmp/ppocoder-exec-x1/job-3/program.c: boom")
    assert time.monotonic() - start < 3.0  # about 20 s before
    assert tail.endswith("error at program.c: boom")


def test_program_bytes_round_trip_non_utf8():
    rng = random.Random(SEED + 600)
    for _ in range(200):
        data = rng.randbytes(rng.randrange(1, 200))
        assert program_bytes(data.decode("utf-8", errors="surrogateescape")) == data
    # Other lone surrogates (not escapes of bytes) are written as surrogatepass writes them.
    text = "a\ud800b\udd00\udfff"
    assert program_bytes(text) == text.encode("utf-8", errors="surrogatepass")
