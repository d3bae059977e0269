"""C# compile checks in one warm mono process: `mcs` without a mono start and JIT per program.

`mcs` is `mono mcs.exe`: most of a check is the runtime starting and JIT-compiling the
compiler. mcs has no server mode, but its driver can run many compilations in one process: the
server (a few lines of C#, built once per machine with mcs into a cache, trusted code) loads the
same mcs.exe and does what its `Driver.Main` does for each request - CommandLineParser over the
same arguments as the per-job command (`-target:library -out:program.dll program.cs`, or
`-out:program.exe` to link), CompilerContext with a ConsoleReportPrinter, Driver.Compile, then
"compiled" iff it returned true with no errors - except the final Environment.Exit. The one
piece of compiler state that outlives a compilation, the source file list behind `Location`,
is reset first (Location.Reset, what mcs's own evaluator does); the server restarts every
`max_checks` compilations (each leaves its dynamic assembly behind). It runs in its own
directory, which is the job directory (/sandbox) of one check at a time: the program is written
there as program.cs, as for the per-job check, and the directory is emptied before each check;
to link, the host moves program.exe into the job's directory afterwards. An exception out of
the compiler, "Internal compiler error" or an out-of-memory / stack message is a RETRY (and the
server exits for a fresh one): the per-job mcs decides; a stack overflow kills the server, and
that job, too, is checked per job.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from ppocoder_jax.rewards.execution import pch, sandbox
from ppocoder_jax.rewards.execution.check_server import (
    Answer,
    CheckServer,
    ServerFailed,
    move_output,
)
from ppocoder_jax.rewards.execution.languages import SPECS, fill

SERVER_NAME = "PpocoderMcsServer"
SERVER_SOURCE = r"""
using System;
using System.IO;
using System.Reflection;
using System.Text;

public static class PpocoderMcsServer {
    const BindingFlags I = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance;
    const BindingFlags S = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static;
    static readonly Stream input = Console.OpenStandardInput();
    static readonly Stream output = Console.OpenStandardOutput();
    static readonly byte[] buf = new byte[1 << 16];
    static int start, end;
    static ConstructorInfo parserCtor, ctxCtor, printerCtor, driverCtor;
    static MethodInfo parse, compile, reset;
    static PropertyInfo stopped, report, errors, warnings;
    static FieldInfo inEmacs;

    static void Fill() {
        if (start < end) return;
        start = 0;
        end = input.Read(buf, 0, buf.Length);
        if (end <= 0) Environment.Exit(0);
    }
    static string Line() {
        var line = new MemoryStream();
        for (;;) {
            Fill();
            int i = Array.IndexOf(buf, (byte) '\n', start, end - start);
            if (i >= 0) { line.Write(buf, start, i - start); start = i + 1; return Encoding.UTF8.GetString(line.ToArray()); }
            line.Write(buf, start, end - start);
            start = end;
        }
    }
    static byte[] Exactly(int size) {
        var data = new byte[size];
        for (int got = 0; got < size;) {
            Fill();
            int n = Math.Min(size - got, end - start);
            Buffer.BlockCopy(buf, start, data, got, n);
            start += n; got += n;
        }
        return data;
    }
    static void Answer(string status, string text) {
        var body = Encoding.UTF8.GetBytes(text);
        if (body.Length > 16384) {  // its beginning (the first error) and its end
            var cut = Encoding.ASCII.GetBytes("\n...\n");
            var ends = new byte[8192 + cut.Length + 8192];
            Buffer.BlockCopy(body, 0, ends, 0, 8192);
            Buffer.BlockCopy(cut, 0, ends, 8192, cut.Length);
            Buffer.BlockCopy(body, body.Length - 8192, ends, 8192 + cut.Length, 8192);
            body = ends;
        }
        var head = Encoding.ASCII.GetBytes(status + " " + body.Length + "\n");
        output.Write(head, 0, head.Length);
        output.Write(body, 0, body.Length);
        output.Flush();
    }
    static void Empty(string dir) {
        foreach (var d in Directory.GetDirectories(dir)) Directory.Delete(d, true);
        foreach (var f in Directory.GetFiles(dir)) File.Delete(f);
    }

    // mcs's Driver.Main, without its Environment.Exit: (compiled?, stderr + stdout)
    static bool Compile(string[] args, out string text) {
        TextWriter realOut = Console.Out, realErr = Console.Error;
        var o = new StringWriter();
        var e = new StringWriter();
        Console.SetOut(o);
        Console.SetError(e);
        try {
            reset.Invoke(null, null);
            inEmacs.SetValue(null, false);
            var cmd = parserCtor.Invoke(new object[] { Console.Out });
            var settings = parse.Invoke(cmd, new object[] { args });
            if (settings == null) return false;
            if ((bool) stopped.GetValue(cmd, null)) return true;
            var driver = driverCtor.Invoke(new object[] { ctxCtor.Invoke(new object[] { settings, printerCtor.Invoke(null) }) });
            bool ok = (bool) compile.Invoke(driver, null);
            var rep = report.GetValue(driver, null);
            int nerr = (int) errors.GetValue(rep, null), nwarn = (int) warnings.GetValue(rep, null);
            if (ok && nerr == 0) {
                if (nwarn > 0) Console.WriteLine("Compilation succeeded - {0} warning(s)", nwarn);
                return true;
            }
            Console.WriteLine("Compilation failed: {0} error(s), {1} warnings", nerr, nwarn);
            return false;
        } finally {
            Console.SetOut(realOut);
            Console.SetError(realErr);
            text = e.ToString() + o.ToString();
        }
    }

    static string Check(string[] args, string file, byte[] program, out bool exit) {
        exit = false;
        Empty(Directory.GetCurrentDirectory());
        File.WriteAllBytes(file, program);
        string text;
        bool ok;
        try {
            ok = Compile(args, out text);
        } catch (Exception err) {
            exit = true;
            return "RETRY\n" + err;
        }
        foreach (var word in new[] { "OutOfMemoryException", "StackOverflowException", "InsufficientExecutionStack", "nternal compiler error" }) {
            if (text.Contains(word)) { exit = true; return "RETRY\n" + text; }
        }
        return (ok ? "OK\n" : "FAIL\n") + text;
    }

    public static int Main(string[] argv) {
        var mcs = Assembly.LoadFrom(argv[0]);
        Func<string, Type> T = name => mcs.GetType("Mono.CSharp." + name, true);
        parserCtor = T("CommandLineParser").GetConstructor(I, null, new[] { typeof(TextWriter) }, null);
        parse = T("CommandLineParser").GetMethod("ParseArguments", I, null, new[] { typeof(string[]) }, null);
        stopped = T("CommandLineParser").GetProperty("HasBeenStopped", I);
        ctxCtor = T("CompilerContext").GetConstructor(I, null, new[] { T("CompilerSettings"), T("ReportPrinter") }, null);
        printerCtor = T("ConsoleReportPrinter").GetConstructor(I, null, Type.EmptyTypes, null);
        driverCtor = T("Driver").GetConstructor(I, null, new[] { T("CompilerContext") }, null);
        compile = T("Driver").GetMethod("Compile", I, null, Type.EmptyTypes, null);
        report = T("Driver").GetProperty("Report", I);
        errors = T("Report").GetProperty("Errors", I);
        warnings = T("Report").GetProperty("Warnings", I);
        reset = T("Location").GetMethod("Reset", S, null, Type.EmptyTypes, null);
        inEmacs = T("Location").GetField("InEmacs", S);
        var lib = new[] { "-target:library", "-out:program.dll", "program.cs" };
        bool exit;
        string good = Check(lib, "program.cs", Encoding.UTF8.GetBytes("class A { int F() { return 1; } }\n"), out exit);
        string bad = Check(lib, "program.cs", Encoding.UTF8.GetBytes("class A { int F() { return 1 } }\n"), out exit);
        Empty(Directory.GetCurrentDirectory());
        if (!good.StartsWith("OK\n") || !bad.StartsWith("FAIL\n")) {
            Answer("BROKEN", "self-test: " + good + " / " + bad);
            return 1;
        }
        Answer("READY", "");
        for (;;) {
            var fields = Line().Split('\t');
            var program = Exactly(int.Parse(fields[0]));
            var args = new string[fields.Length - 3];
            Array.Copy(fields, 3, args, 0, args.Length);
            string reply = Check(args, fields[2], program, out exit);
            int nl = reply.IndexOf('\n');
            Answer(reply.Substring(0, nl), reply.Substring(nl + 1));
            if (exit) return 3;
        }
    }
}
"""


class CsharpServer(CheckServer):
    lang = "csharp"
    max_checks = 500

    def argv(self) -> list[str]:
        exe = str(_server_build() / f"{SERVER_NAME}.exe")
        return ["mono", exe, str(mcs_exe())]

    def binds(self) -> list[str]:
        return [str(_server_build())]

    def check(self, program: bytes, work: Path, link: bool, wall_s: float) -> Answer:
        """The per-job `mcs` command on program.cs; when linking, program.exe is moved into
        `work` for the tests."""
        spec = SPECS["csharp"]
        cmd = fill(spec.link_cmd if link else spec.compile_cmd, src=spec.source_name)
        with self._lock:
            answer = self.request([spec.source_name, *cmd[1:]], program, wall_s)
            if answer.status == "OK" and link:
                move_output(self.home / "program.exe", work / "program.exe")
            return answer


_MCS_EXE = re.compile(rb"(/\S+/mcs\.exe)\b")


def mcs_exe() -> Path:
    """The mcs.exe that the `mcs` script runs (`exec mono ... /usr/lib/mono/4.5/mcs.exe`)."""
    script = shutil.which("mcs") or "mcs"
    with open(script, "rb") as f:
        match = _MCS_EXE.search(f.read(4096))
    if match is None:
        raise ServerFailed(f"cannot find mcs.exe in {script}")
    return Path(match.group(1).decode())


_build_lock = threading.Lock()


def _server_build() -> Path:
    """Build the server once per machine (trusted code) into a shared cache."""
    mcs = os.path.realpath(shutil.which("mcs") or "mcs")
    exe = mcs_exe()
    stamp = f"{SERVER_SOURCE}|{mcs}|{exe}|{os.stat(exe).st_mtime_ns}".encode()
    out_dir = pch.cache_root().parent / "csharp-server" / hashlib.sha256(stamp).hexdigest()[:16]
    target = out_dir / f"{SERVER_NAME}.exe"
    with _build_lock:
        if target.exists():
            return out_dir
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="build-", dir=out_dir.parent))
        try:
            (tmp / f"{SERVER_NAME}.cs").write_text(SERVER_SOURCE)
            proc = subprocess.run(
                ["mcs", "-out:" + str(tmp / f"{SERVER_NAME}.exe"), str(tmp / f"{SERVER_NAME}.cs")],
                capture_output=True,
                timeout=300,
                env={"PATH": sandbox._PATH, "LANG": "C.UTF-8"},
            )
            if proc.returncode != 0:
                raise ServerFailed("cannot build the mcs server: " + proc.stdout.decode()[-300:])
            for d in (out_dir.parent.parent, out_dir.parent, tmp):
                if os.geteuid() == 0:  # readable by the sandbox uids; only root writes
                    os.chmod(d, 0o755)
            os.chmod(tmp / f"{SERVER_NAME}.exe", 0o644)
            try:
                os.rename(tmp, out_dir)  # atomic; a concurrent builder may have won
            except OSError:
                if not target.exists():
                    raise
        except (OSError, subprocess.SubprocessError) as err:
            raise ServerFailed(f"cannot build the mcs server: {err}") from err
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def unavailable_reason() -> str:
    if not (shutil.which("mcs") and shutil.which("mono")):
        return "mcs or mono not installed"
    if reason := sandbox.server_home_reason():
        return reason  # the server empties its directory before each check
    try:
        mcs_exe()
    except (OSError, ServerFailed) as err:
        return str(err)
    return ""
