"""JavaScript syntax checks in one warm node process: `node --check` without a node per program.

`node --check program.js` reads the file, asks the ES module loader for its format and then
compiles it with the CommonJS loader's `wrapSafe` (or as a module when a package.json says
"type": "module") and never runs it. Node 20.19+ detects module syntax there: a file whose
first error is `import` / `export` / top-level `await` in CommonJS counts as a module and
passes without being parsed as one (so `export const a = ;` passes `node --check`). To give
exactly its verdicts, the server (node --expose-internals) calls those same internals
(internal/main/check_syntax.js's steps: defaultGetFormat, wrapSafe, ModuleWrap) on the text
decoded as readFileSync(.., 'utf-8') decodes it, with the file name the per-job check would
have. Compiling never runs the code. A SyntaxError is a FAIL with node's own message; any other
error (the parser running out of stack on a deep program, whose depth limit differs between a
fresh process and the server) is a RETRY: the per-job check decides. An out-of-memory kills the
server: that job, too, is checked the per-job way. Node versions whose internals differ fail
the self-test before READY, and the executor keeps `node --check` per program.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ppocoder_jax.rewards.execution import programs, sandbox
from ppocoder_jax.rewards.execution.check_server import Answer, CheckServer

SERVER_SOURCE = programs.source("js_check_server.js")


class JsServer(CheckServer):
    lang = "javascript"
    max_servers = 8  # ~40 MB each; a check takes well under a millisecond of node's time

    def argv(self) -> list[str]:
        probe = sandbox.program_cwd(self.home) + "/program.js"
        return ["node", "--expose-internals", "-e", SERVER_SOURCE, probe]

    def check(self, program: bytes, work: Path, link: bool, wall_s: float) -> Answer:
        """`node --check program.js` in `work` (link: the same check)."""
        filename = sandbox.program_cwd(work) + "/program.js"
        return self.request([filename], program, wall_s)


def unavailable_reason() -> str:
    return "" if shutil.which("node") else "node not installed"
