"""Persistent compile checkers (check_server.py): the same verdicts as one sandboxed toolchain
process per program, for varied valid and invalid programs in JavaScript, PHP, C# and C; they
never run the program; a server that hangs, dies or cannot start costs no verdict (the job is
checked the per-job way, the server restarts, or the language falls back, said once); closing
the executor stops every server."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from ppocoder_jax.rewards.execution import Executor, Verdict, js_server, php_server
from ppocoder_jax.rewards.execution.executor import CHECK_SERVERS
from ppocoder_jax.rewards.execution.languages import SPECS, missing_tools

pytestmark = pytest.mark.toolchain

ECHO = {"inputs": ["7\n"], "outputs": ["7\n"]}


def _deep(depth: int) -> str:
    return "(" * depth + "1" + ")" * depth


JS = {
    "valid": "function add(a, b) { return a + b; }\nconsole.log(add(1, 2));\n",
    "missing_brace": "function add(a, b) { return a + b;\n",
    "esm_import": "import fs from 'fs';\nconsole.log(fs);\n",
    "esm_export": "export function f() { return 1; }\n",
    # node --check passes these: the CommonJS compile fails on `export` / `import`, so the
    # file counts as an ES module, which node --check then does not parse.
    "esm_export_then_error": "export const a = ;\n",
    "esm_import_then_error": "import x from 'y';\nfunction (\n",
    "require_and_export": "const x = require('x');\nexport default x;\n",
    "top_level_await": "const x = await Promise.resolve(1);\nconsole.log(x);\n",
    "top_level_await_then_error": "await 1;\nlet = ;\n",
    "await_as_identifier": "const await = 5;\n",
    "top_level_return": "return 5;\n",
    "hashbang": "#!/usr/bin/env node\nconsole.log(1);\n",
    "hashbang_not_first": "\n#!/usr/bin/env node\nconsole.log(1);\n",
    "hashbang_esm": "#!/usr/bin/env node\nimport x from 'y';\n",
    "import_meta": "console.log(import.meta.url);\n",
    "dynamic_import": "import('fs').then(() => 0);\n",
    "strict_with": "'use strict';\nwith (Math) { max(1, 2); }\n",
    "sloppy_with": "with (Math) { max(1, 2); }\n",
    "strict_octal": "'use strict';\nvar x = 010;\n",
    "duplicate_let": "let a = 1;\nlet a = 2;\n",
    "error_in_lazy_inner_function": "function f() { function g() { let x; let x; } }\n",
    "new_target_outside": "new.target;\n",
    "super_outside": "super.x();\n",
    "html_comment": "<!-- hello\nconsole.log(1);\n",
    "class_private_fields": "class A { #x = 1; static y = 2; get x() { return this.#x; } }\n",
    "private_undeclared": "class A { f() { return this.#y; } }\n",
    "regex_duplicate_group": "const r = /(?<a>x)(?<a>y)/;\n",
    "regex_ok": "const r = /(?<a>x)\\k<a>/u;\n",
    "optional_chaining": "const v = a?.b?.[0]?.(1) ?? 2;\n",
    "getter_with_parameter": "const o = { get x(a) { return 1; } };\n",
    "label_twice": "foo: foo: 1;\n",
    "never_runs_infinite_loop": "for (;;) {}\n",
    "never_runs_writes_file": "require('fs').writeFileSync('ppocoder-executed', 'x');\n",
    "bom": "\ufeffconsole.log(1);\n",
    "nul_in_code": "let x = 1;\x00\n",
    "nul_in_string": "let s = '\x00';\n",
    "invalid_utf8_in_string": "let s = '\udcff\udcfe';\n",  # raw bytes ff fe
    "invalid_utf8_in_code": "let \udcff = 1;\n",
    "empty": "",
    "blank": "  \n\t\n",
    "long": "".join(f"function f{i}(x) {{ return x + {i}; }}\n" for i in range(20000)),
    "deep_300": f"x = {_deep(300)};\n",
    # Past the parser's stack: the server says RETRY, the per-job check decides.
    "deep_5000": f"x = {_deep(5000)};\n",
    "deep_arrays": "[" * 20000 + "]" * 20000 + "\n",
}

PHP = {
    "valid": "<?php\nfunction add($a, $b) { return $a + $b; }\necho add(1, 2);\n",
    "parse_error": "<?php\nfunction add($a, $b) { return $a + $b }\n",
    "redeclare_builtin_function": "<?php\nfunction strlen($x) { return 1; }\n",
    "duplicate_function": "<?php\nfunction g() {}\nfunction g() {}\n",
    "duplicate_parameter": "<?php\nfunction g($a, $a) {}\n",
    "final_override": "<?php\nclass A { final function f() {} }\nclass B extends A { function f() {} }\n",
    "incompatible_override": (
        "<?php\nclass A { function f(int $x) {} }\nclass B extends A { function f(string $x, $y) {} }\n"
    ),
    "builtin_final_override": "<?php\nclass E extends Exception { function getMessage() {} }\n",
    "builtin_class_name": "<?php\nclass Exception {}\n",
    "duplicate_class": "<?php\nclass A {}\nclass A {}\n",
    "strict_types_first": "<?php\ndeclare(strict_types=1);\necho 1;\n",
    "strict_types_late": "<?php\necho 1;\ndeclare(strict_types=1);\n",
    "hashbang_strict_types": "#!/usr/bin/env php\n<?php\ndeclare(strict_types=1);\necho 1;\n",
    "namespace_late": "<?php\necho 1;\nnamespace Foo;\n",
    "namespaced_builtin_name": "<?php\nnamespace Foo;\nfunction strlen($x) {}\n",
    "this_reassigned": "<?php\nfunction f() { $this = 1; }\n",
    "break_zero": "<?php\nwhile (1) { break 0; }\n",
    "continue_outside_loop": "<?php\ncontinue;\n",
    "goto_into_loop": "<?php\ngoto a;\nwhile (1) { a: echo 1; }\n",
    "abstract_with_body": "<?php\nabstract class A { abstract function f() {} }\n",
    "interface_not_implemented": "<?php\ninterface I { function f(); }\nclass C implements I {}\n",
    "constructor_return_type": "<?php\nclass A { function __construct(): int {} }\n",
    "yield_outside_function": "<?php\nyield 1;\n",
    "bad_constant_expression": "<?php\nclass A { const X = [1, 2][$x]; }\n",
    "deprecation_only": "<?php\nfunction f($a = 1, $b) {}\n",
    "enum": "<?php\nenum Suit: string { case H = 'h'; case S = 's'; }\n",
    "enum_case_without_value": "<?php\nenum Suit: string { case H; }\n",
    "php8_syntax": (
        "<?php\nclass P { public function __construct(public readonly int $x) {} }\n"
        "echo match (1) { 1 => 'a', default => 'b' };\nprintf(format: '%d', values: 1);\n"
    ),
    "halt_compiler": "<?php\necho 1;\n__halt_compiler();\n}}}} garbage\n",
    "short_tags": "<? echo 1; ?>\n<?= 2 ?>\n",
    "inline_html_only": "hello world\n",
    "heredoc": "<?php\n$x = <<<EOT\n  a $y\n  EOT;\n",
    "heredoc_bad_indent": "<?php\n$x = <<<EOT\n  a\n b\n  EOT;\n",
    "never_runs_infinite_loop": "<?php\nwhile (true) {}\n",
    "never_runs_writes_file": "<?php\nfile_put_contents('ppocoder-executed', 'x');\necho 'ran';\n",
    "includes_the_checker_scheme": "<?php\ninclude 'ppocoder://program.php';\n",
    "nul": "<?php\necho 1;\x00\n",
    "invalid_utf8": "<?php\necho '\udcff\udcfe';\n",
    "empty": "",
    "long": "<?php\n"
    + "".join(f"function f{i}($x) {{ return $x + {i}; }}\n" for i in range(20000)),
    "deep_300": f"<?php\n$x = {_deep(300)};\n",
    "deep_100000": f"<?php\n$x = {_deep(100000)};\n",
}

CSHARP = {
    "valid": (
        "using System;\nclass GFG {\n  static int S(int[] a) { int r = 0; foreach (int x in a) "
        "r = Math.Max(r, x); return r; }\n  public static void Main() { Console.WriteLine(S(new "
        "int[] { 1, 2 })); }\n}\n"
    ),
    "syntax_error": "class A { int Add(int a, int b) { return a + b } }\n",
    "type_error": "class A { int F() { string s = 1; return s; } }\n",
    "undefined_name": "class A { void F() { undefined(); } }\n",
    "warning_only": "class A { void F() { int x; } }\n",
    "unsafe_without_flag": "class A { unsafe void F() { int* p = null; } }\n",
    "unreferenced_assembly": "using System.Numerics;\nclass A { BigInteger b; }\n",
    "linq": "using System.Linq;\nclass A { int F(int[] a) => a.Where(x => x > 0).Sum(); }\n",
    "async_generics": (
        "using System.Threading.Tasks;\nusing System.Collections.Generic;\nclass A { async "
        "Task<int> F() { await Task.Delay(1); return new List<int> { 1 }.Count; } }\n"
    ),
    "tuples_interpolation": 'class A { (int, string) F() { var t = (1, $"{2}"); return t; } }\n',
    "dynamic": "class A { void F() { dynamic d = 1; d.Foo(); } }\n",
    "error_directive": "#error nope\nclass A {}\n",
    "warning_directive": "#warning careful\nclass A {}\n",
    "duplicate_class": "class A {}\nclass A {}\n",
    "same_names_as_last_check": "class A { int Add(int a, int b) { return a + b; } }\n",
    "mz_header": "MZ class A {}\n",
    "extern_alias": "extern alias Foo;\nclass A {}\n",
    "nul": "class A {\x00}\n",
    "invalid_utf8": 'class A { string s = "\udcff\udcfe"; }\n',
    "empty": "",
    "long": "class A {\n"
    + "".join(f"  int F{i}(int x) {{ return x + {i}; }}\n" for i in range(3000))
    + "}\n",
    "deep_300": f"class A {{ int x = {_deep(300)}; }}\n",
}

C = {
    "valid": (
        "#include <stdio.h>\nint solve(int a[], int n) { int r = 0; for (int i = 0; i < n; i++) "
        'if (a[i] > r) r = a[i]; return r; }\nint main(void) { int a[] = {1, 2}; printf("%d\\n", '
        "solve(a, 2)); return 0; }\n"
    ),
    "syntax_error": "int add(int a, int b) { return a + b }\n",
    "implicit_declaration": "int main(void) { return foo(); }\n",
    "missing_header": "#include <ppocoder_no_such_header.h>\nint x;\n",
    "error_directive": "#error nope\n",
    "cpp_keyword_names": "int *make(int new) { return 0; }\n",
    "kr_definition_vla": "int f(a) int a; { int v[a]; return v[0]; }\n",
    # Only the assembler (gcc -c, not -fsyntax-only) rejects these.
    "bad_inline_asm": 'void f(void) { __asm__("not_an_instruction %eax"); }\n',
    "asm_label_clash": 'int x __asm__("y") = 1;\nint y = 2;\n',
    "relative_parent_include": '#include "../usr/include/stdio.h"\nint x;\n',
    "file_macro": "const char *f = __FILE__;\n",
    "nul": "int x;\x00\n",
    "invalid_utf8": 'const char *s = "\udcff\udcfe";\n',
    "empty": "",
    "long": "".join(f"int f{i}(int x) {{ return x + {i}; }}\n" for i in range(3000)),
    "deep_300": f"int x = {_deep(300)};\n",
}

PROGRAMS = {"javascript": JS, "php": PHP, "csharp": CSHARP, "c": C}
# A full program and a snippet (no main) per compiled language, for link=True and tests.
LINKED = {
    "csharp": (
        "using System;\nclass P { static void Main() { Console.WriteLine(Console.ReadLine()); } }\n",
        "class A { int F() { return 1; } }\n",
    ),
    "c": (
        '#include <stdio.h>\nint main(void) { int x; scanf("%d", &x); printf("%d\\n", x); return 0; }\n',
        "int f(int x) { return x + 1; }\n",
    ),
    "javascript": ("console.log(require('fs').readFileSync(0, 'utf8').trim());\n", "let a = ;\n"),
    "php": ('<?php\necho trim(fgets(STDIN)), "\\n";\n', "<?php\nfunction f( {}\n"),
}


def _skip_without(lang: str) -> None:
    if missing_tools(SPECS[lang]):
        pytest.skip(f"{lang} toolchain not installed")
    reason = CHECK_SERVERS[lang].unavailable_reason()
    if reason:
        pytest.skip(reason)


def _run(lang: str, jobs: list[tuple], servers: bool):
    with Executor(workers=2, timeout_s=4.0, compile_timeout_s=60.0, compile_servers=servers) as ex:
        if servers:
            ex.warm_up([lang])
            assert lang in ex.compile_servers, f"the {lang} check servers did not start"
        results = ex.run_many(jobs)
        homes = [s.home for pool in ex._checker_pools for s in pool._all]
        executed = [h for h in homes if (h / "ppocoder-executed").exists()]
        return results, dict(ex.stats), executed


@pytest.mark.parametrize("lang", sorted(PROGRAMS))
def test_same_verdicts_as_one_process_per_program(lang):
    _skip_without(lang)
    names = list(PROGRAMS[lang])
    jobs = [(lang, PROGRAMS[lang][name]) for name in names]
    full, snippet = LINKED[lang]
    jobs += [(lang, full, None, True), (lang, snippet, None, True), (lang, full, ECHO)]
    names += ["link_full_program", "link_snippet", "full_program_with_tests"]
    t = time.monotonic()
    per_job, _, _ = _run(lang, jobs, servers=False)
    t_job = time.monotonic() - t
    t = time.monotonic()
    served, stats, executed = _run(lang, jobs, servers=True)
    t_srv = time.monotonic() - t
    got = {n: (a.verdict, a.tests_passed) for n, a in zip(names, served)}
    want = {n: (b.verdict, b.tests_passed) for n, b in zip(names, per_job)}
    assert got == want, {n: (got[n], want[n]) for n in names if got[n] != want[n]}
    assert not any(r.verdict is Verdict.INFRA_ERROR for r in served + per_job)
    assert not executed, "a compile check ran the program"
    # The servers answered nearly all of it themselves (RETRY: deep programs only).
    answered = stats.get("server_checks_ok", 0) + stats.get("server_checks_fail", 0)
    assert answered >= len(jobs) - 3, stats
    assert stats.get("server_checks_failed", 0) <= 1, stats  # C#: a stack overflow may kill it
    assert want["valid"][0] is Verdict.COMPILED and want["empty"][0] is Verdict.COMPILED
    assert want["link_full_program"][0] is Verdict.COMPILED
    assert want["full_program_with_tests"] == (Verdict.PASS, 1)
    print(f"{lang}: {len(jobs)} checks, per job {t_job:.1f}s, servers {t_srv:.1f}s, {stats}")


def test_javascript_module_detection_kept():
    """node --check's module-syntax detection: ES module syntax passes, even with a later
    error; CommonJS-only errors fail (held for both paths above; here, named)."""
    _skip_without("javascript")
    with Executor(workers=1) as ex:
        v = {
            n: ex.submit("javascript", JS[n]).result().verdict
            for n in ("esm_import", "esm_export_then_error", "top_level_await", "duplicate_let")
        }
    assert v["esm_import"] is v["esm_export_then_error"] is v["top_level_await"] is Verdict.COMPILED
    assert v["duplicate_let"] is Verdict.COMPILE_ERROR


def _hang_or_die(source: str) -> str:
    marker = "    const [status, text] = await verdict(data, fields[2]);\n"
    assert marker in source
    return source.replace(
        marker,
        "    if (data.includes('PPOCODER_HANG')) for (;;) {}\n"
        "    if (data.includes('PPOCODER_DIE')) process.exit(9);\n" + marker,
    )


def test_hung_or_dead_server_costs_no_verdict(monkeypatch, caplog):
    """A server that hangs is killed at the check's wall limit plus slack, one that dies is
    noticed at once: the job is checked the per-job way (its verdict is the per-job one, never
    a failure of the program), and the next check starts a fresh server."""
    _skip_without("javascript")
    monkeypatch.setattr(js_server, "SERVER_SOURCE", _hang_or_die(js_server.SERVER_SOURCE))
    monkeypatch.setattr("ppocoder_jax.rewards.execution.check_server.ANSWER_SLACK_S", 1.0)
    with Executor(workers=1, compile_timeout_s=2.0) as ex:
        ex.warm_up(["javascript"])
        server = ex._checkers["javascript"]._all[0]
        t = time.monotonic()
        hung = ex.submit("javascript", "// PPOCODER_HANG\nlet a = 1;\n").result()
        assert time.monotonic() - t < 30
        died = ex.submit("javascript", "// PPOCODER_DIE\nlet a = ;\n").result()
        after = ex.submit("javascript", "let b = 2;\n").result()
        assert (hung.verdict, died.verdict, after.verdict) == (
            Verdict.COMPILED,
            Verdict.COMPILE_ERROR,
            Verdict.COMPILED,
        )
        assert ex.stats["server_checks_failed"] == 2 and ex.stats["server_checks_ok"] == 1
        assert server.starts == 3 and "javascript" in ex.compile_servers


def test_server_that_cannot_start_falls_back_once(monkeypatch, caplog):
    _skip_without("php")
    monkeypatch.setattr(php_server, "SERVER_SOURCE", "exit(1);")
    caplog.set_level(logging.WARNING)
    with Executor(workers=2) as ex:
        assert "php" in ex.compile_servers
        results = ex.run_many([("php", PHP["valid"]), ("php", PHP["parse_error"])] * 2)
        assert [r.verdict for r in results] == [Verdict.COMPILED, Verdict.COMPILE_ERROR] * 2
        assert "php" not in ex.compile_servers
    said = [r for r in caplog.records if "php compile checks run one sandboxed" in r.getMessage()]
    assert len(said) == 1


def test_compile_servers_false_keeps_one_process_per_program():
    with Executor(workers=1, compile_servers=False) as ex:
        assert ex.compile_servers == []
        if not missing_tools(SPECS["javascript"]):
            assert ex.submit("javascript", "let a = 1;\n").result().verdict is Verdict.COMPILED
        assert not any(k.startswith("server_checks") for k in ex.stats)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _processes_in(root: Path) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and os.readlink(f"/proc/{pid}/cwd").startswith(str(root)):
                found.append(int(pid))
        except OSError:
            continue
    return [p for p in found if _alive(p)]


def test_close_stops_every_server():
    langs = [lang for lang in PROGRAMS if not missing_tools(SPECS[lang])]
    ex = Executor(workers=2)
    ex.warm_up(langs)
    pids = [s.proc.pid for pool in ex._checker_pools for s in pool._all if s.proc is not None]
    assert len(pids) == 2 * len(ex.compile_servers) > 0
    root = ex.root
    ex.close()
    for _ in range(100):
        if not any(_alive(p) for p in pids) and not _processes_in(root):
            break
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)
    assert _processes_in(root) == [] and not root.exists()


def test_checker_hang_hits_the_wall_limit_and_the_server_survives():
    """gcc on a 2**40-fold self-include runs past the compile limit: the C server kills it,
    says RETRY, the per-job check decides (COMPILE_ERROR as before), the same server serves on.
    A self-include grows cc1 by ~100 MB/s, so the wall limit comes first; a macro blow-up hit
    the memory limit inside the 2 s on a fast CI machine."""
    _skip_without("c")
    blowup = (
        "#if __INCLUDE_LEVEL__ == 0\nint x;\n#endif\n"
        "#if __INCLUDE_LEVEL__ < 40\n#include __FILE__\n#include __FILE__\n#endif\n"
    )
    with Executor(workers=1, compile_timeout_s=2.0) as ex:
        ex.warm_up(["c"])
        server = ex._checkers["c"]._all[0]
        result = ex.submit("c", blowup).result()
        assert result.verdict is Verdict.COMPILE_ERROR and "exceeded" in result.detail
        assert ex.stats["server_checks_retry"] == 1
        assert ex.submit("c", C["valid"]).result().verdict is Verdict.COMPILED
        assert server.starts == 1 and ex.stats["server_checks_ok"] == 1
