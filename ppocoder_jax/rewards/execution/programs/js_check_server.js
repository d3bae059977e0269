
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
