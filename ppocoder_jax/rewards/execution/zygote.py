"""The Python test server ("zygote"): the code that runs INSIDE the sandbox, not in the trainer.

`python_server.py` starts it with `python -I [-S] -c <this file's text> <runner body>` inside a
bubblewrap sandbox that keeps CAP_SYS_ADMIN, CAP_SETUID, CAP_SETGID, CAP_SETPCAP and
CAP_NET_ADMIN (root only). It is single-threaded, so it may fork: the trainer never does.
It preloads the unit-test runner (harness.RUNNER_BODY) once, which a fresh interpreter per job
paid each time, drops the capability bounding, inheritable and ambient sets (setpriv's
--bounding-set=-all --inh-caps=-all, once for all jobs: none of them is needed to keep the
effective set it works with), then serves one job per request:

    zygote ──clone(new mount, PID, net, IPC, UTS, cgroup namespaces)──> init (PID 1, root)
      init: private mounts; a fresh size-limited tmpfs at /sandbox, owned by the job's uid,
            holding the program and the runner (the only writable place; it covers the
            zygote's own /sandbox and vanishes with the namespace: nothing to clean up, no
            other job's files reachable); a fresh /proc for the new PID namespace (with
            /proc/sys, ... read-only as bwrap's --proc); a fresh /dev/pts; loopback up.
      init ──fork──> job (PID 2): stdin/stdout/stderr on the zygote's memfds (RLIMIT_FSIZE
            caps them as it capped the files), every other descriptor closed, the same rlimits
            as `prlimit`, a random unprivileged uid and gid with no groups (from root: the
            permitted, effective and ambient sets are cleared), an empty environment, cwd
            /sandbox; then it returns out of serve() and the module's last lines run the
            runner's main() and finish() as the interpreter runs a main program.
      init reaps until the job exits, then exits with its status (128+signal when killed, as
      bwrap reports): the kernel then kills whatever the job left in the namespace.

The zygote enforces the wall-time limit (it SIGKILLs init: the whole PID namespace goes) and
answers each job with a JSON line plus the captured stdout and stderr. The job cannot reach
the zygote: it sits in the parent PID namespace (invisible, so neither kill(-1) nor kill(pid)
can name it), runs as root while the job runs as another uid, and shares no descriptor with
the job. Standard library only (no ppocoder imports): it runs with the sandbox's interpreter.
"""

import ctypes
import fcntl
import gc
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import time
import types

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x08000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_CAP_AMBIENT = 1, 24, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
SYS_CLONE = {"x86_64": 56, "aarch64": 220}.get(os.uname().machine, -1)

SANDBOX = "/sandbox"  # the job's directory (and cwd), as with the per-job sandbox
RUNNER_FILE = "ppocoder_runner.py"  # sys.argv[0] of the job, as with the per-job interpreter
RUNNER_PATH = SANDBOX + "/" + RUNNER_FILE  # its __file__ (and code file name) there

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _check(ret, what):
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _mount(source, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    args = (enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))
    _check(_libc.mount(*args), f"mount {target}")


def _prctl(option, arg):
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl {option}")


def _clone(flags):
    """fork() into new namespaces. A raw syscall: glibc's fork() has no namespace flags. The
    child only mounts, forks (glibc's fork, which sets its thread id right) and waits: it never
    uses the stale cached thread id (raise(), pthread_kill) that a raw clone leaves it."""
    ret = _libc.syscall(SYS_CLONE, ctypes.c_ulong(flags | signal.SIGCHLD), 0, 0, 0, 0)
    return _check(ret, "clone")


def _clear_capability_sets():
    """Bounding, ambient and inheritable sets: what an exec could turn into privileges. The
    effective set the zygote works with stays (it is what the uid switch clears per job)."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last_cap = int(f.read())
    for cap in range(last_cap + 1):
        _prctl(PR_CAPBSET_DROP, cap)
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "ambient caps")
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = ctypes.create_string_buffer(24)
    _check(_libc.capget(header, data), "capget")
    words = list(struct.unpack("6I", data.raw))
    words[2] = words[5] = 0  # inheritable, both halves
    _check(_libc.capset(header, struct.pack("6I", *words)), "capset")


def _loopback_up():
    """bwrap brings `lo` up in its new network namespace: programs may talk to themselves."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def _init_mounts(job, program):
    """In the job's fresh mount namespace: its own /sandbox, a fresh /proc and /dev/pts."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing propagates back to the zygote
    uid, lim = job["uid"], job["limits"]
    opts = f"size={lim['disk']},nr_inodes={lim['inodes']},mode=0755,uid={uid},gid={uid}"
    _mount("tmpfs", SANDBOX, "tmpfs", MS_NOSUID | MS_NODEV, opts)
    for name, data in ((job["source"], program), (RUNNER_FILE, job["runner"])):
        fd = os.open(SANDBOX + "/" + name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    ro = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    for sub in ("sys", "sysrq-trigger", "irq", "bus"):  # as bwrap's --proc
        path = "/proc/" + sub
        if os.path.exists(path):
            _mount(path, path, None, MS_BIND | MS_REC)
            _mount(None, path, None, ro)
    if os.path.isdir("/dev/pts"):  # pseudo-terminals of other jobs stay out of sight
        opts = "newinstance,ptmxmode=0666,mode=620"
        _mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, opts)


def _job_process(job, fds, marker):
    """PID 2 of the job's namespace: confine this process, then return to run the job."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    os.closerange(3, marker)
    os.closerange(marker + 1, 1 << 16)
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")  # memory exhaustion kills the job first, not the zygote or trainer
    lim = job["limits"]
    for name, value in (
        ("RLIMIT_CPU", (lim["cpu"], lim["cpu"] + 1)),
        ("RLIMIT_DATA", (lim["data"], lim["data"])),
        ("RLIMIT_NPROC", (lim["nproc"], lim["nproc"])),
        ("RLIMIT_FSIZE", (lim["fsize"], lim["fsize"])),
        ("RLIMIT_NOFILE", (lim["nofile"], lim["nofile"])),
        ("RLIMIT_CORE", (0, 0)),
    ):
        resource.setrlimit(getattr(resource, name), value)
    uid = job["uid"]
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # from root: permitted, effective and ambient sets cleared
    os.chdir(SANDBOX)
    os.environ.clear()
    os.environ.update(job["env"])
    # The interpreter's own standard streams, as a fresh interpreter would open them.
    std = [(s.encoding, s.errors) for s in (sys.__stdin__, sys.__stdout__, sys.__stderr__)]
    sys.stdin = sys.__stdin__ = open(0, encoding=std[0][0], errors=std[0][1], closefd=False)
    sys.stdout = sys.__stdout__ = open(1, "w", encoding=std[1][0], errors=std[1][1], closefd=False)
    sys.stderr = sys.__stderr__ = open(
        2, "w", encoding=std[2][0], errors=std[2][1], closefd=False, buffering=1
    )
    sys.argv = [RUNNER_FILE]
    os.write(marker, b"S")  # confined: from here on, anything that goes wrong is the program's
    os.close(marker)


def _job_init(job, program, fds, marker):
    """PID 1 of the job's namespace (root, never returns but in the job process)."""
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the zygote died: so does the job
        os.setsid()  # as bwrap --new-session (its init's session): no terminal to write into
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 0)  # the request/answer pipes stay with the zygote
        os.dup2(null, 1)
        _init_mounts(job, program)
        _loopback_up()
        pid = os.fork()
    except BaseException as err:  # noqa: BLE001 (reported, never scored)
        os.write(marker, f"Einit: {type(err).__name__}: {err}".encode()[:500])
        os._exit(125)
    if pid == 0:
        try:
            _job_process(job, fds, marker)
        except BaseException as err:  # noqa: BLE001
            os.write(marker, f"Ejob: {type(err).__name__}: {err}".encode()[:500])
            os._exit(125)
        return  # up to serve()'s caller: the runner runs as the main program
    os.closerange(3, 1 << 16)
    while True:  # as PID 1: reap orphans too, until the job itself exits
        try:
            child, status = os.wait()
        except ChildProcessError:
            os._exit(125)
        if child == pid:
            break
    code = os.waitstatus_to_exitcode(status)
    os._exit(128 - code if code < 0 else code)


def _memfd(name, data=b""):
    fd = os.memfd_create(name)
    if data:
        _write_all(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _run(job, program, stdin, flags):
    """One job, from the zygote's side: (answer, stdout, stderr), or None in the job process."""
    fds = [_memfd("stdin", stdin), _memfd("stdout"), _memfd("stderr")]
    rfd, wfd = os.pipe()
    start = time.monotonic()
    deadline = start + float(job["wall"])
    pid = _clone(flags)
    if pid == 0:
        os.close(rfd)
        _job_init(job, program, fds, wfd)
        return None  # the job process
    os.close(wfd)
    marker, timed_out, status = b"", False, 0
    try:
        pidfd = os.pidfd_open(pid)
        try:
            while True:  # the marker pipe closes once the job is confined (or failed)
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([rfd], [], [], left)[0]:
                    timed_out = True
                    break
                chunk = os.read(rfd, 4096)
                if not chunk:
                    break
                marker += chunk
            if not timed_out:
                left = deadline - time.monotonic()
                timed_out = left <= 0 or not select.select([pidfd], [], [], left)[0]
            if timed_out:
                # SIGKILL to the namespace's init: the kernel kills every process in it.
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        finally:
            os.close(pidfd)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        raise
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(rfd)
    cap = int(job["limits"]["fsize"]) + 1
    out, err = (os.pread(fd, cap, 0) for fd in fds[1:])
    for fd in fds:
        os.close(fd)
    started = marker[:1] == b"S"
    answer = {
        "rc": None if timed_out else os.waitstatus_to_exitcode(status),
        "timed_out": timed_out,
        "started": started,
        "detail": ""
        if started
        else marker[1:].decode(errors="replace") or "the job process ended before it was confined",
        "duration": time.monotonic() - start,
        "stdout": len(out),
        "stderr": len(err),
    }
    return answer, out, err


class _Requests:
    """Requests on fd 0: a JSON line, then the program and stdin bytes it announces."""

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
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _probe_job(runner_file):
    uid = (1 << 20) + int.from_bytes(os.urandom(4), "little") % ((1 << 30) - (1 << 20))
    limits = {"cpu": 10, "data": 1 << 30, "nproc": 16, "fsize": 1 << 20, "nofile": 64}
    limits.update(disk=1 << 20, inodes=64)
    return {"source": "probe.py", "uid": uid, "wall": 30, "env": {}, "limits": limits,
            "runner": runner_file}  # fmt: skip


def serve():
    """Answer jobs until stdin closes; returns only inside a job process (see module doc)."""
    runner = types.ModuleType("__main__")
    runner.__dict__.update(__builtins__=__builtins__, __file__=RUNNER_PATH, __cached__=None)
    runner_body = sys.argv[1]
    exec(compile(runner_body, RUNNER_PATH, "exec", dont_inherit=True), runner.__dict__)
    runner_file = (runner_body + "main()\n").encode()  # harness.RUNNER_SOURCE, as per job
    _clear_capability_sets()
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    try:  # as bwrap's --unshare-cgroup-try
        pid = _clone(flags | CLONE_NEWCGROUP)
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        flags |= CLONE_NEWCGROUP
    except OSError:
        pass
    os.chdir("/")
    # Everything allocated so far is shared with every job: the jobs' garbage collections
    # skip it (and so do not copy the pages it lives on).
    gc.collect()
    gc.freeze()
    # One empty job through every step before saying READY: a kernel without some feature
    # (pidfd, a namespace, tmpfs options) fails here, and the executor keeps one interpreter
    # per job, instead of failing every job as INFRA_ERROR.
    try:
        done = _run(_probe_job(runner_file), b"", b"", flags)
    except Exception as err:  # noqa: BLE001
        done = ({"started": False, "detail": f"{type(err).__name__}: {err}"}, b"", b"")
    if done is None:
        os._exit(0)  # the probe's job process
    if not (done[0]["started"] and done[0]["rc"] == 0):
        os.write(1, f"FAILED {done[0]['detail'] or done[0]}"[:500].encode() + b"\n")
        os._exit(1)
    requests = _Requests()
    os.write(1, b"READY\n")
    while True:
        try:
            job = json.loads(requests.line())
            program = requests.exactly(job["program"])
            stdin = requests.exactly(job["stdin"])
            job["runner"] = runner_file
            done = _run(job, program, stdin, flags)
        except Exception as err:  # noqa: BLE001 (our failure: the trainer scores INFRA_ERROR)
            done = ({"error": f"{type(err).__name__}: {err}"}, b"", b"")
        if done is None:  # the job process, confined: run the job as the main program
            sys.modules["__main__"] = runner
            return runner
        answer, out, err = done
        _write_all(1, json.dumps(answer).encode() + b"\n" + out + err)


def finish(exc):
    """What the interpreter does after its main program (`exc`: what escaped it, or None):
    the exit status of an uncaught exception or SystemExit, thread shutdown, atexit, a last
    garbage collection, flushing; minus tearing down the heap that the job shares
    copy-on-write with the zygote: that touched every page and cost more than the rest of the
    job together (~8 ms)."""
    code = 0
    if isinstance(exc, SystemExit):
        code = _exit_status(exc.code)
    elif isinstance(exc, KeyboardInterrupt):
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # as Python does: die by SIGINT
        os.kill(os.getpid(), signal.SIGINT)
    elif exc is not None:
        _print_exception(exc)
        code = 1
    for step in (_thread_shutdown, _atexit, gc.collect):
        try:
            step()
        except BaseException as err:  # noqa: BLE001 (as the interpreter: reported, not fatal)
            _print_exception(err)
    for stream, status in ((sys.stdout, 120), (sys.stderr, None)):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            code = status or code
    os._exit(code & 0xFF)


def _print_exception(exc):
    try:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    except BaseException:  # noqa: BLE001 (stderr closed by the program, ...)
        pass


def _exit_status(value):
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    try:
        sys.stderr.write(str(value) + "\n")
    except BaseException:  # noqa: BLE001
        pass
    return 1


def _thread_shutdown():
    if "threading" in sys.modules:
        sys.modules["threading"]._shutdown()


def _atexit():
    import atexit  # noqa: PLC0415 (built in: no import cost)

    atexit._run_exitfuncs()


if __name__ == "__main__":
    # The job process gets here. main() is called from module level, as the per-job runner
    # file calls it: the program runs at the same stack depth (recursion limit) there and here.
    _runner = serve()
    try:
        _runner.main()
    except BaseException as _exc:  # noqa: BLE001
        finish(_exc)
    finish(None)
