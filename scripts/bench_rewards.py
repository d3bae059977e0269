#!/usr/bin/env python
"""Compile-check throughput: our pool versus the authors' way, side by side in one run.

The authors' way (SPEC): one compiler subprocess at a time, no cache, no sandbox:
`python3 -m py_compile`, `g++ -std=c++11` (full compile and link, also for C), `javac`
(after `public class` -> `class`), `mcs`, `php -l`, and `node --check` for JavaScript.
Ours: `Executor` (sandboxed, thread pool, javac server, precompiled <bits/stdc++.h>,
in-process byte-compile for Python, check servers for javascript, php, csharp and c) doing
compile-only checks of the same programs; for the languages with check servers also the
per-job path (`compile_servers=False`: one sandboxed toolchain process per program), which
must agree with ours on every verdict. The paths take turns over --rounds interleaved rounds.

Programs are generated to look like model samples (XLCoST / CodeSearchNet style), all distinct
(the cache never answers), about a quarter with a syntax error. One-time set-up (building the
C++ PCH once per machine, starting the javac server) is reported separately, not timed.

    .venv/bin/python scripts/bench_rewards.py [--langs python,cpp,java] [--n 24] [--rounds 4]

Python unit tests (--unit-tests): checks/s of assert-style test jobs (distinct
generated programs, several asserts each; the cache never answers), one sandboxed interpreter
per job (`python_server=False`, the path before the Python test servers) against the
persistent Python test servers, interleaved rounds in one run; both must agree on every
verdict. --breakdown: where one sandboxed test job's time goes (bwrap, setpriv/prlimit,
interpreter start, runner and tests, host-side files), jobs one at a time.

    .venv/bin/python scripts/bench_rewards.py --unit-tests [--n 60] [--rounds 4] [--workers 0]
    .venv/bin/python scripts/bench_rewards.py --breakdown [--n 30]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ppocoder_jax.rewards.execution import Executor, Verdict, harness, sandbox  # noqa: E402
from ppocoder_jax.rewards.execution import python_server as pyserver  # noqa: E402

# --- generated-looking programs -------------------------------------------------------------
NAMES = ["count", "total", "result", "acc", "best", "value", "score", "res", "ans", "cur"]
FUNCS = ["solve", "compute", "find_max", "count_pairs", "sum_digits", "min_cost", "check", "helper"]


def _python(rng: random.Random, i: int) -> str:
    f, v, w = f"{rng.choice(FUNCS)}_{i}", rng.choice(NAMES), rng.choice(NAMES) + "2"
    c, k = rng.randint(2, 97), rng.randint(2, 9)
    body = rng.choice(
        [
            f"    {v} = 0\n    for i in range(len(arr)):\n        if arr[i] % {k} == 0:\n            {v} += arr[i] * {c}\n    return {v}\n",
            f"    {v} = {{}}\n    for x in arr:\n        {v}[x] = {v}.get(x, 0) + {c}\n    return max({v}.values()) if {v} else 0\n",
            f"    {w} = sorted(arr, reverse=True)[:{k}]\n    {v} = [x * {c} for x in {w} if x > 0]\n    return sum({v}) // max(1, len({v}))\n",
            f"    try:\n        {v} = int(arr[0]) + {c}\n    except (IndexError, ValueError) as e:\n        raise ValueError('bad input') from e\n    while {v} > {k}:\n        {v} //= {k}\n    return {v}\n",
        ]
    )
    return f'def {f}(arr):\n    """Return the {v} of arr (case {i})."""\n' + body


def _cpp(rng: random.Random, i: int) -> str:
    f, v, c = f"{rng.choice(FUNCS)}{i}", rng.choice(NAMES), rng.randint(2, 97)
    head = rng.choice(
        ["#include <bits/stdc++.h>\nusing namespace std;\n"] * 3
        + ["#include <iostream>\n#include <vector>\n#include <algorithm>\nusing namespace std;\n"]
    )
    body = rng.choice(
        [
            f"int {f}(int arr[], int n) {{\n  int {v} = 0;\n  for (int i = 0; i < n; i++)\n    {v} = max({v}, arr[i] * {c});\n  return {v};\n}}\n",
            f"int {f}(vector<int>& a) {{\n  sort(a.begin(), a.end());\n  int {v} = 0;\n  for (size_t i = 1; i < a.size(); i++) {v} += a[i] - a[i - 1] + {c};\n  return {v};\n}}\n",
            f"long long {f}(int n) {{\n  vector<long long> dp(n + 1, 0);\n  dp[0] = 1;\n  for (int i = 1; i <= n; i++) dp[i] = dp[i - 1] * {c} % 1000000007;\n  return dp[n];\n}}\n",
        ]
    )
    call = (
        f"{f}(arr, n)"
        if "int arr[]" in body
        else (f"{f}(v)" if "vector<int>&" in body else f"{f}(n)")
    )
    main = f"int main() {{\n  int arr[] = {{ {rng.randint(1, 9)}, {rng.randint(1, 9)}, {c} }};\n  int n = sizeof(arr) / sizeof(arr[0]);\n  vector<int> v(arr, arr + n);\n  cout << {call} << endl;\n  return 0;\n}}\n"
    return head + body + main


def _java(rng: random.Random, i: int) -> str:
    f, v, c = f"{rng.choice(FUNCS)}{i}", rng.choice(NAMES), rng.randint(2, 97)
    body = rng.choice(
        [
            f"  static int {f}(int arr[], int n) {{\n    int {v} = 0;\n    for (int i = 0; i < n; i++) {v} = Math.max({v}, arr[i] * {c});\n    return {v};\n  }}\n",
            f"  static int {f}(int arr[], int n) {{\n    HashMap<Integer, Integer> m = new HashMap<>();\n    for (int x : arr) m.put(x, m.getOrDefault(x, 0) + {c});\n    int {v} = 0;\n    for (int x : m.values()) {v} += x;\n    return {v};\n  }}\n",
            f"  static int {f}(int arr[], int n) {{\n    Arrays.sort(arr);\n    StringBuilder sb = new StringBuilder();\n    for (int i = 0; i < n; i++) sb.append(arr[i] % {c});\n    return sb.length();\n  }}\n",
        ]
    )
    main = f"  public static void main(String[] args) {{\n    int arr[] = {{ {rng.randint(1, 9)}, {c} }};\n    System.out.println({f}(arr, arr.length));\n  }}\n"
    return (
        "import java.util.*;\n"
        + rng.choice(["", "public "])
        + "class GFG {\n"
        + body
        + main
        + "}\n"
    )


def _c(rng, i):
    f, v, c = f"{rng.choice(FUNCS)}{i}", rng.choice(NAMES), rng.randint(2, 97)
    body = rng.choice(
        [
            f"int {f}(int arr[], int n) {{\n  int {v} = 0;\n  for (int i = 0; i < n; i++)\n    if (arr[i] * {c} > {v}) {v} = arr[i] * {c};\n  return {v};\n}}\n",
            f"int {f}(int arr[], int n) {{\n  int *tmp = malloc(n * sizeof(int));\n  int {v} = 0;\n  for (int i = 0; i < n; i++) {{ tmp[i] = arr[i] % {c}; {v} += tmp[i]; }}\n  free(tmp);\n  return {v};\n}}\n",
        ]
    )
    main = f'int main(void) {{\n  int arr[] = {{ {rng.randint(1, 9)}, {c} }};\n  printf("%d\\n", {f}(arr, 2));\n  return 0;\n}}\n'
    return "#include <stdio.h>\n#include <stdlib.h>\n" + body + main


def _csharp(rng, i):
    c = rng.randint(2, 97)
    return f"using System;\nclass GFG {{\n  static int Solve{i}(int[] arr) {{\n    int res = 0;\n    foreach (int x in arr) res = Math.Max(res, x * {c});\n    return res;\n  }}\n  public static void Main() {{\n    Console.WriteLine(Solve{i}(new int[] {{ 1, {c} }}));\n  }}\n}}\n"


def _php(rng, i):
    c = rng.randint(2, 97)
    return f"<?php\nfunction solve{i}($arr) {{\n  $res = 0;\n  foreach ($arr as $x) {{ $res = max($res, $x * {c}); }}\n  return $res;\n}}\necho solve{i}([1, {c}]);\n?>\n"


def _javascript(rng, i):
    c = rng.randint(2, 97)
    return f"function solve{i}(arr) {{\n  let res = 0;\n  for (const x of arr) res = Math.max(res, x * {c});\n  return res;\n}}\nconsole.log(solve{i}([1, {c}]));\n"


GENERATORS = {
    "python": _python,
    "cpp": _cpp,
    "java": _java,
    "c": _c,
    "csharp": _csharp,
    "php": _php,
    "javascript": _javascript,
}


def _break(program: str, rng: random.Random) -> str:
    """A typical model slip: a missing ':' / ';' / closing brace."""
    for token in (";\n", ":\n", "}\n"):
        spots = [i for i in range(len(program)) if program.startswith(token, i)]
        if spots:
            i = rng.choice(spots)
            return program[:i] + program[i + 1 :]
    return program + " ("


def programs(lang: str, n: int, seed: int) -> list[str]:
    rng = random.Random(f"{lang}-{seed}")
    out = []
    for i in range(n):
        p = GENERATORS[lang](rng, i)
        out.append(_break(p, rng) if rng.random() < 0.25 else p)
    return out


# --- the authors' way ------------------------------------------------------------------------
def baseline_check(lang: str, program: str) -> bool:
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as d:
        if lang == "python":
            path = Path(d, "program.py")
            cmd = [sys.executable, "-m", "py_compile", str(path)]
        elif lang in ("cpp", "c"):  # the authors compiled C as C++
            path = Path(d, "program.cpp")
            cmd = ["g++", "-std=c++11", str(path), "-o", str(Path(d, "a.out"))]
        elif lang == "java":
            program = program.replace("public class", "class")
            path = Path(d, "Main.java")
            cmd = ["javac", str(path)]
        elif lang == "csharp":
            path = Path(d, "program.cs")
            cmd = ["mcs", str(path), "-out:" + str(Path(d, "a.exe"))]
        elif lang == "php":
            path = Path(d, "program.php")
            cmd = ["php", "-l", str(path)]
        else:
            path = Path(d, "program.js")
            cmd = ["node", "--check", str(path)]
        path.write_text(program)
        return subprocess.run(cmd, capture_output=True, cwd=d).returncode == 0


# --- Python unit tests: per-job interpreter vs the Python test servers ---------------------------
def unit_test_jobs(n: int, seed: int) -> list[tuple[str, str, dict]]:
    """Distinct generated functions, 5 asserts each; about 1 in 6 with a wrong expectation."""
    rng = random.Random(f"unit-tests-{seed}")
    jobs = []
    for i in range(n):
        name, k, c = f"{rng.choice(FUNCS)}_{seed}_{i}", rng.randint(2, 7), rng.randint(2, 97)
        program = (
            f"def {name}(xs):\n    total = 0\n    for x in xs:\n        if x % {k} == 0:\n"
            f"            total += x * {c}\n    return total\n"
        )
        asserts = []
        for _ in range(5):
            xs = [rng.randint(-50, 50) for _ in range(rng.randint(0, 8))]
            want = sum(x * c for x in xs if x % k == 0) + (1 if rng.random() < 0.035 else 0)
            asserts.append(f"assert {name}({xs}) == {want}\n")
        jobs.append(("python", program, {"test_code": "".join(asserts)}))
    return jobs


def bench_unit_tests(args) -> dict:
    exs = {
        "per-job": Executor(workers=args.workers, timeout_s=4.0, python_server=False),
        "server": Executor(workers=args.workers, timeout_s=4.0, python_server=True),
    }
    try:
        for ex in exs.values():
            ex.warm_up(["python"])  # starts the servers (not timed, as the javac server)
        server = exs["server"]
        print(
            f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; pool "
            f"workers {server.workers}; sandbox {server.sandbox.mode}; python servers: "
            + ("yes" if server.python_server else "NO (unavailable here: both run per job)")
        )
        spent = {name: 0.0 for name in exs}
        verdicts: dict[str, list] = {name: [] for name in exs}
        done = 0
        for r in range(args.rounds):
            jobs = unit_test_jobs(args.n, args.seed * 1000 + r)
            order = list(exs) if r % 2 == 0 else list(exs)[::-1]  # cancel drift in the load
            for name in order:
                ex = exs[name]
                hits = ex.stats["cache_hits"]
                t = time.perf_counter()
                results = ex.run_many(jobs)
                spent[name] += time.perf_counter() - t
                assert ex.stats["cache_hits"] == hits, "benchmark jobs must be distinct"
                verdicts[name] += [res.verdict for res in results]
            done += len(jobs)
            print(
                f"round {r + 1}: per-job {done / spent['per-job']:.1f} checks/s, server "
                f"{done / spent['server']:.1f} checks/s (cumulative)"
            )
        per_job, srv = (verdicts[name] for name in ("per-job", "server"))
        agree = sum(a == b for a, b in zip(per_job, srv))
        row = {
            "jobs_per_path": done,
            "per_job_checks_per_s": done / spent["per-job"],
            "server_checks_per_s": done / spent["server"],
            "ratio": spent["per-job"] / spent["server"],
            "agree": agree,
            "passed": sum(v is Verdict.PASS for v in srv),
            "infra_errors": sum(v is Verdict.INFRA_ERROR for v in per_job + srv),
        }
        print(
            f"python unit tests, {done} jobs per path, 5 asserts each: one interpreter per job "
            f"{row['per_job_checks_per_s']:.1f} checks/s, python servers "
            f"{row['server_checks_per_s']:.1f} checks/s, ratio {row['ratio']:.2f}x; verdicts "
            f"agree {agree}/{done} (PASS {row['passed']})"
            + (f"  INFRA {row['infra_errors']}" if row["infra_errors"] else "")
        )
        return row
    finally:
        for ex in exs.values():
            ex.close()


def bench_breakdown(args) -> dict:
    """Jobs one at a time, each stage measured in turn (interleaved), min and median in ms."""
    info = sandbox.sandbox_info()
    py = [info.python, "-I", "-S"]
    ex_job = Executor(workers=1, timeout_s=4.0, python_server=False)
    ex_srv = Executor(workers=1, timeout_s=4.0, python_server=True)
    ex_srv.warm_up(["python"])
    root = Path(tempfile.mkdtemp(prefix="bench-breakdown-"))
    work, io = root / "work", root / "io"
    work.mkdir()
    io.mkdir(mode=0o700)
    jobs = unit_test_jobs(args.n * 2 + 6, args.seed + 99)
    program, tests = jobs[0][1], harness.parse_tests(jobs[0][2], "python")
    (work / "program.py").write_text(program)
    (work / harness.RUNNER_NAME).write_text(harness.RUNNER_SOURCE)
    stdin = ("nonce\n" + json.dumps(harness.runner_job(tests, "program.py", 4.0))).encode()
    limits = sandbox.Limits(wall_s=30)

    def bwrap_only():
        cmd = sandbox._bwrap_base(str(work), info.ro_binds, info.drop_uid, None) + ["/bin/true"]
        subprocess.run(cmd, env={"PATH": sandbox._PATH}, check=True, capture_output=True)

    def checked(out):
        assert out.started and out.returncode == 0, out
        return out

    stages = {
        "python -I -S -c pass (no sandbox)": lambda: subprocess.run(
            [*py, "-c", "pass"], check=True
        ),
        "bwrap -> /bin/true": bwrap_only,
        "+ setpriv, prlimit, bash marker": lambda: checked(
            sandbox.run_sandboxed(["/bin/true"], work, io, limits)
        ),
        "+ interpreter start (-c pass)": lambda: checked(
            sandbox.run_sandboxed([*py, "-c", "pass"], work, io, limits)
        ),
        "+ runner: load program, 5 asserts": lambda: checked(
            sandbox.run_sandboxed([*py, harness.RUNNER_NAME], work, io, limits, stdin=stdin)
        ),
    }
    it = {name: iter(j) for name, j in (("per-job", jobs[2::2]), ("server", jobs[3::2]))}
    stages["per-job Executor job (+ job dir, files, verdict)"] = lambda: ex_job.submit(
        *next(it["per-job"])
    ).result()
    if ex_srv.python_server:
        server = pyserver.PythonServer(root, py, "bench-server")  # started by this thread
        env = {"PATH": sandbox._PATH, "LANG": "C.UTF-8"}

        def in_server():  # the time the zygote measured: clone to the job's exit
            out = checked(server.run(program.encode(), "program.py", stdin, limits, env))
            return out.duration_s

        stages["python server: namespaces, limits, runner, tests"] = in_server
        stages["python server Executor job"] = lambda: ex_srv.submit(*next(it["server"])).result()
    times: dict[str, list[float]] = {name: [] for name in stages}
    try:
        for fn in stages.values():  # warm the page cache
            fn()
        for _ in range(args.n):
            for name, fn in stages.items():
                t = time.perf_counter()
                own = fn()
                times[name].append(own if isinstance(own, float) else time.perf_counter() - t)
    finally:
        if ex_srv.python_server:
            server.close()
        ex_job.close()
        ex_srv.close()
        sandbox.remove_tree(root)
    ms = {name: (min(v) * 1e3, statistics.median(v) * 1e3) for name, v in times.items()}
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; sandbox "
        f"{info.mode}; {args.n} jobs per stage, one at a time, interleaved"
    )
    print(f"{'stage':<52}{'min ms':>9}{'median ms':>11}")
    for name, (lo, med) in ms.items():
        print(f"{name:<52}{lo:>9.1f}{med:>11.1f}")
    chain = list(ms)[1:6]
    print("per-job sandboxed test job, by part (differences of the minima):")
    parts = [
        "bwrap",
        "setpriv, prlimit, bash",
        "interpreter start",
        "runner + tests",
        "host: files, dirs, verdict",
    ]
    prev = 0.0
    for part, name in zip(parts, chain):
        print(f"  {part:<30}{ms[name][0] - prev:>7.1f} ms")
        prev = ms[name][0]
    return {"stages_ms": ms}


TOOLS = {
    "cpp": ["g++"],
    "c": ["g++", "gcc"],
    "java": ["javac"],
    "csharp": ["mcs"],
    "php": ["php"],
    "javascript": ["node"],
}


def bench_compile(args, langs: list[str]) -> list[dict]:
    """Per language: the same programs through the authors' way, our default pool (with the
    compile check servers) and, where a language has servers, the per-job path
    (`compile_servers=False`), in interleaved rounds (the order rotates) so that load drift on
    a shared machine hits all paths alike."""
    exs = {
        "ours": Executor(workers=args.workers, timeout_s=4.0),
        "per-job": Executor(workers=args.workers, timeout_s=4.0, compile_servers=False),
    }
    rows = []
    try:
        t = time.perf_counter()
        for ex in exs.values():
            ex.warm_up(langs)
        setup_s = time.perf_counter() - t
        ours = exs["ours"]
        print(
            f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; pool workers "
            f"{ours.workers}; sandbox {ours.sandbox.mode}; check servers "
            f"{','.join(ours.compile_servers) or 'none'}; one-time set-up {setup_s:.1f}s (not "
            f"timed); {args.rounds} interleaved rounds; agree: ours vs the per-job path where a "
            "language has check servers (must be all), else vs the authors' checker"
        )
        print(
            f"{'lang':<11}{'n':>5}{'authors ck/s':>14}{'per-job ck/s':>14}{'ours ck/s':>11}"
            f"{'ours/authors':>14}{'ours/per-job':>14}{'agree':>9}{'compiled':>10}"
        )
        for lang in langs:
            n = args.n * 5 if lang == "python" else args.n
            if any(shutil.which(tool) is None for tool in TOOLS.get(lang, [])):
                print(f"{lang:<11} skipped: toolchain missing")
                continue
            progs = programs(lang, n, args.seed)
            paths = ["authors", "ours"] + (["per-job"] if lang in ours.compile_servers else [])
            spent = {path: 0.0 for path in paths}
            ok: dict[str, list[bool]] = {path: [] for path in paths}
            infra = 0
            for r in range(args.rounds):
                chunk = progs[r :: args.rounds]
                for path in paths[r % len(paths) :] + paths[: r % len(paths)]:
                    t = time.perf_counter()
                    if path == "authors":
                        got = [baseline_check(lang, p) for p in chunk]
                    else:
                        ex = exs[path]
                        hits = ex.stats["cache_hits"]
                        results = ex.run_many([(lang, p) for p in chunk])
                        assert ex.stats["cache_hits"] == hits, "benchmark programs must be distinct"
                        infra += sum(res.verdict is Verdict.INFRA_ERROR for res in results)
                        got = [res.verdict is Verdict.COMPILED for res in results]
                    spent[path] += time.perf_counter() - t
                    ok[path] += got
            per_job = "per-job" in paths
            row = {
                "lang": lang,
                "n": n,
                "authors_s": spent["authors"],
                "ours_s": spent["ours"],
                "per_job_s": spent["per-job"] if per_job else None,
                "authors_checks_per_s": n / spent["authors"],
                "ours_checks_per_s": n / spent["ours"],
                "per_job_checks_per_s": n / spent["per-job"] if per_job else None,
                "ratio": spent["authors"] / spent["ours"],
                "ratio_over_per_job": spent["per-job"] / spent["ours"] if per_job else None,
                # the authors' checkers differ (g++ for C, javac after `public class` -> `class`)
                "agree_authors": sum(a == b for a, b in zip(ok["authors"], ok["ours"])),
                "agree_per_job": (
                    sum(a == b for a, b in zip(ok["per-job"], ok["ours"])) if per_job else None
                ),
                "compiled": sum(ok["ours"]),
                "infra_errors": infra,
            }
            rows.append(row)
            pj = f"{row['per_job_checks_per_s']:>14.2f}" if per_job else f"{'-':>14}"
            pr = f"{row['ratio_over_per_job']:>13.1f}x" if per_job else f"{'-':>14}"
            agree = row["agree_per_job"] if per_job else row["agree_authors"]
            print(
                f"{lang:<11}{n:>5}{row['authors_checks_per_s']:>14.2f}{pj}"
                f"{row['ours_checks_per_s']:>11.2f}{row['ratio']:>13.1f}x{pr}"
                f"{agree:>5}/{n:<3}{row['compiled']:>6}/{n}" + (f"  INFRA {infra}" if infra else "")
            )
    finally:
        for ex in exs.values():
            ex.close()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--langs", default="python,cpp,java", help="comma-separated languages")
    ap.add_argument("--n", type=int, default=24, help="programs per language (python: 5x)")
    ap.add_argument("--workers", type=int, default=0, help="pool threads (0 = cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="PATH", help="also write the numbers here")
    ap.add_argument(
        "--unit-tests", action="store_true", help="Python unit-test jobs: per-job vs servers"
    )
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds")
    ap.add_argument("--breakdown", action="store_true", help="where a test job's time goes")
    args = ap.parse_args()
    if args.unit_tests or args.breakdown:
        if args.n < 1 or args.rounds < 1:
            print("bench_rewards: --n and --rounds must be >= 1", file=sys.stderr)
            return 2
        row = bench_breakdown(args) if args.breakdown else bench_unit_tests(args)
        if args.json:
            Path(args.json).write_text(json.dumps(row, indent=2))
        return 0
    langs = [x.strip() for x in args.langs.split(",") if x.strip()]
    for lang in langs:
        if lang not in GENERATORS:
            print(f"bench_rewards: unknown language {lang!r}", file=sys.stderr)
            return 2
    if args.n < 1:
        print("bench_rewards: --n must be >= 1", file=sys.stderr)
        return 2

    if args.rounds < 1:
        print("bench_rewards: --rounds must be >= 1", file=sys.stderr)
        return 2
    rows = bench_compile(args, langs)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
