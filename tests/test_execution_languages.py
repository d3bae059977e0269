"""Execution feedback: every language compiles / passes / fails the way its toolchain says."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from ppocoder_jax.rewards.execution import REWARDS, Executor, Verdict
from ppocoder_jax.rewards.execution.harness import parse_tests
from ppocoder_jax.rewards.execution.languages import SPECS, java_file_name, java_main_class

pytestmark = pytest.mark.toolchain

ADD = {"inputs": ["1 2\n", "30 12\n"], "outputs": ["3\n", "42\n"]}

# lang -> (correct full program, wrong-answer program, crashing program, syntax error, snippet)
PROGRAMS = {
    "python": (
        "a, b = map(int, input().split())\nprint(a + b)\n",
        "a, b = map(int, input().split())\nprint(a - b)\n",
        "a, b = map(int, input().split())\nprint(a // 0)\n",
        "def f(x)\n    return x\n",
        "def add(a, b):\n    return a + b\n",
    ),
    "cpp": (
        "#include <bits/stdc++.h>\nusing namespace std;\nint main(){long a,b;cin>>a>>b;cout<<a+b<<endl;}\n",
        "#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a*b<<std::endl;}\n",
        "#include <vector>\nint main(){std::vector<int> v; return v.at(5);}\n",
        "int add(int a, int b) { return a + b }\n",
        "#include <vector>\nint add(std::vector<int> v) { int s = 0; for (int x : v) s += x; return s; }\n",
    ),
    "c": (
        '#include <stdio.h>\nint main(void){long a,b;scanf("%ld %ld",&a,&b);printf("%ld\\n",a+b);return 0;}\n',
        '#include <stdio.h>\nint main(void){long a,b;scanf("%ld %ld",&a,&b);printf("%ld\\n",a);return 0;}\n',
        "#include <stdlib.h>\nint main(void){ volatile int *p = NULL; *p = 1; return 0; }\n",
        "int add(int a, int b) { return a + b }\n",
        # `new` and implicit void* conversion are C, not C++: compiled as C this is fine.
        "#include <stdlib.h>\nint *make(int new) { int *p = malloc(sizeof(int)); *p = new; return p; }\n",
    ),
    "java": (
        "import java.util.*;\npublic class Solution {\n  public static void main(String[] a) {\n"
        "    Scanner s = new Scanner(System.in);\n    System.out.println(s.nextLong() + s.nextLong());\n  }\n}\n",
        "import java.util.*;\nclass Main {\n  public static void main(String[] a) {\n"
        "    Scanner s = new Scanner(System.in);\n    System.out.println(s.nextLong() - s.nextLong());\n  }\n}\n",
        "class Main { public static void main(String[] a) { int[] x = new int[1]; System.out.println(x[3]); } }\n",
        "class Main { int add(int a, int b) { return a + b } }\n",
        "public class Adder { int add(int a, int b) { return a + b; } }\n",
    ),
    "csharp": (
        "using System;\nclass P { static void Main() { var p = Console.ReadLine().Split(' ');\n"
        "  Console.WriteLine(long.Parse(p[0]) + long.Parse(p[1])); } }\n",
        "using System;\nclass P { static void Main() { Console.WriteLine(0); } }\n",
        'using System;\nclass P { static void Main() { throw new Exception("boom"); } }\n',
        "class A { int Add(int a, int b) { return a + b } }\n",
        "class A { int Add(int a, int b) { return a + b; } }\n",
    ),
    "php": (
        "<?php\n$p = explode(' ', trim(fgets(STDIN)));\necho $p[0] + $p[1], \"\\n\";\n",
        "<?php\n$p = explode(' ', trim(fgets(STDIN)));\necho $p[0], \"\\n\";\n",
        '<?php\nthrow new Exception("boom");\n',
        "<?php\nfunction add($a, $b) { return $a + $b }\n",
        "<?php\nfunction add($a, $b) { return $a + $b; }\n",
    ),
    "javascript": (
        "const [a, b] = require('fs').readFileSync(0, 'utf8').trim().split(/\\s+/).map(Number);\n"
        "console.log(a + b);\n",
        "console.log(7);\n",
        "throw new Error('boom');\n",
        "function add(a, b) { return a + b;\n",
        "function add(a, b) { return a + b; }\n",
    ),
}


def _have(lang: str) -> bool:
    return all(shutil.which(t) for t in SPECS[lang].tools)


@pytest.fixture(scope="module")
def ex():
    with Executor(workers=2, timeout_s=4.0, compile_timeout_s=60.0) as executor:
        yield executor


@pytest.mark.parametrize("lang", sorted(PROGRAMS))
def test_language_verdicts(ex, lang):
    if not _have(lang):
        pytest.skip(f"{lang} toolchain not installed")
    good, wrong, crash, syntax, snippet = PROGRAMS[lang]
    jobs = [
        (lang, snippet),  # compile-only: methods and snippets need no main
        (lang, syntax),
        (lang, good, ADD),
        (lang, wrong, ADD),
        (lang, crash, ADD),
        (lang, syntax, ADD),
    ]
    r_snip, r_syntax, r_good, r_wrong, r_crash, r_syntax_tests = ex.run_many(jobs)
    assert r_snip.verdict is Verdict.COMPILED, r_snip.detail
    assert (r_snip.reward, r_snip.compiled) == (1.0, True)
    assert r_syntax.verdict is Verdict.COMPILE_ERROR and r_syntax.reward == -1.0
    assert r_syntax.detail  # the compiler's message
    assert r_good.verdict is Verdict.PASS, r_good.detail
    assert (r_good.tests_passed, r_good.tests_total, r_good.reward) == (2, 2, 1.0)
    assert r_wrong.verdict is Verdict.WRONG_ANSWER and r_wrong.reward == -0.3, r_wrong.detail
    assert r_crash.verdict is Verdict.RUNTIME_ERROR and r_crash.reward == -0.6, r_crash.detail
    assert r_syntax_tests.verdict is Verdict.COMPILE_ERROR and r_syntax_tests.tests_total == 2


@pytest.mark.parametrize("lang", ["cpp", "c", "java", "csharp"])
def test_link_requires_a_full_program(ex, lang):
    if not _have(lang):
        pytest.skip(f"{lang} toolchain not installed")
    good, _wrong, _crash, _syntax, snippet = PROGRAMS[lang]
    assert ex.submit(lang, snippet, link=True).result().verdict is Verdict.COMPILE_ERROR
    assert ex.submit(lang, good, link=True).result().verdict is Verdict.COMPILED


def test_warnings_are_not_failures(ex):
    # unused variable + comparison of signed/unsigned: warnings under -Wall, still compiles
    cpp = "#include <vector>\nint f(std::vector<int> v){ int unused; for (int i = 0; i < v.size(); i++) {} return 0; }\n"
    assert ex.submit("cpp", cpp).result().verdict is Verdict.COMPILED
    py = "def f(x):\n    return x is 1\n"  # SyntaxWarning, still byte-compiles
    assert ex.submit("python", py).result().verdict is Verdict.COMPILED


def test_c_is_compiled_as_c_not_cpp(ex):
    snippet = PROGRAMS["c"][4]
    assert ex.submit("c", snippet).result().verdict is Verdict.COMPILED
    assert ex.submit("cpp", snippet).result().verdict is Verdict.COMPILE_ERROR


def test_java_file_named_after_public_class(ex):
    if not _have("java"):
        pytest.skip("java not installed")
    src = "public class Counter { int n; void inc() { n++; } }\n"
    assert java_file_name(src) == "Counter.java"
    assert ex.submit("java", src).result().verdict is Verdict.COMPILED
    two_public = "public class A {}\npublic class B {}\n"
    assert ex.submit("java", two_public).result().verdict is Verdict.COMPILE_ERROR


def test_java_main_class_detection():
    src = (
        "// public class Fake {\nclass Node { char c = '{'; String s = \"}{\"; }\n"
        "public final class Solver {\n  static class Inner { void f() {} }\n"
        "  public static void main(String[] args) {}\n}\n"
    )
    assert java_file_name(src) == "Solver.java"
    assert java_main_class(src) == "Solver"
    assert java_main_class("class A { void f() {} }") is None


def test_python_call_based_and_assert_tests(ex):
    prog = "def add(a, b):\n    return a + b\n"
    call = {"inputs": [[1, 2], [3, 4]], "outputs": [[3], [7]], "fn_name": "add"}
    r = ex.submit("python", prog, call).result()
    assert (r.verdict, r.tests_passed, r.tests_total) == (Verdict.PASS, 2, 2)
    r = ex.submit("python", prog.replace("a + b", "a * b"), call).result()
    assert r.verdict is Verdict.WRONG_ANSWER and r.tests_passed == 0
    solution = "class Solution:\n    def add(self, a, b):\n        return a + b\n"
    assert ex.submit("python", solution, call).result().verdict is Verdict.PASS
    asserts = {"test_code": "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n"}
    assert ex.submit("python", prog, asserts).result().verdict is Verdict.PASS
    assert (
        ex.submit("python", prog.replace("+", "-"), asserts).result().verdict
        is Verdict.WRONG_ANSWER
    )
    crash = "def add(a, b):\n    return a / 0\n"
    assert ex.submit("python", crash, asserts).result().verdict is Verdict.RUNTIME_ERROR
    # A test-code bug is our problem, not the program's.
    r = ex.submit("python", prog, {"test_code": "assert add(1, 2) ==\n"}).result()
    assert r.verdict is Verdict.INFRA_ERROR and r.reward is None


def test_worst_verdict_over_tests(ex):
    # first test wrong, second crashes: the outcome is the worse one (runtime error)
    prog = "x = int(input())\nprint(10 // x)\n"
    r = ex.submit("python", prog, {"inputs": ["1", "0"], "outputs": ["99", "0"]}).result()
    assert r.verdict is Verdict.RUNTIME_ERROR and r.tests_passed == 0


def test_stdout_comparison_is_whitespace_and_float_tolerant(ex):
    prog = "print('1.0000000001   2')\nprint()\n"
    assert (
        ex.submit("python", prog, {"inputs": [""], "outputs": ["1 2\n"]}).result().verdict
        is Verdict.PASS
    )
    tests = {"inputs": [["3", "4"]], "outputs": [["7"]]}  # APPS: lists of lines
    assert (
        ex.submit("python", "print(int(input()) + int(input()))", tests).result().verdict
        is Verdict.PASS
    )


def test_cache_shares_identical_jobs(ex):
    prog = "def unique_for_cache_test():\n    return 1\n"
    before = ex.stats["cache_hits"]
    results = ex.run_many([("python", prog)] * 5 + [("py", prog)])
    assert all(r.verdict is Verdict.COMPILED for r in results)
    assert ex.stats["cache_hits"] - before == 5


def test_missing_toolchain_is_infra_error(monkeypatch):
    from ppocoder_jax.rewards.execution import executor as executor_module

    monkeypatch.setattr(executor_module, "missing_tools", lambda spec: ["g++"])
    with Executor(workers=1) as ex1:
        r = ex1.submit("cpp", "int main(){}").result()
        assert r.verdict is Verdict.INFRA_ERROR and r.reward is None and r.infra_error
        assert "g++" in r.detail
        assert ex1.stats["infra_errors"] == 1


def test_rewards_table_matches_spec():
    assert REWARDS[Verdict.PASS] == 1.0 and REWARDS[Verdict.COMPILED] == 1.0
    assert REWARDS[Verdict.WRONG_ANSWER] == -0.3
    for v in (Verdict.RUNTIME_ERROR, Verdict.TIMEOUT, Verdict.MEMORY_LIMIT, Verdict.OUTPUT_LIMIT):
        assert REWARDS[v] == -0.6
    assert REWARDS[Verdict.COMPILE_ERROR] == -1.0 and REWARDS[Verdict.INFRA_ERROR] is None


@pytest.mark.parametrize(
    "tests, lang, message",
    [
        ([1], "python", "JSON object"),
        ({"inputs": ["1"]}, "python", '"inputs" and "outputs"'),
        ({"inputs": ["1"], "outputs": []}, "python", "1 inputs but 0 outputs"),
        ({"inputs": [[1]], "outputs": [1], "fn_name": "f"}, "cpp", "only supported for python"),
        ({"test_code": "assert 1"}, "java", "only supported for python"),
    ],
)
def test_bad_tests_are_rejected(tests, lang, message):
    with pytest.raises(ValueError, match=message):
        parse_tests(tests, lang)


def _cli(*args, stdin=""):
    return subprocess.run(
        [sys.executable, "-m", "ppocoder_jax", "check", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_check(tmp_path):
    prog = tmp_path / "add.py"
    prog.write_text("a, b = map(int, input().split())\nprint(a + b)\n")
    tests = tmp_path / "tests.json"
    tests.write_text(json.dumps(ADD))
    proc = _cli("--lang", "python", "--tests", str(tests), "--json", str(prog))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["verdict"] == "PASS" and out["tests_passed"] == 2 and out["reward"] == 1.0
    assert set(out) == {
        "verdict",
        "reward",
        "compiled",
        "tests_passed",
        "tests_total",
        "duration_s",
        "detail",
    }
    proc = _cli("--lang", "cpp", "-", stdin="int main( {")
    assert proc.returncode == 0 and json.loads(proc.stdout)["verdict"] == "COMPILE_ERROR"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lang", "cobol", "x.py"], "unknown language"),
        (["--lang", "python", "/nonexistent/prog.py"], "no such file"),
        (["--lang", "python", "--timeout", "0", "-"], "--timeout"),
    ],
)
def test_cli_bad_usage_exits_2(args, message):
    proc = _cli(*args)
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_cli_bad_tests_file(tmp_path):
    prog = tmp_path / "p.py"
    prog.write_text("print(1)\n")
    bad = tmp_path / "t.json"
    bad.write_text("{not json")
    proc = _cli("--lang", "python", "--tests", str(bad), str(prog))
    assert proc.returncode == 2 and "not valid JSON" in proc.stderr
