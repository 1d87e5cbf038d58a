/**
 * Retention: executions that ended longer than VMSTREAM_RETENTION_MS ago are deleted (record and
 * events) by the sweep every VMSTREAM_RETENTION_SWEEP_MS; one still running is not. A deleted
 * execution is NOT_FOUND everywhere; a subscribe past an execution's last_seq is BAD_REQUEST.
 */
import t, { type Test } from 'tap';
import type { TestClient } from './helpers/client.js';
import { clientFor, serverFor } from './helpers/util.js';
import { afterRestoring, runRepl, type AnyEvent } from './helpers/loose.js';

const RETENTION = { VMSTREAM_RETENTION_MS: '1000', VMSTREAM_RETENTION_SWEEP_MS: '200' };
/** How long to poll for a deletion before giving up: many sweeps past the retention age. */
const DELETION_DEADLINE_MS = 15_000;

async function setup(t: Test, env: Record<string, string>) {
  const server = await serverFor(t, { env });
  const client = await clientFor(t, server);
  return { server, client };
}

/** Polls execution.get until NOT_FOUND; resolves with how long it took, or rejects past the deadline. */
async function untilDeleted(client: TestClient, executionId: string): Promise<number> {
  const startedAt = Date.now();
  for (;;) {
    const reply = await client.request({ op: 'execution.get', execution_id: executionId });
    if (reply.op === 'error' && reply.code === 'NOT_FOUND') return Date.now() - startedAt;
    if (reply.op !== 'execution') throw new Error(`unexpected reply ${JSON.stringify(reply)}`);
    if (Date.now() - startedAt > DELETION_DEADLINE_MS) throw new Error(`${executionId} not deleted after ${DELETION_DEADLINE_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100)); // poll interval
  }
}

t.test('an ended execution is deleted after the retention age; then NOT_FOUND everywhere', async (t) => {
  const { client } = await setup(t, RETENTION);
  const s = await client.createSession();
  const ended = await runRepl(client, s, "console.log('short-lived'); 1", { execution_id: 'retention-reused-id' });
  const id = ended.execution.execution_id as string;
  t.equal(ended.done.payload.status, 'ok');
  // Still running long after the retention age: not swept.
  const running = (await client.expect('execution', {
    op: 'execute', session_id: s, kind: 'repl', code: "console.log('long'); await new Promise((r) => setTimeout(r, 60000))",
  })).execution.execution_id as string;
  await client.waitFor((f) => f.op === 'event' && f.execution_id === running && f.type === 'console');

  const tookMs = await untilDeleted(client, id);
  t.comment(`deleted ${tookMs} ms after it ended`);
  t.pass('the ended execution was deleted');

  const sub = await client.request({ op: 'subscribe', execution_id: id, after_seq: 0 });
  t.equal(sub.op, 'error');
  t.equal(sub.code, 'NOT_FOUND', 'subscribing to a deleted execution is NOT_FOUND');
  const listed = (await client.expect('executions', { op: 'execution.list', session_id: s })).items.map((r: any) => r.execution_id);
  t.notOk(listed.includes(id), 'nor is it listed');
  t.ok(listed.includes(running), 'the running one is listed');
  const cancel = await client.request({ op: 'cancel', execution_id: id });
  t.equal(cancel.code, 'NOT_FOUND');
  // Its id is free again: an execute with it creates and runs a new execution.
  const reused = await client.expect('execution', { op: 'execute', session_id: s, kind: 'repl', code: "'second life'", execution_id: id });
  t.equal(reused.execution.status === 'queued' || reused.execution.status === 'running', true, 'a new execution, not the deleted record');
  t.ok(reused.execution.number > ended.execution.number, 'with a new number');
  t.equal(reused.execution.code, "'second life'");

  // The running one, well past the age, is untouched; once it ends it goes too.
  const live = (await client.expect('execution', { op: 'execution.get', execution_id: running })).execution;
  t.equal(live.status, 'running', 'a running execution is not swept');
  const liveSub = await client.expect('subscribed', { op: 'subscribe', execution_id: running, after_seq: 0 });
  t.ok(liveSub.last_seq >= 1);
  const cancelled = await client.expect('execution', { op: 'cancel', execution_id: running });
  t.equal(cancelled.execution.status, 'cancelled');
  await untilDeleted(client, running);
  t.pass('deleted once it had ended and aged');
  const gone = await client.request({ op: 'subscribe', execution_id: running, after_seq: 0 });
  t.equal(gone.code, 'NOT_FOUND');

  // The session lives on.
  const after = await runRepl(client, s, '2 + 2');
  t.equal(after.events.find((e) => e.type === 'value')?.payload.preview, '4');
});

t.test('subscribe with after_seq past last_seq is BAD_REQUEST (ended and running executions)', async (t) => {
  const { client } = await setup(t, {});
  const s = await client.createSession();
  const ended = await runRepl(client, s, "console.log('a'); console.log('b'); 3");
  const id = ended.execution.execution_id as string;
  const lastSeq = ended.events.length;
  const past = await client.request({ op: 'subscribe', execution_id: id, after_seq: lastSeq + 1 });
  t.equal(past.op, 'error');
  t.equal(past.code, 'BAD_REQUEST', 'after_seq beyond last_seq');
  t.match(past.message, /after_seq/, 'the message names the field');
  const atEnd = await client.expect('subscribed', { op: 'subscribe', execution_id: id, after_seq: lastSeq });
  t.equal(atEnd.last_seq, lastSeq, 'after_seq == last_seq is fine (nothing more to send)');
  const from1 = await client.expect('subscribed', { op: 'subscribe', execution_id: id, after_seq: 1 });
  t.equal(from1.last_seq, lastSeq);

  const running = (await client.expect('execution', {
    op: 'execute', session_id: s, kind: 'repl', code: "console.log('x'); await new Promise((r) => setTimeout(r, 60000))",
  })).execution.execution_id as string;
  await client.waitFor((f) => f.op === 'event' && f.execution_id === running && f.type === 'console');
  const ahead = await client.request({ op: 'subscribe', execution_id: running, after_seq: 1000 });
  t.equal(ahead.code, 'BAD_REQUEST', 'after_seq beyond what a running execution has committed');
  await client.expect('execution', { op: 'cancel', execution_id: running });
});

t.test('a rebuild re-runs the inputs still stored: executions deleted by retention are not re-run', async (t) => {
  // A longer age here, so the input made after the first one's deletion is surely still stored at the rebuild.
  const { client } = await setup(t, { VMSTREAM_RETENTION_MS: '3000', VMSTREAM_RETENTION_SWEEP_MS: '200' });
  const s = await client.createSession();
  const old = await runRepl(client, s, "var fromExpired = 'old'; 1");
  await untilDeleted(client, old.execution.execution_id);
  const recent = await runRepl(client, s, "var fromStored = 'new'; 2");
  t.equal(recent.done.payload.status, 'ok');
  // Lose the worker: a synchronous loop past its timeout.
  const loop = await runRepl(client, s, 'for (;;) {}', { timeout_ms: 300 });
  t.equal(loop.done.payload.status, 'timeout');
  t.equal(loop.done.payload.session, 'rebuilt');
  const next = await runRepl(client, s, "typeof fromExpired + '/' + typeof fromStored");
  const events = next.events as AnyEvent[];
  t.equal(afterRestoring(events)!.type, 'session.restored', 'the rebuild is announced first');
  t.same(afterRestoring(events)!.payload, { session_id: s, replayed: 1 }, 'only the input still stored was re-run');
  t.equal(events.find((e) => e.type === 'value')?.payload.preview, "'undefined/string'", 'what the deleted input built is gone; the rest is back');
  const listed = (await client.expect('executions', { op: 'execution.list', session_id: s })).items;
  t.notOk(listed.some((r: any) => r.execution_id === old.execution.execution_id), 'the deleted execution stays deleted');
});
