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

from ppocoder_jax.rewards.execution import sandbox
from ppocoder_jax.rewards.execution.check_server import Answer, CheckServer

SERVER_SOURCE = r"""
'use strict';
const fs = require('fs');
const { wrapSafe } = require('internal/modules/cjs/loader');
const { defaultGetFormat } = require('internal/modules/esm/get_format');
const { pathToFileURL } = require('internal/url');
const { decorateErrorStack } = require('internal/util');
const DETAIL = 16384;
let pending = Buffer.alloc(0);

function pause() { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1); }
function readInto(target, offset) {
  for (;;) {
    try { return fs.readSync(0, target, offset, target.length - offset, null); }
    catch (e) { if (e.code === 'EAGAIN') { pause(); continue; } if (e.code === 'EOF') return 0; throw e; }
  }
}
function line() {
  for (;;) {
    const i = pending.indexOf(10);
    if (i >= 0) { const s = pending.subarray(0, i).toString('utf8'); pending = pending.subarray(i + 1); return s; }
    const chunk = Buffer.allocUnsafe(1 << 16);
    const n = readInto(chunk, 0);
    if (n === 0) process.exit(0);
    pending = Buffer.concat([pending, chunk.subarray(0, n)]);
  }
}
function exactly(size) {
  const data = Buffer.allocUnsafe(size);
  let got = Math.min(size, pending.length);
  pending.copy(data, 0, 0, got);
  pending = pending.subarray(got);
  while (got < size) {
    const n = readInto(data, got);
    if (n === 0) process.exit(0);
    got += n;
  }
  return data;
}
function answer(status, text) {
  let body = Buffer.from(text, 'utf8');
  if (body.length > DETAIL) body = body.subarray(body.length - DETAIL);
  const out = Buffer.concat([Buffer.from(`${status} ${body.length}\n`, 'latin1'), body]);
  let off = 0;
  while (off < out.length) {
    try { off += fs.writeSync(1, out, off); }
    catch (e) { if (e.code !== 'EAGAIN') throw e; pause(); }
  }
}
// internal/main/check_syntax.js checkSyntax(source, filename), for a file name
async function check(source, filename) {
  const format = await defaultGetFormat(new URL(pathToFileURL(filename).href));
  if (format === 'module') {
    const { internalBinding } = require('internal/test/binding');
    const { ModuleWrap } = internalBinding('module_wrap');
    new ModuleWrap(filename, undefined, source, 0, 0);
    return;
  }
  wrapSafe(filename, source, undefined, format);
}
async function verdict(data, filename) {
  try {
    await check(data.toString('utf8'), filename);
    return ['OK', ''];
  } catch (err) {
    if (!(err instanceof SyntaxError)) return ['RETRY', String(err && err.stack)];
    try { decorateErrorStack(err); } catch {}
    return ['FAIL', String(err.stack)];
  }
}
(async () => {
  const probe = process.argv[1];
  const good = await verdict(Buffer.from('const a = 1;\n'), probe);
  const bad = await verdict(Buffer.from('const a = ;\n'), probe);
  if (good[0] !== 'OK' || bad[0] !== 'FAIL') {
    answer('BROKEN', `self-test: ${good} / ${bad}`);
    process.exit(1);
  }
  answer('READY', process.version);
  for (;;) {
    const fields = line().split('\t');
    const data = exactly(Number(fields[0]));
    const [status, text] = await verdict(data, fields[2]);
    answer(status, text);
  }
})().catch((err) => { process.stderr.write(String(err && err.stack) + '\n'); process.exit(70); });
"""


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
