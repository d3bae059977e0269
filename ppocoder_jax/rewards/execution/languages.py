"""Per-language toolchain commands: file names, compile-only / link commands, run commands.

"Compiles" by default means compiles to an object, class or library without linking a main, so
that methods and snippets can be checked; `link=True` asks for a full program. Success is judged
by the compiler's exit code: warnings are not failures (the authors' "stderr empty" rule was).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field

from ppocoder_jax.languages import ALIASES, LANGUAGES, canonical_language  # noqa: F401


@dataclass(frozen=True)
class Language:
    name: str
    source_name: str  # default file name of the program in the job directory
    compile_cmd: tuple[str, ...] | None  # compile-only (no main needed); None: in-process
    link_cmd: tuple[str, ...] | None  # full program build (used for `link` and for tests)
    run_cmd: tuple[str, ...]
    tools: tuple[str, ...]  # executables that must exist
    compile_memory_mb: int = 2048
    run_memory_mb: int = 1024
    nproc: int = 16  # counts threads too: JVM, Mono and Node need more
    memory_markers: tuple[str, ...] = field(default=())
    # The persistent server its compile checks try first (checkers.py): "check" (a check
    # server module, check_server.py), "javac" (java_server.py), "" (one process per program).
    compile_server: str = ""


_JAVA_RUN_FLAGS = (
    "-Xmx512m",
    "-Xss64m",
    "-XX:-UsePerfData",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
)
CPP_FLAGS = ("-std=gnu++17", "-fdiagnostics-color=never")
C_FLAGS = ("-std=gnu11", "-fdiagnostics-color=never")

SPECS: dict[str, Language] = {
    "python": Language(
        "python",
        "program.py",
        None,
        None,
        ("{python}", "-I", "-S", "{src}"),  # the Executor runs its own python_argv
        (),
        memory_markers=("MemoryError",),
    ),
    "cpp": Language(
        "cpp",
        "program.cpp",
        ("g++", *CPP_FLAGS, "-c", "{src}", "-o", "program.o"),
        ("g++", *CPP_FLAGS, "-O2", "{src}", "-o", "program"),
        ("./program",),
        ("g++",),
        memory_markers=("std::bad_alloc",),
    ),
    "c": Language(
        "c",
        "program.c",
        ("gcc", *C_FLAGS, "-c", "{src}", "-o", "program.o"),
        ("gcc", *C_FLAGS, "-O2", "{src}", "-o", "program", "-lm"),
        ("./program",),
        ("gcc",),
        compile_server="check",
    ),
    "java": Language(
        "java",
        "Main.java",
        ("javac", "-proc:none", "-encoding", "UTF-8", "-nowarn", "-d", ".", "{src}"),
        ("javac", "-proc:none", "-encoding", "UTF-8", "-nowarn", "-d", ".", "{src}"),
        ("java", *_JAVA_RUN_FLAGS, "-cp", ".", "{main}"),
        ("javac", "java"),
        compile_memory_mb=3072,
        run_memory_mb=3072,
        nproc=96,
        memory_markers=("java.lang.OutOfMemoryError",),
        compile_server="javac",
    ),
    "csharp": Language(
        "csharp",
        "program.cs",
        ("mcs", "-target:library", "-out:program.dll", "{src}"),
        ("mcs", "-out:program.exe", "{src}"),
        ("mono", "program.exe"),
        ("mcs", "mono"),
        run_memory_mb=2048,
        nproc=64,
        memory_markers=("System.OutOfMemoryException",),
        compile_server="check",
    ),
    "php": Language(
        "php",
        "program.php",
        ("php", "-n", "-l", "{src}"),
        ("php", "-n", "-l", "{src}"),
        ("php", "-n", "-d", "memory_limit=512M", "{src}"),
        ("php",),
        memory_markers=("Allowed memory size", "Out of memory"),
        compile_server="check",
    ),
    "javascript": Language(
        "javascript",
        "program.js",
        ("node", "--check", "{src}"),
        ("node", "--check", "{src}"),
        ("node", "--max-old-space-size=512", "--stack-size=8000", "{src}"),
        ("node",),
        run_memory_mb=2048,
        nproc=64,
        memory_markers=("heap out of memory", "Allocation failed"),
        compile_server="check",
    ),
}


def missing_tools(spec: Language) -> list[str]:
    return [t for t in spec.tools if shutil.which(t) is None]


def fill(cmd: tuple[str, ...], **values: str) -> list[str]:
    return [part.format(**values) if "{" in part else part for part in cmd]


# --- Java: a public top-level class must live in a file of its own name ---------------------
# Leading blanks stop at a newline: "^\s*" rescanned every following blank line from each line
# start (quadratic; a few MB of newlines held a worker for an hour). Same matches: a later line
# start matches on its own.
_PUBLIC_TYPE = re.compile(
    r"^[^\S\n]*public\s+(?:(?:final|abstract|sealed|strictfp|non-sealed)\s+)*"
    r"(?:class|interface|enum|record|@interface)\s+([A-Za-z_$][\w$]*)",
    re.MULTILINE,
)
_TYPE_DECL = re.compile(r"\b(?:class|interface|enum|record)\s+([A-Za-z_$][\w$]*)")
_JAVA_MAIN = re.compile(r"\bstatic\s+(?:final\s+)?void\s+main\s*\(")
# Unterminated comments / strings are consumed in one match and put back unchanged: retrying
# the lazy scan from every later "/*" (or every escaped quote of a long line) was quadratic.
# The result is the same as with the plain patterns (nothing inside them could start a match).
_LINE_COMMENT = re.compile(r"//[^\n]*")
_COMMENTS = re.compile(r"//[^\n]*|/\*(?:.*?\*/|.*)", re.DOTALL)
_STRINGS = re.compile(r'"(?:\\.|[^"\\\n])*+("?)')


def _comment(m: re.Match) -> str:
    text = m.group(0)
    if text.startswith("//") or (len(text) >= 4 and text.endswith("*/")):
        return " "
    return "/*" + _LINE_COMMENT.sub(" ", text[2:])  # an unterminated /*: not a comment


def _strip_java_noise(source: str) -> str:
    strings = _STRINGS.sub(lambda m: '""' if m.group(1) else m.group(0), source)
    return _COMMENTS.sub(_comment, strings)


def java_file_name(source: str) -> str:
    """Name the file after the first public top-level type (javac requires it), else Main."""
    match = _PUBLIC_TYPE.search(_strip_java_noise(source))
    # A name too long for a file name (255 bytes) could not be written: an INFRA_ERROR that
    # masked a bad program. Main.java gets javac's own error for the public class instead.
    if match is None or len(match.group(1).encode("utf-8")) > 200:
        return "Main.java"
    return f"{match.group(1)}.java"


_JAVA_TOKENS = re.compile(
    r"\b(?:class|interface|enum|record)\s+([A-Za-z_$][\w$]*)|([{}])|\bstatic\s+(?:final\s+)?void\s+main\s*\("
)
_CHARS = re.compile(r"'(?:\\.|[^'\\\n])'")


def java_main_class(source: str) -> str | None:
    """The type whose body declares `static void main(` (tracks braces, skips nested types)."""
    clean = _CHARS.sub("' '", _strip_java_noise(source))
    stack: list[str | None] = []
    pending: str | None = None
    for token in _JAVA_TOKENS.finditer(clean):
        name, brace = token.group(1), token.group(2)
        if name:
            pending = name
        elif brace == "{":
            stack.append(pending)
            pending = None
        elif brace == "}":
            if stack:
                stack.pop()
        else:
            owners = [s for s in stack if s]
            return owners[-1] if owners else None
    return None
