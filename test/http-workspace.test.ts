/**
 * Each tenant's workspace over HTTP: PUT, GET, list, DELETE under /api/v1/workspace, the path rules
 * of run-file, the size limits; run-file runs what was put, and another tenant sees none of it.
 */
import { symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { HttpClient } from './helpers/http.js';
import { removeDir, tempDir, workspaceFile } from './helpers/server.js';
import { serverFor } from './helpers/util.js';
import { newTenantLine } from '../src/auth/tenants.js';

const dir = tempDir('tenants');
t.teardown(() => removeDir(dir));
// Two tenants, as `npm run tenant:add` adds them.
const tokensFile = path.join(dir, 'tokens');
const [aliceLine, bobLine] = [await newTenantLine('alice'), await newTenantLine('bob')];
writeFileSync(tokensFile, `${aliceLine.line}\n${bobLine.line}\n`);
const server = await serverFor(t, {
  env: { VMSTREAM_TOKENS_FILE: tokensFile, VMSTREAM_MAX_RUN_FILE_BYTES: '1000', VMSTREAM_MAX_WORKSPACE_BYTES: '2500', VMSTREAM_MAX_WORKSPACE_FILES: '4' },
});
const alice = HttpClient.of(server, aliceLine.token);
const bob = HttpClient.of(server, bobLine.token);
const put = (api: HttpClient, file: string, text: string | Uint8Array) => api.request('PUT', `/api/v1/workspace/${file}`, { body: text });

t.test('put, get, list, replace, delete', async (t) => {
  const created = await put(alice, 'lib/double.js', 'globalThis.doubled = 21 * 2;\nconsole.log("doubled")');
  t.equal(created.status, 201);
  t.match(created.body, { path: 'lib/double.js', size: 51, modified_at: Number });
  const read = await alice.get('/api/v1/workspace/lib/double.js');
  t.equal(read.status, 200);
  t.match(read.headers.get('content-type'), /^text\/plain/);
  t.equal(read.body, 'globalThis.doubled = 21 * 2;\nconsole.log("doubled")');
  t.equal((await put(alice, 'lib/double.js', 'globalThis.doubled = 42')).status, 200, 'replaced');
  await put(alice, 'main.js', 'doubled + 0');
  const listed = await alice.get('/api/v1/workspace');
  t.same(listed.body.items.map((file: { path: string; size: number }) => [file.path, file.size]), [['lib/double.js', 23], ['main.js', 11]]);

  const session = await alice.createSession();
  const first = await alice.post('/api/v1/executions/run-file?wait=10000', { session_id: session, path: 'lib/double.js' });
  t.equal(first.body.status, 'ok', 'run-file runs what was put');
  const second = await alice.post('/api/v1/executions/repl?wait=10000', { session_id: session, code: 'doubled' });
  t.equal(second.body.events[0].payload.preview, '42');
  t.ok(workspaceFile(server, 'lib/double.js', 'alice'), 'kept in the tenant\'s own folder');

  t.equal((await alice.delete('/api/v1/workspace/main.js')).status, 204);
  t.equal((await alice.get('/api/v1/workspace/main.js')).status, 404);
  t.equal((await alice.delete('/api/v1/workspace/main.js')).status, 404);
});

t.test('another tenant sees none of it, and runs none of it', async (t) => {
  t.same((await bob.get('/api/v1/workspace')).body, { items: [] });
  t.equal((await bob.get('/api/v1/workspace/lib/double.js')).status, 404);
  const session = await bob.createSession();
  const run = await bob.post('/api/v1/executions/run-file', { session_id: session, path: 'lib/double.js' });
  t.equal(run.status, 404);
  t.equal(run.body.error.code, 'NOT_FOUND');
  const climb = await bob.post('/api/v1/executions/run-file', { session_id: session, path: '../alice/lib/double.js' });
  t.equal(climb.body.error.code, 'BAD_REQUEST', "a path up into another tenant's folder is refused");
});

t.test("run-file's path rules, and the limits", async (t) => {
  const outside = path.join(dir, 'secret.js');
  writeFileSync(outside, 'SECRET');
  symlinkSync(outside, workspaceFile(server, 'link-out.js', 'alice'));
  for (const [file, code] of [
    ['..%2Fsecret.js', 'BAD_REQUEST'],
    ['lib/..%2F..%2Fbob%2Fx.js', 'BAD_REQUEST'],
    ['%2Fetc%2Fpasswd', 'BAD_REQUEST'],
    ['a%00b.js', 'BAD_REQUEST'],
    ['link-out.js', 'BAD_REQUEST'],
  ] as const) {
    const reply = await alice.get(`/api/v1/workspace/${file}`);
    t.equal(reply.body.error?.code, code, `GET ${file}: ${code}`);
    const written = await put(alice, file, 'x');
    t.equal(written.body.error?.code, code, `PUT ${file}: ${code}`);
  }
  t.equal((await alice.get('/api/v1/workspace/lib')).body.error.code, 'BAD_REQUEST', 'a folder is not a file');
  t.equal((await put(alice, 'big.js', 'x'.repeat(1001))).body.error.code, 'LIMIT_EXCEEDED', 'per file');
  await put(alice, 'a.js', 'x'.repeat(1000));
  await put(alice, 'b.js', 'x'.repeat(1000));
  const full = await put(alice, 'c.js', 'x'.repeat(1000));
  t.equal(full.status, 429);
  t.match(full.body.error.message, /would hold \d+ bytes; the limit is 2500/);
  t.equal((await put(alice, 'c.js', 'x')).status, 201, 'a small one still fits');
  t.match((await put(alice, 'd.js', 'x')).body.error, { code: 'LIMIT_EXCEEDED', message: /4 files/ });
  t.equal((await put(alice, 'bad.js', new Uint8Array([0xff, 0xfe]))).body.error.code, 'BAD_REQUEST', 'not UTF-8');
  t.notMatch(JSON.stringify((await alice.get('/api/v1/workspace')).body), /SECRET/);
});
