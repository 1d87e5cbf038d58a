import t from 'tap';
import { doneOf, pack } from './helpers/client.js';
import { clientFor, serverFor, startExecution, waitEvent, sharedServer } from './helpers/util.js';

const shared = sharedServer(t);

t.test('session.create, session.list, session.close', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const before = Date.now();

  const created = await client.request({ op: 'session.create', name: 'alpha' });
  t.equal(created.op, 'session');
  t.equal(typeof created.id, 'number', 'id echoed');
  const session = created.session;
  t.type(session.session_id, 'string');
  t.ok(session.session_id.length > 0);
  t.equal(session.name, 'alpha');
  t.equal(session.status, 'ready');
  t.type(session.created_at, 'number');
  t.ok(session.created_at >= before - 1000 && session.created_at <= Date.now() + 1000, 'created_at is epoch ms');

  const unnamed = (await client.expect('session', { op: 'session.create' })).session;
  t.equal(unnamed.status, 'ready');
  t.not(unnamed.session_id, session.session_id, 'ids are distinct');

  client.sendRaw(pack({ op: 'session.list', id: 'list-1' }));
  const listed = await client.waitFor((f) => f.id === 'list-1');
  t.equal(listed.op, 'sessions');
  t.equal(listed.id, 'list-1', 'string id echoed');
  const ids = listed.items.map((s: { session_id: string }) => s.session_id);
  t.ok(ids.includes(session.session_id) && ids.includes(unnamed.session_id), 'both sessions listed');
  const listedAlpha = listed.items.find((s: { session_id: string }) => s.session_id === session.session_id);
  t.equal(listedAlpha.name, 'alpha');
  t.equal(listedAlpha.status, 'ready');

  const closed = await client.expect('session', { op: 'session.close', session_id: session.session_id });
  t.equal(closed.session.session_id, session.session_id);
  t.equal(closed.session.status, 'closed');

  const afterClose = await client.request({ op: 'execute', session_id: session.session_id, kind: 'repl', code: '1' });
  t.equal(afterClose.op, 'error');
  t.equal(afterClose.code, 'SESSION_CLOSED');

  // The other session is untouched.
  const other = await client.run(unnamed.session_id, '1 + 1');
  t.equal(other.done.payload.status, 'ok');

  const missing = await client.request({ op: 'session.close', session_id: 'no-such-session' });
  t.equal(missing.op, 'error');
  t.equal(missing.code, 'NOT_FOUND');
});

t.test('session.rename: a new name, listed and kept across a restart; nothing else changes', async (t) => {
  const server = await serverFor(t, { keepDirs: true });
  const client = await clientFor(t, server);
  const session = (await client.expect('session', { op: 'session.create', name: 'before' })).session;
  await client.run(session.session_id, 'let kept = "still here"');
  const renamed = (await client.expect('session', { op: 'session.rename', session_id: session.session_id, name: 'after' })).session;
  t.same(renamed, { ...session, name: 'after', execution_count: 1 }, 'only the name changed');
  t.equal((await client.expect('sessions', { op: 'session.list' })).items[0].name, 'after');
  const missing = await client.request({ op: 'session.rename', session_id: 'no-such-session', name: 'x' });
  t.equal(missing.code, 'NOT_FOUND');

  await client.close();
  await server.stop();
  const again = await serverFor(t, { dataDir: server.dataDir, workspaceDir: server.workspaceDir });
  const next = await clientFor(t, again);
  t.equal((await next.expect('sessions', { op: 'session.list' })).items[0].name, 'after', 'durable');
  const value = (await next.run(session.session_id, 'kept')).events.find((e) => e.type === 'value');
  t.equal((value?.payload as { preview: string }).preview, "'still here'", 'the same session, its state rebuilt');
});

t.test('session.close cancels queued executions', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('closing');

  const running = await startExecution(client, session, 'await new Promise((r) => setTimeout(r, 60000)); "finished"', { timeout_ms: 120000 });
  const runningId = running.execution.execution_id;
  // Make sure the first one is really running (its queue position is taken) before the others queue.
  const started = await client.expect('execution', { op: 'execution.get', execution_id: runningId });
  t.ok(['queued', 'running'].includes(started.execution.status));
  const queued1 = await startExecution(client, session, 'globalThis.ranQueued = true; 1');
  const queued2 = await startExecution(client, session, 'globalThis.ranQueued = true; 2');
  t.equal(queued1.execution.status, 'queued');
  t.equal(queued2.execution.status, 'queued');

  const closed = await client.expect('session', { op: 'session.close', session_id: session });
  t.equal(closed.session.status, 'closed');

  for (const reply of [queued1, queued2]) {
    const id = reply.execution.execution_id;
    const events = await client.untilDone(id);
    const done = events[events.length - 1]!;
    t.equal(done.type, 'done');
    t.equal(doneOf(events).status, 'cancelled', 'queued execution ends cancelled');
    t.notOk(events.some((e) => e.type === 'value'), 'queued execution never ran');
    const record = await client.expect('execution', { op: 'execution.get', execution_id: id });
    t.equal(record.execution.status, 'cancelled');
  }
  const runningEvents = await client.untilDone(runningId);
  t.equal(doneOf(runningEvents).status, 'cancelled', 'the running execution is cancelled too');

  const again = await client.request({ op: 'execute', session_id: session, kind: 'repl', code: '1' });
  t.equal(again.code, 'SESSION_CLOSED');
});

t.test('session.close while a synchronous loop runs in it still ends that execution', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('closing-sync');
  const reply = await startExecution(client, session, 'console.log("looping"); while (true) {}', { timeout_ms: 120000 });
  const id = reply.execution.execution_id;
  const record = await client.expect('execution', { op: 'execution.get', execution_id: id });
  t.ok(['queued', 'running'].includes(record.execution.status));
  const closed = await client.expect('session', { op: 'session.close', session_id: session });
  t.equal(closed.session.status, 'closed');
  const done = await waitEvent(client, id, (e) => e.type === 'done', 3_000).catch((error: Error) => error);
  t.notOk(done instanceof Error, 'the running execution gets its done after session.close');
  if (!(done instanceof Error)) t.equal(done.payload.status, 'cancelled');
  const after = await client.expect('execution', { op: 'execution.get', execution_id: id });
  t.equal(after.execution.status, 'cancelled', 'its record is terminal');
  // The server stays usable.
  const fresh = await client.createSession();
  t.equal((await client.run(fresh, '6 * 7')).events.find((e) => e.type === 'value')?.payload.preview, '42');
});

t.test('session.create validates name and the open-sessions limit', async (t) => {
  const server = await serverFor(t, { env: { VMSTREAM_MAX_SESSIONS: '2' } });
  const client = await clientFor(t, server);
  const badName = await client.request({ op: 'session.create', name: 42 });
  t.equal(badName.code, 'BAD_REQUEST');
  t.match(badName.message, /name/);
  const first = await client.createSession('one');
  await client.createSession('two');
  const third = await client.request({ op: 'session.create', name: 'three' });
  t.equal(third.op, 'error');
  t.equal(third.code, 'LIMIT_EXCEEDED');
  await client.expect('session', { op: 'session.close', session_id: first });
  const again = await client.request({ op: 'session.create', name: 'three' });
  t.equal(again.op, 'session', 'closing a session frees a place');
});
