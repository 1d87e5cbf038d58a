/**
 * cancel on a queued execution (it ends at once and never runs) and on a running one (awaiting code
 * is stopped in its worker; a synchronous loop costs the worker). The reply is the record with
 * status "cancelled"; `done.session` says truthfully whether the session context was kept or rebuilt.
 */
import t, { type Test } from 'tap';
import { TestClient, contiguousFrom1, seqs } from './helpers/client.js';
import { clientFor, serverFor } from './helpers/util.js';
import { afterRestoring, runRepl, last, quoted, valueOf, consoleTexts, type AnyEvent } from './helpers/loose.js';

async function start(client: TestClient, sessionId: string, code: string, extra: Record<string, unknown> = {}): Promise<string> {
  const reply = await client.expect('execution', { op: 'execute', session_id: sessionId, kind: 'repl', code, ...extra });
  return reply.execution.execution_id as string;
}

async function setup(t: Test): Promise<TestClient> {
  return clientFor(t, await serverFor(t));
}

/** Checks that `done.session` is what happened, through a global the cancelled run set. */
async function checkTruth(t: Test, client: TestClient, sessionId: string, done: AnyEvent, expected: 'kept' | 'rebuilt') {
  t.equal(done.payload.session, expected, `done says the session was ${expected}`);
  const next = await runRepl(client, sessionId, 'String(globalThis.probe) + "/" + before');
  const events = next.events as AnyEvent[];
  if (done.payload.session === 'rebuilt') {
    t.equal(afterRestoring(events)!.type, 'session.restored', 'rebuilt: announced on the next execution');
    t.equal(valueOf(events), quoted('ok-input/state'), 'rebuilt: the cancelled run left nothing, earlier state is back');
  } else {
    t.notOk(events.some((e) => e.type === 'session.restored' || e.type === 'session.lost'), 'kept: nothing announced');
    t.equal(valueOf(events), quoted('cancelled-run/state'), 'kept: the same context, with what the cancelled run did');
  }
}

t.test('cancelling a queued execution: done cancelled at once, and it never runs', async (t) => {
  const client = await setup(t);
  const s = await client.createSession();
  await runRepl(client, s, "let before = 'state'");
  const long = await start(client, s, "console.log('long started'); await new Promise((r) => setTimeout(r, 60000)); 'long finished'", { timeout_ms: 120000 });
  await client.waitFor((f) => f.op === 'event' && f.execution_id === long && f.type === 'console');
  const q1 = await start(client, s, "globalThis.ran1 = true; console.log('q1 ran'); 1");
  const q2 = await start(client, s, "globalThis.ran2 = true; console.log('q2 ran'); 2");
  const q3 = await start(client, s, "console.log('q3 ran'); typeof ran2");
  for (const id of [q1, q2, q3]) {
    t.equal((await client.expect('execution', { op: 'execution.get', execution_id: id })).execution.status, 'queued', 'queued behind the long one');
  }

  const reply = await client.expect('execution', { op: 'cancel', execution_id: q2 });
  t.equal(reply.execution.execution_id, q2, 'the reply is the cancelled execution\'s record');
  t.equal(reply.execution.status, 'cancelled');
  t.equal(reply.execution.started_at, undefined, 'it never started');
  const q2Events = (await client.untilDone(q2)) as AnyEvent[];
  t.same(q2Events.map((e) => [e.seq, e.type]), [[1, 'done']], 'its whole log is one done');
  t.equal(q2Events[0]!.payload.status, 'cancelled');
  t.equal(reply.execution.last_seq, 1, 'the reply comes once done is durable');

  // The running one is awaiting a timer: the worker hears the cancel, the context is kept.
  const cancelLong = await client.expect('execution', { op: 'cancel', execution_id: long });
  t.equal(cancelLong.execution.status, 'cancelled');
  const longEvents = (await client.untilDone(long)) as AnyEvent[];
  t.equal(last(longEvents).payload.status, 'cancelled');
  t.equal(last(longEvents).payload.session, 'kept');
  t.notOk(consoleTexts(longEvents).includes('long finished'));

  const q1Events = (await client.untilDone(q1)) as AnyEvent[];
  const q3Events = (await client.untilDone(q3)) as AnyEvent[];
  t.same(consoleTexts(q1Events), ['q1 ran']);
  t.equal(last(q1Events).payload.status, 'ok');
  t.same(consoleTexts(q3Events), ['q3 ran'], 'the one queued after the cancelled one runs');
  t.equal(valueOf(q3Events), quoted('undefined'), 'the cancelled execution never ran');
  t.notOk(client.frames.some((f) => f.op === 'event' && f.type === 'console' && (f.payload as any).text === 'q2 ran'), 'its output never appeared');
  t.ok(q1Events[0]!.ts <= q3Events[0]!.ts, 'the rest ran in order');

  // Cancelling what has ended changes nothing; cancelling what does not exist is NOT_FOUND.
  const again = await client.expect('execution', { op: 'cancel', execution_id: q1 });
  t.equal(again.execution.status, 'ok', 'a finished execution stays as it ended');
  t.equal(client.events.get(q1)!.length, q1Events.length, 'and gets no second done');
  const missing = await client.request({ op: 'cancel', execution_id: 'no-such-execution' });
  t.equal(missing.op, 'error');
  t.equal(missing.code, 'NOT_FOUND');
});

t.test('cancelling awaiting code that loops: cancelled, session kept', async (t) => {
  const client = await setup(t);
  const s = await client.createSession();
  await runRepl(client, s, "let before = 'state'; globalThis.probe = 'ok-input'");
  const id = await start(client, s, "globalThis.probe = 'cancelled-run'; for (let i = 0; ; i++) { if (i % 20 === 0) console.log('spin ' + i); await new Promise((r) => setTimeout(r, 1)); }");
  await client.waitFor((f) => f.op === 'event' && f.execution_id === id && f.type === 'console');
  const reply = await client.expect('execution', { op: 'cancel', execution_id: id });
  t.equal(reply.execution.status, 'cancelled');
  t.equal(reply.execution.reason, 'cancelled');
  const events = (await client.untilDone(id)) as AnyEvent[];
  const done = last(events);
  t.equal(done.payload.status, 'cancelled');
  t.ok(contiguousFrom1(seqs(events)));
  t.equal(reply.execution.last_seq, done.seq, 'the reply\'s record covers the done');
  await checkTruth(t, client, s, done, 'kept');
});

t.test('cancelling a synchronous loop: cancelled, session rebuilt', async (t) => {
  const client = await setup(t);
  const s = await client.createSession();
  await runRepl(client, s, "let before = 'state'; globalThis.probe = 'ok-input'");
  const id = await start(client, s, "globalThis.probe = 'cancelled-run'; for (;;) {}");
  t.equal((await client.expect('execution', { op: 'execution.get', execution_id: id })).execution.status, 'running');
  const reply = await client.expect('execution', { op: 'cancel', execution_id: id });
  t.equal(reply.execution.status, 'cancelled');
  const events = (await client.untilDone(id)) as AnyEvent[];
  const done = last(events);
  t.equal(done.payload.status, 'cancelled');
  t.equal(done.payload.reason, 'cancelled');
  await checkTruth(t, client, s, done, 'rebuilt');
});

t.test('cancelling an endless microtask chain: cancelled, and done tells the truth about the session', async (t) => {
  const client = await setup(t);
  const s = await client.createSession();
  await runRepl(client, s, "let before = 'state'; globalThis.probe = 'ok-input'");
  const id = await start(client, s, "globalThis.probe = 'cancelled-run'; (async () => { for (;;) await null })()");
  const reply = await client.expect('execution', { op: 'cancel', execution_id: id });
  t.equal(reply.execution.status, 'cancelled');
  const done = last((await client.untilDone(id)) as AnyEvent[]);
  t.equal(done.payload.status, 'cancelled');
  // A microtask chain never gives the worker's event loop a turn, so it cannot hear the cancel.
  await checkTruth(t, client, s, done, 'rebuilt');
});
