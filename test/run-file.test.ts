import t from 'tap';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { doneOf } from './helpers/client.js';
import { clientFor, serverFor } from './helpers/util.js';
import { workspaceFile } from './helpers/server.js';

t.test('run-file runs workspace files and nothing outside the workspace', async (t) => {
  const server = await serverFor(t);
  const ws = path.dirname(workspaceFile(server, 'x'));
  const outside = path.join(path.dirname(ws), `${path.basename(ws)}-outside.js`);
  writeFileSync(outside, 'console.log("SECRET OUTSIDE")');
  t.teardown(() => rmSync(outside, { force: true }));
  writeFileSync(path.join(ws, 'hello.js'), 'console.log("hello from file"); var fromFile = 7;');
  mkdirSync(path.join(ws, 'sub'));
  writeFileSync(path.join(ws, 'sub', 'nested.js'), 'console.warn("nested", fromFile * 6)');
  writeFileSync(path.join(ws, 'throws.js'), 'throw new RangeError("bad file")');
  symlinkSync(outside, path.join(ws, 'link-out.js'));
  symlinkSync(path.dirname(ws), path.join(ws, 'dir-out'));
  symlinkSync(path.join(ws, 'hello.js'), path.join(ws, 'link-in.js'));

  const client = await clientFor(t, server);
  const session = await client.createSession('files');
  const runFile = (p: unknown) => client.request({ op: 'execute', session_id: session, kind: 'run-file', path: p });

  const hello = await runFile('hello.js');
  t.equal(hello.op, 'execution');
  t.equal(hello.execution.kind, 'run-file');
  t.equal(hello.execution.path, 'hello.js');
  const helloEvents = await client.untilDone(hello.execution.execution_id);
  t.same(helloEvents.filter((e) => e.type === 'console').map((e) => e.payload.text), ['hello from file']);
  t.equal(doneOf(helloEvents).status, 'ok');

  const nested = await runFile('sub/nested.js');
  t.equal(nested.op, 'execution');
  const nestedEvents = await client.untilDone(nested.execution.execution_id);
  t.same(nestedEvents.filter((e) => e.type === 'console').map((e) => e.payload), [{ level: 'warn', text: 'nested 42' }], 'files share the session state');

  const thrown = await runFile('throws.js');
  const thrownEvents = await client.untilDone(thrown.execution.execution_id);
  const exception = thrownEvents.find((e) => e.type === 'exception');
  t.equal(exception?.payload.name, 'RangeError');
  t.equal(exception?.payload.message, 'bad file');
  t.equal(doneOf(thrownEvents).status, 'error');

  const linkIn = await runFile('link-in.js');
  t.equal(linkIn.op, 'execution', 'a symlink that stays inside is fine');
  await client.untilDone(linkIn.execution.execution_id);

  const refused: Array<[string, string]> = [
    ['../' + path.basename(outside), 'BAD_REQUEST'],
    ['sub/../../' + path.basename(outside), 'BAD_REQUEST'],
    ['..', 'BAD_REQUEST'],
    [outside, 'BAD_REQUEST'],
    ['/etc/passwd', 'BAD_REQUEST'],
    ['link-out.js', 'BAD_REQUEST'],
    [`dir-out/${path.basename(outside)}`, 'BAD_REQUEST'],
    ['hello.js\0.txt', 'BAD_REQUEST'],
    ['missing.js', 'NOT_FOUND'],
    ['sub/missing.js', 'NOT_FOUND'],
  ];
  for (const [p, code] of refused) {
    const reply = await runFile(p);
    t.equal(reply.op, 'error', `${p} is refused`);
    t.equal(reply.code, code, `${p} → ${code}`);
  }
  const dir = await runFile('sub');
  t.equal(dir.op, 'error', 'a directory is not a runnable file');
  const empty = await runFile('');
  t.equal(empty.code, 'BAD_REQUEST');
  t.match(empty.message, /path/);
  const wrongType = await runFile(12);
  t.equal(wrongType.code, 'BAD_REQUEST');
  t.match(wrongType.message, /path/);

  // Nothing that was refused ever ran: no SECRET line anywhere.
  const leaked = client.frames.some((f) => {
    const text = f.op === 'event' ? (f.payload as { text?: unknown } | undefined)?.text : undefined;
    return typeof text === 'string' && text.includes('SECRET');
  });
  t.notOk(leaked);
  // The refusals created no executions.
  const listed = await client.expect('executions', { op: 'execution.list', session_id: session, limit: 100 });
  t.equal(listed.items.length, 4);
});
