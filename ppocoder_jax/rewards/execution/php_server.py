"""PHP lint in one warm php process: `php -n -l` without a php per program.

`php -l` compiles the file (zend_compile_file, as an include) and never runs it. Compiling does
more than parsing: it declares the file's functions and early-binds its classes into the
process's tables, so it reports "Cannot redeclare strlen()", an incompatible override of a
built-in or earlier class, a duplicate parameter and the like (token_get_all(TOKEN_PARSE) and
opcache_compile_file miss those). One process cannot undo that, so the server (`php -n`, no
ini file, as the per-job check) forks a child per program (it is single-threaded: forking is
its business, the trainer never forks). The child compiles the program with `include` through
a stream wrapper that serves the program's bytes, in the same compile mode as `php -l`; the
wrapper's stream_close, called once compiling has succeeded and before anything runs, throws,
so the include never executes (the compiler's handler drops the compiled file when an
exception is pending). A ParseError or CompileError, or a fatal compile error (seen by a
shutdown function), is a FAIL with PHP's message; "Allowed memory size" (the child starts with
the server's few hundred KB in use, a fresh php -l does not) and a child that dies (its
alarm(2) at the wall limit, a crash) are RETRY: the per-job `php -l` decides. The server
declares no named function, class or constant a program could collide with (an anonymous
class, closures). The child closes its stdout, the server's answer pipe, first thing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ppocoder_jax.rewards.execution import programs
from ppocoder_jax.rewards.execution.check_server import Answer, CheckServer

# Run with `php -n -r`; argv[1]: the probe file name.
SERVER_SOURCE = programs.source("php_check_server.php")


class PhpServer(CheckServer):
    lang = "php"
    max_servers = 8  # ~19 MB each; a check (fork, compile, exit) takes a few milliseconds

    def argv(self) -> list[str]:
        return ["php", "-n", "-r", SERVER_SOURCE, "program.php"]

    def check(self, program: bytes, work: Path, link: bool, wall_s: float) -> Answer:
        """`php -n -l program.php` (link: the same check)."""
        return self.request(["program.php"], program, wall_s)


def unavailable_reason() -> str:
    return "" if shutil.which("php") else "php not installed"
