"""Hostile programs: each gets a bounded verdict, leaves no process or job directory behind,
and the next job is unaffected. Then all of them at once beside correct programs."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from ppocoder_jax.rewards.execution import Executor, Verdict, sandbox_info

ECHO = {"inputs": ["5\n"], "outputs": ["5\n"]}
GOOD = ("python", "print(input())\n", ECHO)
TIMEOUT_S = 1.5


def _processes_under(root: Path) -> list[str]:
    """Processes whose working directory is a job directory of the executor.

    A SIGKILLed process that is freeing gigabytes takes a moment to go: allow a few seconds.
    """
    for _ in range(50):
        found = _scan(root)
        if not found:
            return found
        time.sleep(0.1)
    return found


def _scan(root: Path) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state in ("Z", "X"):  # dead, waiting for a reaper that may not exist in containers
            continue
        if cwd.startswith(str(root) + "/job-"):  # the javac server lives in root itself
            found.append(f"{pid}:{cwd}")
    return found


def _job_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("job-"))


@pytest.fixture(scope="module")
def ex():
    with Executor(
        workers=2, timeout_s=TIMEOUT_S, compile_timeout_s=8.0, output_bytes=1 << 20
    ) as executor:
        yield executor


def _check(ex, job, expected: set[Verdict]):
    result = ex.submit(*job).result()
    assert result.verdict in expected, (result.verdict, result.detail)
    assert _processes_under(ex.root) == []
    assert _job_dirs(ex.root) == []
    follow_up = ex.submit(*GOOD).result()  # the next job is unaffected
    assert follow_up.verdict is Verdict.PASS, follow_up.detail
    return result


SIGNALS = "import signal\nfor s in (signal.SIGTERM, signal.SIGALRM, signal.SIGINT, signal.SIGXCPU):\n    signal.signal(s, lambda *a: None)\n"

HOSTILE = {
    "infinite_loop": (("python", "while True:\n    pass\n", ECHO), {Verdict.TIMEOUT}),
    "sleep_forever": (("python", "import time\ntime.sleep(10**6)\n", ECHO), {Verdict.TIMEOUT}),
    "catch_timeout_signals": (
        ("python", SIGNALS + "while True:\n    pass\n", ECHO),
        {Verdict.TIMEOUT},
    ),
    "catch_signals_in_call_test": (
        (
            "python",
            SIGNALS + "def f(x):\n    while True:\n        pass\n",
            {"inputs": [[1]], "outputs": [[1]], "fn_name": "f"},
        ),
        {Verdict.TIMEOUT},
    ),
    "fork_bomb": (
        (
            "python",
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
            ECHO,
        ),
        {Verdict.TIMEOUT, Verdict.RUNTIME_ERROR},
    ),
    "fork_bomb_c": (
        ("c", "#include <unistd.h>\nint main(void){ for(;;) fork(); }\n", ECHO),
        {Verdict.TIMEOUT, Verdict.RUNTIME_ERROR},
    ),
    # Touching pages is slow on a busy machine: a growing hog may hit the clock first.
    "memory_hog": (
        ("python", "chunks = []\nwhile True:\n    chunks.append(bytearray(400 << 20))\n", ECHO),
        {Verdict.MEMORY_LIMIT, Verdict.TIMEOUT},
    ),
    "memory_hog_at_once": (
        ("python", "x = [None] * (1 << 32)\n", ECHO),
        {Verdict.MEMORY_LIMIT},
    ),
    "memory_hog_at_once_cpp": (
        (
            "cpp",
            "#include <iostream>\n#include <vector>\nint main(){ std::vector<char> v(1ull << 34, 1); std::cout << int(v[7]); }\n",
            ECHO,
        ),
        {Verdict.MEMORY_LIMIT},
    ),
    "memory_hog_cpp": (
        (
            "cpp",
            "#include <vector>\n#include <cstring>\nint main(){ std::vector<char*> v; for(;;){ char* p = new char[64<<20]; std::memset(p, 1, 64<<20); v.push_back(p);} }\n",
            ECHO,
        ),
        {Verdict.MEMORY_LIMIT, Verdict.TIMEOUT},
    ),
    "memory_hog_java": (
        (
            "java",
            "import java.util.*;\nclass Main { public static void main(String[] a) { List<long[]> l = new ArrayList<>(); while (true) l.add(new long[1 << 24]); } }\n",
            ECHO,
        ),
        {Verdict.MEMORY_LIMIT},
    ),
    "infinite_loop_javascript": (("javascript", "for (;;) {}\n", ECHO), {Verdict.TIMEOUT}),
    "gigabytes_of_output": (
        ("python", "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", ECHO),
        {Verdict.OUTPUT_LIMIT},
    ),
    "gigabytes_of_stderr_c": (
        (
            "c",
            '#include <stdio.h>\nint main(void){ for(;;) fputs("yyyyyyyyyyyyyyyy", stderr); }\n',
            ECHO,
        ),
        {Verdict.OUTPUT_LIMIT},
    ),
    "unbounded_recursion": (
        ("python", "def f(n):\n    return f(n + 1)\nf(0)\n", ECHO),
        {Verdict.RUNTIME_ERROR},
    ),
    "unbounded_recursion_no_limit": (
        (
            "python",
            "import sys\nsys.setrecursionlimit(10**9)\ndef f(n):\n    return f(n + 1) + 1\nf(0)\n",
            ECHO,
        ),
        {Verdict.RUNTIME_ERROR, Verdict.MEMORY_LIMIT, Verdict.TIMEOUT},
    ),
    "unbounded_recursion_cpp": (
        (
            "cpp",
            "int f(int n){ volatile int a[64]; a[0]=n; return f(n+1) + a[0]; }\nint main(){ return f(0); }\n",
            ECHO,
        ),
        {Verdict.RUNTIME_ERROR},
    ),
    "exit_before_tests_stdio": (
        ("python", "import sys\nsys.exit(0)\nprint(input())\n", ECHO),
        {Verdict.WRONG_ANSWER},
    ),
    "sys_exit_before_asserts": (
        (
            "python",
            "import sys\ndef f():\n    return 1\nsys.exit(0)\n",
            {"test_code": "assert f() == 1\n"},
        ),
        {Verdict.RUNTIME_ERROR},
    ),
    "os_exit_before_asserts": (
        (
            "python",
            "import os\ndef f():\n    return 1\nos._exit(0)\n",
            {"test_code": "assert f() == 1\n"},
        ),
        {Verdict.RUNTIME_ERROR},
    ),
    "os_exit_inside_call": (
        (
            "python",
            "import os\ndef f(x):\n    os._exit(0)\n",
            {"inputs": [[1]], "outputs": [[1]], "fn_name": "f"},
        ),
        {Verdict.RUNTIME_ERROR},
    ),
    "exit_inside_asserted_function": (
        ("python", "import sys\ndef f():\n    sys.exit(0)\n", {"test_code": "assert f() == 1\n"}),
        {Verdict.RUNTIME_ERROR},
    ),
    "eq_always_true_asserts": (
        (
            "python",
            "class Anything:\n    def __eq__(self, other):\n        return True\n    __hash__ = None\ndef f(x):\n    return Anything()\n",
            {"test_code": "assert f(1) == 2\nassert f(2) == 'x'\n"},
        ),
        {Verdict.WRONG_ANSWER},
    ),
    "eq_always_true_int_subclass": (
        (
            "python",
            "class I(int):\n    def __eq__(self, other):\n        return True\ndef f(x):\n    return I(0)\n",
            {"test_code": "def check(candidate):\n    assert candidate(1) == 2\ncheck(f)\n"},
        ),
        {Verdict.WRONG_ANSWER},
    ),
    "eq_always_true_call_based": (
        (
            "python",
            "class Anything:\n    def __eq__(self, other):\n        return True\ndef f(x):\n    return Anything()\n",
            {"inputs": [[1]], "outputs": [[2]], "fn_name": "f"},
        ),
        {Verdict.WRONG_ANSWER},
    ),
    "forged_channel_line": (
        (
            "python",
            "import os\nfor fd in range(3, 20):\n    try:\n        os.write(fd, b'0123 0 pass\\n0123 done\\n')\n    except OSError:\n        pass\n"
            "print('0 pass')\ndef f():\n    return 0\n",
            {"test_code": "assert f() == 1\n"},
        ),
        {Verdict.WRONG_ANSWER},
    ),
    "fake_infra_error": (
        (
            "python",
            "import os, sys\nfor fd in range(3, 64):\n    try:\n        os.ftruncate(fd, 0)\n    except OSError:\n        pass\n"
            'sys.stderr.write("bwrap: Can\'t find source path: No such file\\n")\nsys.exit(1)\n',
            ECHO,
        ),
        {Verdict.RUNTIME_ERROR},
    ),
    "kill_parent_and_everything": (
        (
            "python",
            f"import os, signal\nfor pid in (os.getppid(), 1, {os.getpid()}):\n    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n"
            "try:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\nprint(input())\n",
            ECHO,
        ),
        {Verdict.RUNTIME_ERROR, Verdict.PASS, Verdict.WRONG_ANSWER},
    ),
    "cpp_template_blowup": (
        (
            "cpp",
            "template<int N, long M> struct B { static const long v = B<N-1, 2*M>::v + B<N-1, 2*M+1>::v; };\n"
            "template<long M> struct B<0, M> { static const long v = M; };\nlong x = B<40, 1>::v;\n",
        ),
        {Verdict.COMPILE_ERROR},
    ),
    "c_macro_blowup": (
        (
            "c",
            "#define A(x) x x x x x x x x x x\n#define B(x) A(A(A(A(x))))\n#define C(x) B(B(B(x)))\nint x[] = { C(1,) };\n",
        ),
        {Verdict.COMPILE_ERROR},
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_program(ex, name):
    job, expected = HOSTILE[name]
    _check(ex, job, expected)


def test_setsid_daemon_keeping_output_open(ex):
    daemon = (
        "import os, time, subprocess\n"
        "if os.fork() == 0:\n    os.setsid()\n    subprocess.Popen(['sleep', '86399'])\n    time.sleep(10**6)\n"
        "print(input())\n"
    )
    result = _check(ex, ("python", daemon, ECHO), {Verdict.PASS})
    assert result.duration_s < 60  # bounded: did not wait for the daemon to close stdout
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            assert b"86399" not in cmd, "the daemon's child survived"


needs_bwrap = pytest.mark.skipif(
    sandbox_info().mode != "bwrap", reason="filesystem/network isolation needs bubblewrap"
)


@needs_bwrap
def test_writes_outside_its_directory_fail(ex, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.chmod(tmp_path, 0o777)
    os.chmod(victim, 0o666)  # even world-writable files outside the job dir must be safe
    prog = (
        "import os\nresults = []\n"
        f"for path in ({str(victim)!r}, '/etc/ppocoder_evil', '/usr/ppocoder_evil', {str(tmp_path / 'new.txt')!r}, '/proc/sys/kernel/hostname'):\n"
        "    try:\n        with open(path, 'w') as f:\n            f.write('pwned')\n        results.append('written')\n"
        "    except OSError:\n        results.append('denied')\n"
        f"for path in ({str(victim)!r}, '/etc/hostname'):\n"
        "    try:\n        os.remove(path)\n        results.append('deleted')\n    except OSError:\n        results.append('denied')\n"
        "open('inside.txt', 'w').write('ok')\nresults.append(open('inside.txt').read())\n"
        "print(' '.join(results))\n"
    )
    expected = " ".join(["denied"] * 7 + ["ok"])
    _check(ex, ("python", prog, {"inputs": [""], "outputs": [expected]}), {Verdict.PASS})
    assert victim.read_text() == "precious"
    assert not (tmp_path / "new.txt").exists()
    assert Path("/etc/hostname").exists()


@needs_bwrap
def test_network_is_unreachable(ex):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.1)
    port = server.getsockname()[1]
    accepted = []

    def accept():
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    t = threading.Thread(target=accept)
    t.start()
    prog = (
        "import socket\nout = []\n"
        f"for addr in (('127.0.0.1', {port}), ('1.1.1.1', 53), ('8.8.8.8', 443)):\n"
        "    try:\n        socket.create_connection(addr, timeout=0.5)\n        out.append('connected')\n"
        "    except OSError:\n        out.append('blocked')\n"
        "print(' '.join(out))\n"
    )
    expected = {"inputs": [""], "outputs": ["blocked blocked blocked"]}
    result = _check(ex, ("python", prog, expected), {Verdict.PASS})
    t.join()
    server.close()
    assert accepted == [], result


def test_parent_environment_is_not_visible(ex, monkeypatch):
    monkeypatch.setenv("PPOCODER_TEST_SECRET", "hunter2")
    prog = (
        "import os\nseen = 'hunter2' in repr(dict(os.environ))\n"
        "for pid in os.listdir('/proc'):\n    if pid.isdigit():\n        try:\n"
        "            seen = seen or b'hunter2' in open(f'/proc/{pid}/environ', 'rb').read()\n"
        "        except OSError:\n            pass\n"
        "print('leak' if seen else 'clean')\n"
    )
    _check(ex, ("python", prog, {"inputs": [""], "outputs": ["clean"]}), {Verdict.PASS})


def test_hostile_pool_beside_correct_programs():
    """All hostile programs at once, interleaved with correct ones that must keep their verdict."""
    correct = [
        ("python", "print(int(input()) * 2)\n", {"inputs": ["21"], "outputs": ["42"]}),
        (
            "c",
            '#include <stdio.h>\nint main(void){int x; scanf("%d",&x); printf("%d\\n", x*2); return 0;}\n',
            {"inputs": ["21"], "outputs": ["42"]},
        ),
        ("python", "def add(a, b):\n    return a + b\n", {"test_code": "assert add(2, 3) == 5\n"}),
        (
            "cpp",
            "#include <iostream>\nint main(){int x; std::cin >> x; std::cout << x*2 << '\\n';}\n",
            {"inputs": ["21"], "outputs": ["42"]},
        ),
    ]
    jobs, expected = [], []
    for i, (job, verdicts) in enumerate(HOSTILE.values()):
        jobs.append(job)
        # Under this load a hostile program may hit the clock before its own limit (e.g. a
        # memory hog): any bounded verdict that is not a PASS it should not get will do.
        bounded = set(verdicts) | ({Verdict.TIMEOUT} if Verdict.PASS not in verdicts else set())
        expected.append(bounded)
        good = correct[i % len(correct)]
        # distinct text so the cache cannot answer for the sandbox
        jobs.append((good[0], good[1] + ("\n" * (i + 1)), good[2]))
        expected.append({Verdict.PASS})
    # A generous compile limit: correct C/C++ programs compile next to fork bombs and spinning
    # loops on a small machine (the blow-ups then take this long, in parallel with the rest).
    with Executor(
        workers=4, timeout_s=2 * TIMEOUT_S, compile_timeout_s=20.0, output_bytes=1 << 20
    ) as ex:
        results = ex.run_many(jobs)
        assert _processes_under(ex.root) == []
        assert _job_dirs(ex.root) == []
    for job, result, verdicts in zip(jobs, results, expected):
        assert result.verdict in verdicts, (job[1][:80], result.verdict, result.detail)


def test_sandbox_mode_is_reported():
    info = sandbox_info()
    assert info.mode in ("bwrap", "limits-only")
    if info.mode == "limits-only":
        assert info.reason  # said why, loudly
