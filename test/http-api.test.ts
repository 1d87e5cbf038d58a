/**
 * Every row of the HTTP API against a real server process: sessions, executions (repl, run-file,
 * a repeated execution_id), records, listings with a limit, event pages, cancel; and tenants, who
 * see only their own data exactly as on the socket.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { newTenantLine } from '../src/auth/tenants.js';
import { TestClient } from './helpers/client.js';
import { HttpClient } from './helpers/http.js';
import { startServer, tempDir, workspaceFile } from './helpers/server.js';

const dir = tempDir('http-api');
const acme = await newTenantLine('acme');
const tokensFile = path.join(dir, 'tokens');
writeFileSync(tokensFile, `${acme.line}\n`);
const server = await startServer({ env: { VMSTREAM_TOKENS_FILE: tokensFile } });
t.teardown(() => server.stop());
const api = HttpClient.of(server);
const other = HttpClient.of(server, acme.token);

t.test('sessions: create 201, list, get, close', async (t) => {
  const created = await api.post('/api/v1/sessions', { name: 'notebook' });
  t.equal(created.status, 201);
  t.match(created.headers.get('content-type'), /^application\/json/);
  t.match(created.body, { name: 'notebook', status: 'ready', tenant: 'default', execution_count: 0 });
  const id = created.body.session_id as string;

  const listed = await api.get('/api/v1/sessions');
  t.equal(listed.status, 200);
  t.ok(listed.body.items.some((s: any) => s.session_id === id), 'listed');

  const got = await api.get(`/api/v1/sessions/${id}`);
  t.equal(got.status, 200);
  t.same(got.body, created.body);

  const closed = await api.delete(`/api/v1/sessions/${id}`);
  t.equal(closed.status, 200);
  t.equal(closed.body.status, 'closed');
  t.type(closed.body.closed_at, 'number');
  t.notOk((await api.get('/api/v1/sessions')).body.items.some((s: any) => s.session_id === id), 'a closed session is not listed');
  t.equal((await api.get(`/api/v1/sessions/${id}`)).body.status, 'closed');

  const unnamed = await api.post('/api/v1/sessions');
  t.equal(unnamed.status, 201, 'the body is optional');
  t.equal(unnamed.body.name, '');

  const renamed = await api.post(`/api/v1/sessions/${unnamed.body.session_id}/rename`, { name: 'named at last' });
  t.equal(renamed.status, 200);
  t.same(renamed.body, { ...unnamed.body, name: 'named at last' }, 'rename: only the name changes');
  t.equal((await api.get(`/api/v1/sessions/${unnamed.body.session_id}`)).body.name, 'named at last');
  t.equal((await api.post(`/api/v1/sessions/${unnamed.body.session_id}/rename`, {})).body.error.code, 'BAD_REQUEST', 'the name is required');
  t.equal((await other.post(`/api/v1/sessions/${unnamed.body.session_id}/rename`, { name: 'theirs' })).status, 404, 'another tenant\'s session is not found');
});

t.test('repl: 201 with the record; state persists; events stream to done', async (t) => {
  const session = await api.createSession();
  const first = await api.post('/api/v1/executions/repl', { session_id: session, code: 'let x = 41; console.log("hi"); x' });
  t.equal(first.status, 201);
  t.match(first.body, { session_id: session, kind: 'repl', number: 1, code: 'let x = 41; console.log("hi"); x' });
  const events = await api.untilDone(first.body.execution_id);
  t.same(events.map((e) => [e.seq, e.type]), [[1, 'console'], [2, 'value'], [3, 'done']]);
  const second = await api.repl(session, 'x + 1');
  const [value] = await api.untilDone(second.execution_id);
  t.equal(value.payload.preview, '42');

  const record = await api.get(`/api/v1/executions/${first.body.execution_id}`);
  t.equal(record.status, 200);
  t.match(record.body, { execution_id: first.body.execution_id, status: 'ok', last_seq: 3 });
});

t.test('run-file: 201, reads the workspace', async (t) => {
  writeFileSync(workspaceFile(server, 'hello.js'), 'console.log("from a file"); 6 * 7');
  const session = await api.createSession();
  const reply = await api.post('/api/v1/executions/run-file', { session_id: session, path: 'hello.js', timeout_ms: 5000 });
  t.equal(reply.status, 201);
  t.match(reply.body, { kind: 'run-file', path: 'hello.js', timeout_ms: 5000 });
  t.notOk('code' in reply.body);
  const events = await api.untilDone(reply.body.execution_id);
  t.same(events.map((e) => e.type), ['console', 'done'], 'a file is a script: no completion value');
  t.equal(events[0].payload.text, 'from a file');
});

t.test('a repeated execution_id runs once: 201, then 200 with the same record', async (t) => {
  const session = await api.createSession();
  const first = await api.post('/api/v1/executions/repl', { session_id: session, code: '1', execution_id: 'once-only' });
  const again = await api.post('/api/v1/executions/repl', { session_id: session, code: '2', execution_id: 'once-only' });
  t.equal(first.status, 201);
  t.equal(again.status, 200);
  t.equal(again.body.execution_id, 'once-only');
  t.equal(again.body.number, first.body.number);
  t.equal(again.body.code, '1');
});

t.test('list executions: newest first, limit', async (t) => {
  const session = await api.createSession();
  for (const code of ['1', '2', '3']) await api.repl(session, code);
  const all = await api.get(`/api/v1/executions?session_id=${session}`);
  t.equal(all.status, 200);
  t.same(all.body.items.map((r: any) => r.number), [3, 2, 1]);
  const two = await api.get(`/api/v1/executions?session_id=${session}&limit=2`);
  t.same(two.body.items.map((r: any) => r.number), [3, 2]);
  t.equal(two.body.items[0].code, '3');
});

t.test('events pages: seq > after_seq, limit, last_seq, done', async (t) => {
  const session = await api.createSession();
  const record = await api.repl(session, 'for (let i = 0; i < 5; i++) console.log(i); "end"');
  await api.untilDone(record.execution_id);
  const base = `/api/v1/executions/${record.execution_id}/events`;
  const first = await api.get(`${base}?after_seq=0&limit=3`);
  t.equal(first.status, 200);
  t.same(first.body.items.map((e: any) => e.seq), [1, 2, 3]);
  t.match(first.body, { last_seq: 7, done: true });
  t.match(first.body.items[0], { op: 'event', execution_id: record.execution_id, type: 'console', payload: { text: '0' } });
  const rest = await api.get(`${base}?after_seq=3`);
  t.same(rest.body.items.map((e: any) => e.seq), [4, 5, 6, 7]);
  t.equal(rest.body.items.at(-1).type, 'done');
  const none = await api.get(`${base}?after_seq=7`);
  t.same(none.body, { items: [], last_seq: 7, done: true });
  const defaults = await api.get(base);
  t.equal(defaults.body.items.length, 7, 'after_seq defaults to 0');
});

t.test('cancel: 200 with the cancelled record', async (t) => {
  const session = await api.createSession();
  const record = await api.repl(session, 'await new Promise((resolve) => setTimeout(resolve, 20000))');
  const cancelled = await api.post(`/api/v1/executions/${record.execution_id}/cancel`);
  t.equal(cancelled.status, 200);
  t.match(cancelled.body, { execution_id: record.execution_id, status: 'cancelled' });
  const again = await api.post(`/api/v1/executions/${record.execution_id}/cancel`);
  t.equal(again.status, 200, 'cancelling an ended execution returns its record');
  t.equal(again.body.status, 'cancelled');
});

t.test('the socket and HTTP see the same data', async (t) => {
  const client = await TestClient.connect(server.url, server.token);
  t.teardown(() => client.close());
  const session = await client.createSession('from the socket');
  const { execution } = await client.run(session, '"socket"');
  const viaHttp = await api.get(`/api/v1/executions/${execution.execution_id}`);
  t.equal(viaHttp.body.status, 'ok');
  const record = await api.repl(session, '"http"');
  await api.untilDone(record.execution_id);
  const reply = await client.expect('execution', { op: 'execution.get', execution_id: record.execution_id });
  t.equal(reply.execution.status, 'ok');
});

t.test('tenants: another tenant sees nothing of this one, and reuses ids freely', async (t) => {
  const session = await api.createSession('mine');
  const record = await api.repl(session, '"secret"', { execution_id: 'shared-name' });
  await api.untilDone(record.execution_id);

  t.notOk((await other.get('/api/v1/sessions')).body.items.some((s: any) => s.session_id === session));
  for (const [method, url] of [
    ['GET', `/api/v1/sessions/${session}`],
    ['DELETE', `/api/v1/sessions/${session}`],
    ['GET', `/api/v1/executions?session_id=${session}`],
    ['GET', '/api/v1/executions/shared-name'],
    ['GET', '/api/v1/executions/shared-name/events'],
    ['POST', '/api/v1/executions/shared-name/cancel'],
  ] as const) {
    const reply = await other.request(method, url);
    t.equal(reply.status, 404, `${method} ${url}`);
    t.equal(reply.body.error.code, 'NOT_FOUND');
  }
  const denied = await other.post('/api/v1/executions/repl', { session_id: session, code: '1' });
  t.equal(denied.status, 404, 'cannot execute in another tenant\'s session');

  const theirs = await other.createSession();
  const same = await other.post('/api/v1/executions/repl', { session_id: theirs, code: '"theirs"', execution_id: 'shared-name' });
  t.equal(same.status, 201, 'the same execution_id is a new execution for another tenant');
  const [value] = await other.untilDone('shared-name');
  t.equal(value.payload.preview, "'theirs'");
  const [mine] = await api.untilDone('shared-name');
  t.equal(mine.payload.preview, "'secret'");
});
