import t from 'tap';
import { doneOf, pack, payloadOf, TestClient } from './helpers/client.js';
import { clientFor, doneProblems, plain, replay, serverFor, startExecution, STATUSES, sync, TERMINAL, waitEvent, sharedServer } from './helpers/util.js';
import type { EventFrame } from '../protocol/types.js';

const shared = sharedServer(t);

t.test('event shapes: console levels, value, exception, done; seqs from 1; ts epoch ms', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('shapes');
  const before = Date.now();
  const reply = await startExecution(client, session, [
    'console.log("a", 1);',
    'console.info("b");',
    'console.warn("c");',
    'console.error("d");',
    'console.debug("e");',
    '"done-" + (40 + 2)',
  ].join('\n'));
  const record = reply.execution;
  t.type(record.execution_id, 'string');
  t.equal(record.session_id, session);
  t.equal(record.kind, 'repl');
  t.ok(STATUSES.includes(record.status), `status ${record.status} is a known one`);
  t.type(record.created_at, 'number');
  const events = await client.untilDone(record.execution_id);
  t.same(events.map((e) => e.seq), events.map((_e, i) => i + 1), 'seqs 1..n');
  t.same(events.map((e) => e.type), ['console', 'console', 'console', 'console', 'console', 'value', 'done']);
  t.same(events.slice(0, 5).map((e) => e.payload), [
    { level: 'log', text: 'a 1' },
    { level: 'info', text: 'b' },
    { level: 'warn', text: 'c' },
    { level: 'error', text: 'd' },
    { level: 'debug', text: 'e' },
  ]);
  const value = payloadOf(events[5], 'value');
  t.equal(value.type, 'string');
  t.match(value.preview, /done-42/);
  const done = payloadOf(events[6], 'done');
  t.equal(done.status, 'ok');
  t.type(done.duration_ms, 'number');
  t.ok(done.duration_ms >= 0);
  for (const event of events) {
    t.equal(event.op, 'event');
    t.equal(event.execution_id, record.execution_id);
    t.ok(Number.isInteger(event.ts) && event.ts >= before - 1000 && event.ts <= Date.now() + 1000, 'ts is epoch ms');
  }

  const thrown = await client.run(session, 'throw new TypeError("boom")');
  t.same(thrown.events.map((e) => e.type), ['exception', 'done']);
  const exception = payloadOf(thrown.events[0], 'exception');
  t.equal(exception.name, 'TypeError');
  t.equal(exception.message, 'boom');
  t.type(exception.stack, 'string');
  t.match(exception.stack, /boom/);
  t.equal(thrown.done.payload.status, 'error');
  t.same(thrown.events.map((e) => e.seq), [1, 2], 'every execution has its own seqs from 1');

  const got = await client.expect('execution', { op: 'execution.get', execution_id: thrown.execution.execution_id });
  t.equal(got.execution.status, 'error');
  t.equal(got.execution.last_seq, 2);
  const okRecord = await client.expect('execution', { op: 'execution.get', execution_id: record.execution_id });
  t.equal(okRecord.execution.status, 'ok');
  t.equal(okRecord.execution.last_seq, 7);
  t.ok(TERMINAL.includes(okRecord.execution.status));

  const unknown = await client.request({ op: 'execution.get', execution_id: 'nope' });
  t.equal(unknown.code, 'NOT_FOUND');
});

t.test('execution.list: newest first, limit 1..100', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('listing');
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((await client.run(session, `${i}`)).execution.execution_id);
  const all = await client.expect('executions', { op: 'execution.list', session_id: session });
  t.same(all.items.map((r: { execution_id: string }) => r.execution_id), [...ids].reverse(), 'newest first');
  t.ok(all.items.every((r: { status: string }) => r.status === 'ok'));
  const two = await client.expect('executions', { op: 'execution.list', session_id: session, limit: 2 });
  t.same(two.items.map((r: { execution_id: string }) => r.execution_id), [ids[4], ids[3]]);
  const hundred = await client.expect('executions', { op: 'execution.list', session_id: session, limit: 100 });
  t.equal(hundred.items.length, 5);
  for (const limit of [0, 101, 1.5, '3']) {
    const bad = await client.request({ op: 'execution.list', session_id: session, limit });
    t.equal(bad.code, 'BAD_REQUEST', `limit ${JSON.stringify(limit)} is refused`);
    t.match(bad.message, /limit/);
  }
  const unknown = await client.request({ op: 'execution.list', session_id: 'no-such-session' });
  t.equal(unknown.code, 'NOT_FOUND');
});

t.test('same execution_id twice runs once (sequential)', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('idem');
  await client.run(session, 'globalThis.counter = 0');
  const code = 'counter += 1; console.log("ran"); counter';
  const first = await client.run(session, code, { execution_id: 'exec-seq-1' });
  t.equal(first.execution.execution_id, 'exec-seq-1');
  t.equal(first.events.find((e) => e.type === 'value')?.payload.preview, '1');
  const second = await client.expect('execution', { op: 'execute', session_id: session, kind: 'repl', code, execution_id: 'exec-seq-1' });
  t.equal(second.execution.execution_id, 'exec-seq-1');
  t.equal(second.execution.created_at, first.execution.created_at, 'the existing record is returned');
  t.equal(second.execution.status, 'ok');
  const check = await client.run(session, 'counter');
  t.equal(check.events.find((e) => e.type === 'value')?.payload.preview, '1', 'the code ran once');
  const listed = await client.expect('executions', { op: 'execution.list', session_id: session });
  t.equal(listed.items.filter((r: { execution_id: string }) => r.execution_id === 'exec-seq-1').length, 1);
  t.equal(listed.items.length, 3, 'no extra execution was created');
});

/** What protocol/ids.ts makes (protocol/README.md, "Ids"): execution ids, 15 characters of A-Z a-z 0-9… */
const NEW_ID = /^[A-Za-z0-9]{15}$/;
/** …and session ids, 15 such characters in five groups of three (the shape Jupyter servers take kernel ids in). */
const NEW_SESSION_ID = /^[A-Za-z0-9]{3}(-[A-Za-z0-9]{3}){4}$/;

t.test('ids the server makes up are short random ones of protocol/ids.ts, and differ', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const sessions = [await client.createSession('minted-1'), await client.createSession('minted-2')];
  for (const session of sessions) t.match(session, NEW_SESSION_ID, `session id ${session}`);
  t.not(sessions[0], sessions[1]);
  const runs = [await client.run(sessions[0]!, 'console.log("x"); 1'), await client.run(sessions[0]!, '2')];
  for (const { execution, events } of runs) {
    t.match(execution.execution_id, NEW_ID, `execution id ${execution.execution_id}`);
    t.ok(events.every((e) => e.execution_id === execution.execution_id), 'its events carry it');
  }
  t.not(runs[0]!.execution.execution_id, runs[1]!.execution.execution_id);
});

// Ids of earlier versions (UUIDs) and any other id the protocol takes keep working as before.
for (const chosen of ['0f8fad5b-d9cb-469f-a165-70867728950e', `a_.:-${'z'.repeat(123)}`]) {
  t.test(`a client-chosen id of ${chosen.length} characters works end to end, as sent`, async (t) => {
    const server = await shared();
    const client = await clientFor(t, server);
    const session = await client.createSession('chosen-id');
    const code = 'globalThis.runs = (globalThis.runs ?? 0) + 1; console.log("line", runs); runs';
    const first = await client.run(session, code, { execution_id: chosen });
    // A copy: the client's list of the id's events grows with the repeated execute's.
    const events = plain(first.events);
    t.equal(first.execution.execution_id, chosen);
    t.same(events.map((e) => e.type), ['console', 'value', 'done']);
    t.ok(events.every((e) => e.execution_id === chosen), 'every event frame carries the id as sent');
    t.same(events[0]!.payload, { level: 'log', text: 'line 1' });
    const again = await client.expect('execution', { op: 'execute', session_id: session, kind: 'repl', code, execution_id: chosen });
    t.equal(again.execution.created_at, first.execution.created_at, 'the same id is the same execution');
    const got = await client.expect('execution', { op: 'execution.get', execution_id: chosen });
    t.equal(got.execution.status, 'ok');
    t.same(plain(await replay(client, chosen, 1)), events.slice(1), 'subscribe replays it from the store');
    const check = await client.run(session, 'runs');
    t.equal(check.events.find((e) => e.type === 'value')?.payload.preview, '1', 'the code ran once');
  });
}

t.test('same execution_id twice runs once (back-to-back, same socket and two sockets)', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const other = await clientFor(t, server);
  const session = await client.createSession('idem-race');
  await client.run(session, 'globalThis.counter = 0');
  const code = 'counter += 1; await new Promise((r) => setTimeout(r, 20)); console.log("ran", counter); counter';

  // Two frames in one go on the same socket.
  const frame = { op: 'execute', session_id: session, kind: 'repl', code, execution_id: 'race-1' };
  client.sendRaw(pack({ ...frame, id: 'a' }));
  client.sendRaw(pack({ ...frame, id: 'b' }));
  // And the same id from another socket at the same time.
  other.sendRaw(pack({ ...frame, id: 'c' }));
  const a = await client.waitFor((f) => f.id === 'a');
  const b = await client.waitFor((f) => f.id === 'b');
  const c = await other.waitFor((f) => f.id === 'c');
  for (const reply of [a, b, c]) {
    t.equal(reply.op, 'execution');
    t.equal(reply.execution.execution_id, 'race-1');
  }
  t.equal(a.execution.created_at, b.execution.created_at);
  t.equal(a.execution.created_at, c.execution.created_at);
  const events = await client.untilDone('race-1');
  const otherEvents = await other.untilDone('race-1');
  t.equal(otherEvents.filter((e) => e.type === 'done').length, 1);
  t.same(otherEvents.map((e) => e.seq), otherEvents.map((_e, i) => i + 1), 'the other socket gets the stream from seq 1');
  t.equal(events.filter((e) => e.type === 'console').length >= 1, true);
  const check = await client.run(session, 'counter');
  t.equal(check.events.find((e) => e.type === 'value')?.payload.preview, '1', 'the code ran exactly once');
  const listed = await client.expect('executions', { op: 'execution.list', session_id: session });
  t.equal(listed.items.length, 3, 'one execution created for the three requests');
});

t.test('requests pipelined right after an execute with a client-chosen execution_id see that execution', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('pipelined');
  await client.run(session, 'globalThis.finished = false');
  // Sent in one go, without waiting for the execute reply: the server has the execute before the others.
  client.sendRaw(pack({ op: 'execute', id: 'x', session_id: session, kind: 'repl', execution_id: 'pipe-1', timeout_ms: 120000,
    code: 'await new Promise((r) => setTimeout(r, 60000)); globalThis.finished = true; "finished"' }));
  client.sendRaw(pack({ op: 'execution.get', id: 'g', execution_id: 'pipe-1' }));
  client.sendRaw(pack({ op: 'cancel', id: 'c', execution_id: 'pipe-1' }));
  const executed = await client.waitFor((f) => f.id === 'x');
  t.equal(executed.op, 'execution');
  const got = await client.waitFor((f) => f.id === 'g');
  t.equal(got.op, 'execution', `execution.get after execute finds it (got ${got.code ?? got.op})`);
  const cancelled = await client.waitFor((f) => f.id === 'c');
  t.equal(cancelled.op, 'execution', `cancel after execute finds it (got ${cancelled.code ?? cancelled.op})`);
  if (cancelled.op !== 'execution') {
    // Without the cancel it would run for a minute: stop it now that the failure is recorded.
    await client.expect('execution', { op: 'cancel', execution_id: 'pipe-1' });
  }
  const events = await client.untilDone('pipe-1');
  t.equal(doneOf(events).status, 'cancelled', 'the pipelined cancel took effect');
});

t.test('cancel: queued, running async, running sync; unknown → NOT_FOUND', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('cancel');
  await client.run(session, 'let kept = "still here"');

  const slow = await startExecution(client, session, 'console.log("waiting"); await new Promise((r) => setTimeout(r, 60000)); "late"', { timeout_ms: 120000 });
  const slowId = slow.execution.execution_id;
  const queued = await startExecution(client, session, 'globalThis.queuedRan = true');
  const queuedId = queued.execution.execution_id;
  t.equal(queued.execution.status, 'queued');

  const cancelledQueued = await client.expect('execution', { op: 'cancel', execution_id: queuedId });
  t.equal(cancelledQueued.execution.execution_id, queuedId);
  t.equal(cancelledQueued.execution.status, 'cancelled', 'cancel reply carries the record after cancelling');
  const queuedEvents = await client.untilDone(queuedId);
  t.same(queuedEvents.map((e) => e.type), ['done']);
  t.equal(payloadOf(queuedEvents[0], 'done').status, 'cancelled');

  await waitEvent(client, slowId, (e) => e.type === 'console');
  const cancelledSlow = await client.expect('execution', { op: 'cancel', execution_id: slowId });
  t.equal(cancelledSlow.execution.status, 'cancelled');
  const slowEvents = await client.untilDone(slowId);
  t.equal(doneProblems(slowEvents), null);
  t.equal(doneOf(slowEvents).status, 'cancelled');
  t.notOk(slowEvents.some((e) => e.type === 'value'), 'the cancelled execution produced no value');

  const sync1 = await startExecution(client, session, 'console.log("spin"); while (true) {}', { timeout_ms: 120000 });
  const syncId = sync1.execution.execution_id;
  const record = await client.expect('execution', { op: 'execution.get', execution_id: syncId });
  t.ok(['queued', 'running'].includes(record.execution.status));
  const cancelledSync = await client.expect('execution', { op: 'cancel', execution_id: syncId });
  t.equal(cancelledSync.execution.status, 'cancelled');
  const syncEvents = await client.untilDone(syncId);
  t.equal(doneProblems(syncEvents), null);
  t.equal(doneOf(syncEvents).status, 'cancelled');

  // The session still works and kept its state; the queued code never ran.
  const after = await client.run(session, 'kept + " / " + typeof queuedRan');
  t.equal(after.done.payload.status, 'ok');
  t.equal(after.events.find((e) => e.type === 'value')?.payload.preview, "'still here / undefined'");

  // Cancelling a finished execution returns its record as it is.
  const finished = await client.expect('execution', { op: 'cancel', execution_id: after.execution.execution_id });
  t.equal(finished.execution.status, 'ok');

  const unknown = await client.request({ op: 'cancel', execution_id: 'no-such-execution' });
  t.equal(unknown.code, 'NOT_FOUND');
  await sync(client);
});

t.test('queue limit per session → LIMIT_EXCEEDED', async (t) => {
  const server = await serverFor(t, { env: { VMSTREAM_MAX_QUEUED: '2' } });
  const client = await clientFor(t, server);
  const session = await client.createSession('queue');
  const running = await startExecution(client, session, 'await new Promise((r) => setTimeout(r, 60000))', { timeout_ms: 120000 });
  const record = await client.expect('execution', { op: 'execution.get', execution_id: running.execution.execution_id });
  t.ok(['queued', 'running'].includes(record.execution.status));
  // The first one may still be queued for a moment; two more fill the queue either way after it runs.
  const replies: Array<Record<string, any>> = [];
  for (let i = 0; i < 4; i++) replies.push(await client.request({ op: 'execute', session_id: session, kind: 'repl', code: `${i}` }));
  const refused = replies.filter((r) => r.op === 'error');
  t.ok(refused.length >= 1, 'past the queue limit executes are refused');
  for (const r of refused) t.equal(r.code, 'LIMIT_EXCEEDED');
  await client.expect('execution', { op: 'cancel', execution_id: running.execution.execution_id });
});

t.test('execute validates its fields and names them', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('validation');
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ kind: 'repl', code: '1' }, 'BAD_REQUEST', /session_id/],
    [{ session_id: session, code: '1' }, 'BAD_REQUEST', /kind/],
    [{ session_id: session, kind: 'shell', code: '1' }, 'BAD_REQUEST', /kind/],
    [{ session_id: session, kind: 'repl' }, 'BAD_REQUEST', /code/],
    [{ session_id: session, kind: 'repl', code: 42 }, 'BAD_REQUEST', /code/],
    [{ session_id: session, kind: 'run-file' }, 'BAD_REQUEST', /path/],
    [{ session_id: session, kind: 'repl', code: '1', timeout_ms: 'soon' }, 'BAD_REQUEST', /timeout_ms/],
    [{ session_id: session, kind: 'repl', code: '1', timeout_ms: 0 }, 'BAD_REQUEST', /timeout_ms/],
    [{ session_id: session, kind: 'repl', code: '1', execution_id: 5 }, 'BAD_REQUEST', /execution_id/],
    [{ session_id: 7, kind: 'repl', code: '1' }, 'BAD_REQUEST', /session_id/],
    [{ session_id: 'no-such-session', kind: 'repl', code: '1' }, 'NOT_FOUND', /./],
  ];
  for (const [fields, code, message] of cases) {
    const reply = await client.request({ op: 'execute', ...fields });
    t.equal(reply.op, 'error', JSON.stringify(fields));
    t.equal(reply.code, code, JSON.stringify(fields));
    t.match(reply.message, message, `message names the field: ${reply.message}`);
  }
  for (const op of ['subscribe', 'unsubscribe', 'cancel', 'execution.get']) {
    const missing = await client.request({ op });
    t.equal(missing.code, 'BAD_REQUEST', `${op} without execution_id`);
    t.match(missing.message, /execution_id/);
  }
  const noSession = await client.request({ op: 'execution.list' });
  t.equal(noSession.code, 'BAD_REQUEST');
  t.match(noSession.message, /session_id/);
  const closeNoSession = await client.request({ op: 'session.close' });
  t.equal(closeNoSession.code, 'BAD_REQUEST');
  t.match(closeNoSession.message, /session_id/);
  const afterSeq = await client.request({ op: 'subscribe', execution_id: 'x', after_seq: 'one' });
  t.equal(afterSeq.code, 'BAD_REQUEST');
  t.match(afterSeq.message, /after_seq/);
  // Still one working socket.
  const ok = await client.run(session, '2 + 2');
  t.equal(ok.events.find((e: EventFrame) => e.type === 'value')?.payload.preview, '4');
});

t.test('ping → pong with the id', async (t) => {
  const server = await shared();
  const client = await TestClient.connect(server.url, server.token);
  t.teardown(() => client.close());
  const pong = await client.request({ op: 'ping' });
  t.equal(pong.op, 'pong');
  t.type(pong.id, 'number');
  client.sendRaw(pack({ op: 'ping', id: 'p-1' }));
  const stringPong = await client.waitFor((f) => f.id === 'p-1');
  t.equal(stringPong.op, 'pong');
  client.sendRaw(pack({ op: 'ping' }));
  const bare = await client.waitFor((f) => f.op === 'pong' && f.id === undefined);
  t.equal(bare.op, 'pong', 'a request without id gets a reply without id');
});

t.test('filename: a repl input named in its stack traces and its record; control characters refused', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('filename');
  const reply = await client.expect('execution', { op: 'execute', session_id: session, kind: 'repl', code: '\nthrow new Error("where")', filename: 'scripts/where.js' });
  t.equal(reply.execution.filename, 'scripts/where.js', 'the record keeps it');
  const events = await client.untilDone(reply.execution.execution_id);
  const exception = events.find((event) => event.type === 'exception')!;
  t.match(exception.payload.stack, /^Error: where\n {4}at scripts\/where\.js:2:7/);
  const unnamed = await client.run(session, 'throw new Error("nameless")');
  const stack = (await client.untilDone(unnamed.execution.execution_id)).find((event) => event.type === 'exception')!.payload.stack;
  t.match(stack, /at REPL\d+:1:7/, 'without one: REPL<n>, as before');
  const refused = await client.request({ op: 'execute', session_id: session, kind: 'repl', code: '1', filename: 'two\nlines' });
  t.match(refused, { op: 'error', code: 'BAD_REQUEST', message: 'field `filename` must be 1-255 characters, none of them a control character' });
});

t.test('a promise as the value: its state, as Node shows it; a rejection is reported in Node REPL words', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('promises');
  const texts = (events: EventFrame[]) => events.filter((event) => event.type !== 'done').map((event) => (event.type === 'console' ? `${event.payload.level}: ${event.payload.text}` : event.type === 'value' ? `value: ${event.payload.preview}` : event.type));
  const rejected = await client.run(session, 'Promise.reject(new RangeError("nobody caught me"))');
  const [value, warning] = texts(rejected.events);
  t.match(value, /^value: Promise \{ <rejected> RangeError: nobody caught me/);
  t.match(warning, /^error: Uncaught RangeError: nobody caught me\n {4}at REPL\d+:1:16/);
  t.equal(rejected.done.payload.status, 'ok', 'the input itself ran to its end, as in Node');
  t.same(texts((await client.run(session, 'Promise.resolve(42)')).events), ['value: Promise { 42 }']);
  t.same(texts((await client.run(session, 'new Promise(() => {})')).events), ['value: Promise { <pending> }']);
  t.same(texts((await client.run(session, 'Promise.reject("plain")')).events), ["value: Promise { <rejected> 'plain' }", "error: Uncaught 'plain'"]);
  t.same(texts((await client.run(session, '_ instanceof Promise')).events), ['value: true'], '_ is the promise');
});
