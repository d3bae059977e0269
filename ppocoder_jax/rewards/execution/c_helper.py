"""The C check server's helper: the code that runs INSIDE the sandbox, not in the trainer.

`c_server.py` starts it with `python -I -S -c <this file's text>` inside the same sandbox as a
compile job (its directory at /sandbox, its uid, prlimit's limits). It is single-threaded, so it
may fork: the trainer never does. Per request it empties /sandbox, writes the program there
under the per-job file name, and runs the per-job compile command (gcc) in a child exactly as
the per-job sandbox runs it: cwd /sandbox, the same environment (as bash's `exec` passes it),
stdin empty, stdout and stderr on memfds (RLIMIT_FSIZE caps them as it capped the files), every
other descriptor closed, its own session, and setrlimit with prlimit's values. It answers OK
(exit status 0) or FAIL with stderr + stdout (of a long message its beginning, where the first
error is, and its end, which the verdict's detail shows), as the per-job path judges; a child
killed at the wall limit or by its CPU-time limit is a RETRY (the per-job check decides).
Standard library only (no ppocoder imports): it runs with the sandbox's interpreter.
"""

import os
import resource
import select
import signal
import time

DETAIL = 16384
HALF = DETAIL // 2
CUT = b"\n...\n"
SANDBOX = os.getcwd()


class _Requests:
    def __init__(self):
        self.buf = b""

    def _fill(self):
        chunk = os.read(0, 1 << 16)
        if not chunk:
            os._exit(0)  # the trainer closed the pipe: stop
        self.buf += chunk

    def line(self):
        while b"\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def exactly(self, n):
        parts, have = [self.buf[:n]], min(n, len(self.buf))
        self.buf = self.buf[n:]
        while have < n:
            chunk = os.read(0, min(1 << 20, n - have))
            if not chunk:
                os._exit(0)
            parts.append(chunk)
            have += len(chunk)
        return b"".join(parts)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _ends(text):
    return text if len(text) <= DETAIL else text[:HALF] + CUT + text[-HALF:]


def _answer(status, text):
    text = _ends(text)
    _write_all(1, b"%s %d\n" % (status.encode(), len(text)) + text)


def _empty(path):
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            _empty(entry.path)
            os.rmdir(entry.path)
        else:
            os.unlink(entry.path)


def _child(argv, env, limits, out, err):
    try:
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.closerange(3, 1 << 16)
        os.setsid()
        cpu, data, nproc, fsize, nofile = limits
        for name, value in (
            ("RLIMIT_CPU", (cpu, cpu + 1)),
            ("RLIMIT_DATA", (data, data)),
            ("RLIMIT_NPROC", (nproc, nproc)),
            ("RLIMIT_FSIZE", (fsize, fsize)),
            ("RLIMIT_NOFILE", (nofile, nofile)),
            ("RLIMIT_CORE", (0, 0)),
        ):
            resource.setrlimit(getattr(resource, name), value)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # as a fresh process has them
            signal.signal(sig, signal.SIG_DFL)
        os.execvpe(argv[0], argv, env)
    except BaseException:  # noqa: BLE001
        os._exit(127)


def _run(argv, limits, wall):
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": SANDBOX,
        "TMPDIR": SANDBOX,
        "LANG": "C.UTF-8",
        "PWD": SANDBOX,
        "SHLVL": "0",
    }
    out, err = os.memfd_create("stdout"), os.memfd_create("stderr")
    deadline = time.monotonic() + wall
    pid = os.fork()
    if pid == 0:
        _child(argv, env, limits, out, err)
    timed_out = False
    pidfd = os.pidfd_open(pid)
    try:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([pidfd], [], [], left)[0]:
            timed_out = True
            os.killpg(pid, signal.SIGKILL)
    finally:
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
    try:
        os.killpg(pid, signal.SIGKILL)  # anything the compiler left in its session
    except ProcessLookupError:
        pass
    text = b""
    for fd in (err, out):
        size = os.fstat(fd).st_size
        if size <= DETAIL:
            text += os.pread(fd, size, 0)
        else:
            text += os.pread(fd, HALF, 0) + CUT + os.pread(fd, HALF, size - HALF)
        os.close(fd)
    code = os.waitstatus_to_exitcode(status)
    if timed_out or code == -signal.SIGXCPU:
        return "RETRY", b"compilation hit its time limit"
    return ("OK" if code == 0 else "FAIL"), text


def serve():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    requests = _Requests()
    # Every step of a check (fork, memfds, pidfd, setrlimit, exec) once before READY: a kernel
    # without one of them means the per-job path, not failed checks.
    limits = (10, 1 << 30, 32, 1 << 20, 256)
    probe = [_run([cmd], limits, 10.0)[0] for cmd in ("true", "false")]
    if probe != ["OK", "FAIL"]:
        _answer("BROKEN", f"self-test: {probe}".encode())
        return
    _answer("READY", b"")
    while True:
        fields = requests.line().decode().split("\t")
        program = requests.exactly(int(fields[0]))
        wall, limits, source, argv = float(fields[1]), fields[2], fields[3], fields[4:]
        try:
            _empty(SANDBOX)
            fd = os.open(os.path.join(SANDBOX, source), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            _write_all(fd, program)
            os.close(fd)
            status, text = _run(argv, tuple(int(x) for x in limits.split(",")), wall)
        except OSError as exc:
            status, text = "RETRY", f"helper: {exc}".encode()
        _answer(status, text)


if __name__ == "__main__":
    serve()
