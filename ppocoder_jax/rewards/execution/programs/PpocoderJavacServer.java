
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.*;
import javax.tools.*;

public class PpocoderJavacServer {
    public static void main(String[] args) throws Exception {
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        StandardJavaFileManager files = javac.getStandardFileManager(null, null, StandardCharsets.UTF_8);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        System.setOut(new PrintStream(OutputStream.nullOutputStream()));
        out.println("READY");
        String line;
        while ((line = in.readLine()) != null) {
            String[] parts = line.split("\t");
            StringWriter diagnostics = new StringWriter();
            boolean ok;
            try {
                File dir = new File(parts[0]);
                List<String> options = Arrays.asList("-d", dir.getPath(), "-proc:none", "-nowarn",
                    "-encoding", "UTF-8", "-implicit:none", "-sourcepath", dir.getPath(), "-cp", dir.getPath());
                Iterable<? extends JavaFileObject> units = files.getJavaFileObjects(new File(dir, parts[1]));
                ok = javac.getTask(diagnostics, files, null, options, null, units).call();
            } catch (Throwable t) {
                ok = false;
                diagnostics.write("compiler crashed: " + t);
            }
            String text = Base64.getEncoder().encodeToString(diagnostics.toString().getBytes(StandardCharsets.UTF_8));
            out.println((ok ? "OK " : "FAIL ") + text);
        }
    }
}
