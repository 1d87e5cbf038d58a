/**
 * Two tenants, one server: every op one tenant can do is tried on the other's sessions and
 * executions, and each answers NOT_FOUND (never FORBIDDEN: existence is not confirmed), while the
 * owner still sees everything. Tokens come from the tokens file written by scripts/add-tenant.
 * Then revocation: a tenant taken out of the file loses its open sockets and streams and its token.
 */
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { addTenant, startServer, tempDir } from './helpers/server.js';
import { TestClient } from './helpers/client.js';
import { baseUrl, HttpClient, openSse } from './helpers/http.js';

t.test('tenants cannot see or touch each other', async (t) => {
  const tokensFile = path.join(tempDir('tenants'), 'tokens');
  const alice = addTenant(tokensFile, 'alice');
  const bob = addTenant(tokensFile, 'bob');
  const stored = readFileSync(tokensFile, 'utf8');
  t.notOk(stored.includes(alice.split('.')[1]!) || stored.includes(bob.split('.')[1]!), 'only hashes are stored');
  t.equal(statSync(tokensFile).mode & 0o777, 0o600, 'tokens file is private');

  const server = await startServer({ env: { VMSTREAM_TOKENS_FILE: tokensFile, VMSTREAM_TOKEN: '' } });
  t.teardown(() => server.stop());
  t.notMatch(server.stderr(), new RegExp(alice.split('.')[1]!), 'tokens are never logged');
  const a = await TestClient.connect(server.url, alice);
  const b = await TestClient.connect(server.url, bob);
  t.teardown(() => Promise.all([a.close(), b.close()]));

  const session = await a.createSession('alice-only');
  const run = await a.run(session, 'let secret = 1; "alice output"', { execution_id: 'job-1' });
  t.equal(run.done.payload.status, 'ok');
  const xid = run.execution.execution_id;
  t.equal(xid, 'job-1');

  const notFound = async (frame: Record<string, unknown>, what: string) => {
    const reply = await b.request(frame);
    t.equal(reply.op, 'error', `${what}: refused`);
    t.equal(reply.code, 'NOT_FOUND', `${what}: NOT_FOUND`);
  };
  await notFound({ op: 'subscribe', execution_id: xid }, 'subscribe');
  await notFound({ op: 'cancel', execution_id: xid }, 'cancel');
  await notFound({ op: 'execution.get', execution_id: xid }, 'execution.get');
  await notFound({ op: 'execution.list', session_id: session }, 'execution.list');
  await notFound({ op: 'session.close', session_id: session }, 'session.close');
  await notFound({ op: 'session.rename', session_id: session, name: 'mine now' }, 'session.rename');
  await notFound({ op: 'execute', session_id: session, kind: 'repl', code: 'secret' }, 'execute into a foreign session');
  await notFound({ op: 'complete', session_id: session, code: 'sec', cursor: 3 }, 'complete in a foreign session');
  t.same((await b.expect('sessions', { op: 'session.list' })).items, [], 'session.list shows none of alice');

  // The same client-chosen id in bob's own session is a new execution, not alice's.
  const bobSession = await b.createSession('bob');
  const bobRun = await b.run(bobSession, '"bob output"', { execution_id: 'job-1' });
  t.equal(bobRun.execution.execution_id, 'job-1');
  t.equal(bobRun.execution.session_id, bobSession, 'a fresh execution in bob\'s session');
  t.match(JSON.stringify(bobRun.events), /bob output/);
  t.notMatch(JSON.stringify(bobRun.events), /alice output/);

  // Alice still sees hers, unchanged.
  const mine = await a.expect('execution', { op: 'execution.get', execution_id: 'job-1' });
  t.equal(mine.execution.session_id, session);
  t.equal((await a.expect('executions', { op: 'execution.list', session_id: session })).items.length, 1);
  const replay = await a.expect('subscribed', { op: 'subscribe', execution_id: 'job-1' });
  t.equal(replay.last_seq, run.done.seq);
});

t.test('a wrong or unknown tenant token gets 401', async (t) => {
  const tokensFile = path.join(tempDir('tenants'), 'tokens');
  const carol = addTenant(tokensFile, 'carol');
  const server = await startServer({ env: { VMSTREAM_TOKENS_FILE: tokensFile, VMSTREAM_TOKEN: '' } });
  t.teardown(() => server.stop());
  await t.rejects(TestClient.connect(server.url, `${carol}x`), /401/);
  await t.rejects(TestClient.connect(server.url, 'mallory.abcdef'), /401/);
  await t.rejects(TestClient.connect(server.url, server.token), /401/, 'no shared token exists with only a tokens file');
  // A tenant added while the server runs works without a restart.
  const dave = addTenant(tokensFile, 'dave');
  const client = await TestClient.connect(server.url, dave);
  t.equal((await client.request({ op: 'ping' })).op, 'pong');
  await client.close();
});

t.test('a tenant removed from the tokens file is revoked at once, with its open sockets and streams', async (t) => {
  const tokensFile = path.join(tempDir('tenants'), 'tokens');
  const erin = addTenant(tokensFile, 'erin');
  const frank = addTenant(tokensFile, 'frank');
  const server = await startServer({ env: { VMSTREAM_TOKENS_FILE: tokensFile, VMSTREAM_TOKEN: '', VMSTREAM_SHUTDOWN_GRACE_MS: '0' } });
  t.teardown(() => server.stop());
  const erinSocket = await TestClient.connect(server.url, erin);
  const frankSocket = await TestClient.connect(server.url, frank);
  t.teardown(() => Promise.all([erinSocket.close(), frankSocket.close()]));

  // Erin's token has passed over HTTP too (so it is remembered), and an execution of hers is streaming.
  const erinApi = new HttpClient(baseUrl(server), erin);
  const session = await erinApi.createSession('erin');
  const running = await erinApi.repl(session, 'await new Promise((resolve) => setTimeout(resolve, 100_000))', { timeout_ms: 120_000 });
  const stream = await openSse(`${baseUrl(server)}/api/v1/executions/${running.execution_id}/events`, erin);
  t.equal(stream.status, 200, 'the stream is open');

  // As an editor saves: a new file renamed over the old one, without erin's line.
  const kept = readFileSync(tokensFile, 'utf8').split('\n').filter((line) => !line.startsWith('erin:')).join('\n');
  writeFileSync(`${tokensFile}.new`, kept, { mode: 0o600 });
  renameSync(`${tokensFile}.new`, tokensFile);

  const closed = await erinSocket.closed;
  t.equal(closed.code, 4401, 'erin\'s socket is closed with 4401');
  t.match(closed.reason, /revoked/);
  const messages = await stream.messages;
  const last = messages.at(-1);
  t.equal(last?.event, 'error', 'the stream ends with an error message');
  t.same(JSON.parse(last?.data ?? '{}').error?.code, 'UNAUTHORIZED');

  await t.rejects(TestClient.connect(server.url, erin), /401/, 'a new socket with erin\'s token is refused');
  t.equal((await erinApi.get('/api/v1/sessions')).status, 401, 'so is an HTTP request');
  t.equal((await frankSocket.request({ op: 'ping' })).op, 'pong', 'frank keeps his socket');
  const again = await TestClient.connect(server.url, frank);
  t.equal((await again.request({ op: 'ping' })).op, 'pong', 'and his token');

  // A new secret for frank (his line replaced): the old token is revoked, the new one works.
  const rotatedFile = path.join(tempDir('tenants'), 'tokens');
  const rotated = addTenant(rotatedFile, 'frank');
  writeFileSync(tokensFile, readFileSync(rotatedFile, 'utf8'));
  t.equal((await again.closed).code, 4401, 'frank\'s socket on the old token is closed with 4401');
  await t.rejects(TestClient.connect(server.url, frank), /401/, 'the old token is refused');
  const fresh = await TestClient.connect(server.url, rotated);
  t.equal((await fresh.request({ op: 'ping' })).op, 'pong', 'the new token works');
  await fresh.close();
});
