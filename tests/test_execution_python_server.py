"""Python test servers (zygotes): the same verdicts as one sandboxed interpreter per job, the
same isolation (each job its own filesystem, PID namespace, uid and limits; nothing seen or
signalled across jobs or at the server), and a server that survives every program."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from pathlib import Path

import pytest

from ppocoder_jax.rewards.execution import Executor, Verdict, python_server, sandbox_info

TIMEOUT_S = 1.5
V = Verdict
unavailable = python_server.unavailable_reason(sandbox_info())
needs_server = pytest.mark.skipif(bool(unavailable), reason=f"no Python server: {unavailable}")


def _assert(program: str, test_code: str):
    return ("python", program, {"test_code": test_code})


def _call(program: str, inputs: list, outputs: list, fn: str = "f"):
    return ("python", program, {"inputs": inputs, "outputs": outputs, "fn_name": fn})


TMP = tempfile.gettempdir()
# name -> (job, verdicts it may get). One verdict: both paths must give exactly it. Several:
# a race decides between them (e.g. a fork bomb's own clock against the wall clock).
PROGRAMS = {
    "pass_assert": (
        _assert("def f(x):\n    return 2 * x\n", "assert f(2) == 4\nassert f(3) == 6\n"),
        {V.PASS},
    ),
    "pass_call": (_call("def f(x):\n    return 2 * x\n", [[1], [2]], [2, 4]), {V.PASS}),
    "fail_assert": (
        _assert("def f(x):\n    return 2 * x\n", "assert f(2) == 5\n"),
        {V.WRONG_ANSWER},
    ),
    "fail_call": (_call("def f(x):\n    return 3 * x\n", [[1], [2]], [2, 4]), {V.WRONG_ANSWER}),
    "error": (_assert("def f(x):\n    return x // 0\n", "assert f(1) == 1\n"), {V.RUNTIME_ERROR}),
    "load_error": (_assert("import no_such_module\n", "assert True\n"), {V.RUNTIME_ERROR}),
    "load_timeout": (_assert("while True:\n    pass\n", "assert True\n"), {V.TIMEOUT}),
    "test_timeout": (
        _call("def f(x):\n    while True:\n        pass\n", [[1]], [1]),
        {V.TIMEOUT},
    ),
    "ignores_timeout_signals": (
        _call(
            "import signal\nfor s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT):\n"
            "    signal.signal(s, lambda *a: None)\ndef f(x):\n    while True:\n        pass\n",
            [[1]],
            [1],
        ),
        {V.TIMEOUT},
    ),
    "forged_equality": (
        _assert(
            "class A:\n    def __eq__(self, o):\n        return True\n    __hash__ = None\n"
            "def f(x):\n    return A()\n",
            "assert f(1) == 2\n",
        ),
        {V.WRONG_ANSWER},
    ),
    "forged_equality_call": (
        _call(
            "class A:\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return A()\n",
            [[1]],
            [2],
        ),
        {V.WRONG_ANSWER},
    ),
    "memory_at_once": (_assert("x = [None] * (1 << 32)\n", "assert True\n"), {V.MEMORY_LIMIT}),
    "memory_hog": (
        _assert(
            "def f():\n    a = []\n    while True:\n        a.append(bytearray(200 << 20))\n",
            "f()\n",
        ),
        {V.MEMORY_LIMIT, V.TIMEOUT},
    ),
    "recursion": (
        _assert("def f(n):\n    return f(n + 1)\n", "assert f(0)\n"),
        {V.RUNTIME_ERROR},
    ),
    "keyboard_interrupt": (
        _assert("def f():\n    raise KeyboardInterrupt\n", "assert f()\n"),
        {V.RUNTIME_ERROR},
    ),
    "sys_exit_at_load": (
        _assert("import sys\nsys.exit(0)\n", "assert True\n"),
        {V.RUNTIME_ERROR},
    ),
    "os_exit_in_test": (
        _call("import os\ndef f(x):\n    os._exit(0)\n", [[1]], [1]),
        {V.RUNTIME_ERROR},
    ),
    "atexit_exit_status": (
        _assert(
            "import atexit, os\natexit.register(lambda: os._exit(3))\ndef f():\n    return 1\n",
            "assert f() == 1\n",
        ),
        {V.RUNTIME_ERROR},
    ),
    "finalizer_at_exit": (
        _assert(
            "import os\nclass D:\n    def __del__(self):\n        os._exit(4)\n"
            "d = D()\nd.me = d\ndef f():\n    return 1\n",
            "assert f() == 1\n",
        ),
        {V.RUNTIME_ERROR},
    ),
    "thread_keeps_running": (
        _assert(
            "import threading, time\nthreading.Thread(target=time.sleep, args=(10**6,)).start()\n"
            "def f():\n    return 1\n",
            "assert f() == 1\n",
        ),
        {V.TIMEOUT},
    ),
    "stdout_flood": (
        _assert(
            "def f():\n    for _ in range(2000):\n        print('x' * 10000)\n    return 1\n",
            "assert f() == 1\n",
        ),
        {V.PASS},
    ),
    "stderr_flood": (
        _assert(
            "import sys\ndef f():\n    while True:\n        sys.stderr.write('x' * 65536)\n",
            "f()\n",
        ),
        {V.OUTPUT_LIMIT},
    ),
    "channel_flood": (
        _assert(
            "import os\ndef f():\n    for fd in range(3, 10):\n        try:\n            while True:\n"
            "                os.write(fd, b'0 pass\\n' * 10000)\n        except OSError:\n"
            "            pass\n    return 1\n",
            "assert f() == 2\n",
        ),
        {V.OUTPUT_LIMIT},
    ),
    "closes_every_descriptor": (
        _assert(
            "import os\ndef f():\n    os.closerange(0, 4096)\n    return 1\n", "assert f() == 1\n"
        ),
        {V.RUNTIME_ERROR},
    ),
    "fork_limit": (
        _call(
            "import os, time\ndef f():\n    n = 0\n    for _ in range(64):\n        try:\n"
            "            pid = os.fork()\n        except OSError:\n            break\n"
            "        if pid == 0:\n            time.sleep(60)\n            os._exit(0)\n"
            "        n += 1\n    return n < 20\n",
            [[]],
            [True],
        ),
        {V.PASS},
    ),
    "fork_bomb": (
        _assert(
            "import os\ndef f():\n    while True:\n        try:\n            os.fork()\n"
            "        except OSError:\n            pass\n",
            "f()\n",
        ),
        {V.TIMEOUT, V.RUNTIME_ERROR},
    ),
    "sleeping_daemon": (
        _assert(
            "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(10**6)\n"
            "def f():\n    return 1\n",
            "assert f() == 1\n",
        ),
        {V.PASS},
    ),
    "kill_minus_one": (
        _call(
            "import os, signal\ndef f():\n    for pid in (-1, 0, 1, os.getppid()):\n        try:\n"
            "            os.kill(pid, signal.SIGKILL)\n        except OSError:\n            pass\n"
            "    return 1\n",
            [[]],
            [1],
        ),
        {V.RUNTIME_ERROR},  # kill(0) is its own process group: the runner dies with it
    ),
    "kill_minus_one_only": (
        _call(
            "import os, signal\ndef f():\n    for pid in (-1, 1, os.getppid()):\n        try:\n"
            "            os.kill(pid, signal.SIGKILL)\n        except OSError:\n            pass\n"
            "    return 1\n",
            [[]],
            [1],
        ),
        {V.PASS},
    ),
    "reads_proc": (
        _call(
            "import os\ndef f():\n    return sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n",
            [[]],
            [[1, 2]],
        ),
        {V.PASS},
    ),
    "looks_for_other_jobs": (
        _call(
            "import os\ndef f(tmp):\n    seen = []\n"
            "    for d in ('/', '/tmp', '/sandbox', '/sandbox/..', tmp, '/proc/1/root', '/proc/1/cwd'):\n"
            "        try:\n            names = os.listdir(d)\n        except OSError:\n            continue\n"
            "        seen += [n for n in names if n.startswith(('job-', 'ppocoder-exec', 'pyserver'))]\n"
            "    return seen\n",
            [[TMP]],
            [[]],
        ),
        {V.PASS},
    ),
    "writes_outside_sandbox": (
        _call(
            "import os\ndef f(tmp):\n    out = []\n"
            "    for p in ('/etc/x', '/usr/x', '/x', '/proc/sys/kernel/hostname', '/dev/shm/x', '/sandbox/../x'):\n"
            "        try:\n            open(p, 'w').write('pwned')\n            out.append(p)\n"
            "        except OSError:\n            pass\n"
            "    open('/sandbox/inside', 'w').write('ok')\n    open('/tmp/inside2', 'w').write('ok')\n"
            "    return out\n",
            [[TMP]],
            [[]],
        ),
        {V.PASS},
    ),
    "identity_and_capabilities": (
        _call(
            "import os\ndef f():\n    st = open('/proc/self/status').read()\n"
            "    caps = sorted({l.split()[1] for l in st.splitlines() if l.startswith('Cap')})\n"
            "    return [os.getuid() >= 1 << 20, os.getgid() == os.getuid(), os.getgroups(), caps,\n"
            "            'NoNewPrivs:\\t1' in st, os.uname().nodename, sorted(os.environ), os.getcwd()]\n",
            [[]],
            [
                [
                    True,
                    True,
                    [],
                    ["0000000000000000"],
                    True,
                    "sandbox",
                    ["HOME", "LANG", "PATH", "PWD", "SHLVL", "TMPDIR"],
                    "/sandbox",
                ]
            ],
        ),
        {V.PASS},
    ),
    "network": (
        _call(
            "import socket\ndef f():\n    s = socket.socket()\n    s.bind(('127.0.0.1', 0))\n    s.listen(1)\n"
            "    c = socket.create_connection(s.getsockname(), timeout=1)\n    out = ['loopback']\n"
            "    for addr in (('1.1.1.1', 53), ('8.8.8.8', 443)):\n        try:\n"
            "            socket.create_connection(addr, timeout=0.5)\n            out.append('connected')\n"
            "        except OSError:\n            pass\n    return out\n",
            [[]],
            [["loopback"]],
        ),
        {V.PASS},
    ),
    "megabytes_of_tests": (
        _call(
            "def f(xs):\n    return sum(xs) % 1000003\n",
            [[list(range(400_000))]],
            [(400_000 * 399_999 // 2) % 1000003],
        ),
        {V.PASS},
    ),
    "reads_its_stdin": (
        _call("import sys\ndata = sys.stdin.read()\ndef f():\n    return data\n", [[]], [""]),
        {V.PASS},
    ),
}


def _verdicts(python_server: bool) -> dict[str, tuple[Verdict, int]]:
    with Executor(workers=2, timeout_s=TIMEOUT_S, python_server=python_server) as ex:
        assert ex.python_server is python_server
        results = ex.run_many([job for job, _ in PROGRAMS.values()])
    return {name: (r.verdict, r.tests_passed) for name, r in zip(PROGRAMS, results)}


@needs_server
def test_verdicts_match_one_interpreter_per_job():
    per_job, server = _verdicts(False), _verdicts(True)
    wrong = []
    for name, (_, allowed) in PROGRAMS.items():
        if per_job[name][0] not in allowed or server[name][0] not in allowed:
            wrong.append((name, per_job[name], server[name]))
        elif len(allowed) == 1 and server[name] != per_job[name]:
            wrong.append((name, per_job[name], server[name]))
    assert wrong == []


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _servers(ex: Executor) -> list:
    assert ex._pyservers is not None
    return [s for s in ex._pyservers._all if s.proc is not None]


@needs_server
def test_concurrent_jobs_see_neither_files_nor_processes_of_each_other():
    """Two programs at once: each leaves a marker file and a process, then looks for the
    other's for a while (in /proc, via /proc/*/root and cwd, under every directory it can
    list) and kills everything it can; both must pass."""
    program = (
        "import os, signal, time\n"
        "def f(me, other):\n"
        "    open(me, 'w').write('x')\n"
        "    if os.fork() == 0:\n        time.sleep(60)\n        os._exit(0)\n"
        "    seen, end = set(), time.time() + 2.0\n"
        "    while time.time() < end:\n"
        "        for pid in os.listdir('/proc'):\n"
        "            if not pid.isdigit():\n                continue\n"
        "            for what in ('cmdline', 'root/sandbox', 'cwd'):\n"
        "                try:\n"
        "                    p = f'/proc/{pid}/{what}'\n"
        "                    text = open(p, 'rb').read() if what == 'cmdline' else ' '.join(os.listdir(p))\n"
        "                except OSError:\n                    continue\n"
        "                if other in str(text):\n                    seen.add(what)\n"
        "        for d in ('/', '/tmp', '/sandbox', '/sandbox/..', '/dev/shm', '/dev/pts'):\n"
        "            try:\n                if any(other in n for n in os.listdir(d)):\n"
        "                    seen.add(d)\n            except OSError:\n                pass\n"
        "        try:\n            os.kill(-1, signal.SIGKILL)\n        except OSError:\n            pass\n"
        "        time.sleep(0.05)\n"
        "    return sorted(seen)\n"
    )
    jobs = [
        _call(program, [["marker-a", "marker-b"]], [[]]),
        _call(program + "\n", [["marker-b", "marker-a"]], [[]]),
    ]
    with Executor(workers=2, timeout_s=5.0) as ex:
        ex.warm_up(["python"])
        servers = _servers(ex)
        futures = [ex.submit(*job) for job in jobs]
        overlapped = False
        while not all(f.done() for f in futures):  # both servers running a job at once?
            busy = [len(_descendants(s.proc.pid)) > 2 for s in servers]
            overlapped = overlapped or all(busy)
            time.sleep(0.05)
        a, b = (f.result() for f in futures)
        assert (a.verdict, b.verdict) == (V.PASS, V.PASS), (a.detail, b.detail)
        assert overlapped, "the two jobs did not run at the same time"
        for server in servers:  # bwrap's init and the zygote: nothing left of the jobs
            assert len(_descendants(server.proc.pid)) == 2
        assert [s.starts for s in _servers(ex)] == [1, 1]


@needs_server
def test_server_survives_every_program_and_cannot_be_signalled():
    hostile = [
        PROGRAMS[name][0]
        for name in (
            "kill_minus_one",
            "fork_bomb",
            "memory_hog",
            "closes_every_descriptor",
            "sleeping_daemon",
            "channel_flood",
        )
    ]
    # Every pid a program can name, and its process group, session and parent.
    hostile.append(
        _call(
            "import os, signal\ndef f():\n    for pid in range(-4, 4096):\n        try:\n"
            "            if pid not in (0, os.getpid(), -os.getpid()):\n"
            "                os.kill(pid, signal.SIGKILL)\n        except OSError:\n            pass\n"
            "    return 1\n",
            [[]],
            [1],
        )
    )
    with Executor(workers=1, timeout_s=TIMEOUT_S) as ex:
        ex.warm_up(["python"])
        (server,) = _servers(ex)
        pid = server.proc.pid
        for job in hostile:
            result = ex.submit(*job).result()
            assert result.verdict is not V.INFRA_ERROR, result.detail
            good = ex.submit(*_assert(f"def f():\n    return {time.time_ns()}\n", "assert f()\n"))
            assert good.result().verdict is V.PASS
            assert server.proc is not None and server.proc.pid == pid and server.starts == 1
            assert len(_descendants(pid)) == 2


@needs_server
def test_a_dead_server_is_an_infra_error_then_restarts():
    sleeper = _assert(
        "import time\ndef f():\n    time.sleep(3)\n    return 1\n", "assert f() == 1\n"
    )
    with Executor(workers=1, timeout_s=5.0) as ex:
        ex.warm_up(["python"])
        (server,) = _servers(ex)
        server.proc.kill()  # dead while idle: the next job starts a fresh one
        server.proc.wait()
        assert (
            ex.submit(*_assert("def f():\n    return 1\n", "assert f() == 1\n")).result().verdict
            is V.PASS
        )
        assert server.starts == 2
        future = ex.submit(*sleeper)
        time.sleep(1.0)
        server.proc.kill()  # dead under a job: our failure, never the program's
        result = future.result()
        assert result.verdict is V.INFRA_ERROR and "python server" in result.detail
        assert (
            ex.submit(*_assert("def f():\n    return 2\n", "assert f() == 2\n")).result().verdict
            is V.PASS
        )
        assert server.starts == 3 and ex.python_server


@pytest.mark.parametrize("broken", ["exits at once", "per-job sandbox fails"])
def test_falls_back_to_one_interpreter_per_job(monkeypatch, caplog, broken):
    """Servers that cannot be built (one that exits at once; one whose start-up probe job fails,
    as on a kernel without pidfds) leave the per-job path in charge, said once in the log; no
    job is lost to it."""
    source = python_server.ZYGOTE_SOURCE
    if broken == "exits at once":
        source = "import sys\nsys.exit(3)\n"
    else:
        assert "os.pidfd_open(pid)" in source
        source = source.replace("os.pidfd_open(pid)", "os.pidfd_open(-1)")
    monkeypatch.setattr(python_server, "ZYGOTE_SOURCE", source)
    jobs = [_assert(f"def f():\n    return {i}\n", f"assert f() == {i}\n") for i in range(4)]
    with caplog.at_level(logging.WARNING), Executor(workers=2, timeout_s=5.0) as ex:
        results = ex.run_many(jobs)
        assert not ex.python_server
    assert [r.verdict for r in results] == [V.PASS] * 4
    said = [r.message for r in caplog.records if "one sandboxed interpreter per job" in r.message]
    assert len(said) <= 1


def test_python_server_false_keeps_one_interpreter_per_job():
    with Executor(workers=1, python_server=False) as ex:
        assert not ex.python_server
        r = ex.submit(*_assert("def f():\n    return 1\n", "assert f() == 1\n")).result()
    assert r.verdict is V.PASS


@needs_server
def test_server_jobs_leave_no_files_and_stop_with_the_executor():
    ex = Executor(workers=2, timeout_s=5.0)
    results = ex.run_many(
        [
            _assert(
                f"def f():\n    open('big', 'wb').write(b'x' * {1 << 20})\n    return {i}\n",
                f"assert f() == {i}\n",
            )
            for i in range(6)
        ]
    )
    assert [r.verdict for r in results] == [V.PASS] * 6
    assert not [p for p in ex.root.iterdir() if p.name.startswith("job-")]
    pids = [s.proc.pid for s in _servers(ex)]
    ex.close()
    assert not ex.root.exists()
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
        )


def test_threads_only_in_the_trainer():
    """The trainer never forks: the servers are started with Popen from worker threads."""
    import subprocess

    calls = []
    real = subprocess.Popen.__init__

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("preexec_fn"))
        return real(self, *args, **kwargs)

    subprocess.Popen.__init__ = spy
    try:
        forks = []
        os.register_at_fork(before=lambda: forks.append(threading.current_thread().name))
        with Executor(workers=1, timeout_s=5.0) as ex:
            program = "import os\ndef f():\n    pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n    return os.waitpid(pid, 0)[1] == 0\n"
            r = ex.submit(*_assert(program, "assert f()\n")).result()
    finally:
        subprocess.Popen.__init__ = real
    assert r.verdict is V.PASS
    assert all(fn is None for fn in calls)
    assert forks == []


@needs_server
def test_same_stack_depth_and_limits_as_one_interpreter_per_job():
    """Programs recursing close to the limit see the same depth: main() runs at the same
    level of the stack in both paths; and the same limits apply."""
    program = (
        "import sys, resource\n"
        "def depth():\n    n, fr = 0, sys._getframe()\n    while fr:\n        n, fr = n + 1, fr.f_back\n    return n\n"
        "def deepest(n=0):\n    try:\n        return deepest(n + 1)\n    except RecursionError:\n        return n\n"
        "def f():\n    limits = [resource.getrlimit(getattr(resource, 'RLIMIT_' + r)) for r in\n"
        "              ('CPU', 'DATA', 'NPROC', 'FSIZE', 'NOFILE', 'CORE', 'STACK', 'AS')]\n"
        "    return [depth(), deepest(), sys.getrecursionlimit(), limits]\n"
    )
    details = []
    for server in (False, True):
        with Executor(workers=1, timeout_s=TIMEOUT_S, python_server=server) as ex:
            details.append(ex.submit(*_call(program, [[]], [None])).result().detail)
    assert details[0] == details[1] and "wrong answer: [" in details[0], details
