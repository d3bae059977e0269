
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
