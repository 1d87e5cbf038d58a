/**
 * Protocol v1.1 `events` frames from a real server, held to the guarantees the single frames are
 * held to: every event once, in seq order, stored then live, within the bounds (subscribe-replay.
 * test.ts runs its reconnect and slow-socket tests in both shapes). The test client records each
 * `events` frame as the `event` frames it carries (and keeps the batches), so the same checks read
 * both shapes.
 */
import t from 'tap';
import { BATCH_MAX_BYTES, BATCH_MAX_EVENTS } from '../protocol/batch.js';
import { PROTOCOL_REVISION } from '../protocol/types.js';
import { TestClient } from './helpers/client.js';
import { clientFor, doneProblems, eventsAfter, maxSeq, plain, seqProblem, sharedServer, startExecution, sync, waitAfter, waitEvent } from './helpers/util.js';

const shared = sharedServer(t);

/** Events of `executionId` the client got inside `events` frames. */
const batchedCount = (client: TestClient, executionId: string) =>
  client.batches.filter((b) => b.execution_id === executionId).reduce((sum, b) => sum + b.events.length, 0);

t.test('pong announces revision 1.1', async (t) => {
  const client = await clientFor(t, await shared());
  const pong = await client.expect('pong', { op: 'ping' });
  t.equal(pong.version, PROTOCOL_REVISION);
  t.equal(PROTOCOL_REVISION, '1.1');
});

t.test('execute with batch: the same events as single frames, in events frames within their bounds', async (t) => {
  const server = await shared();
  const plainClient = await clientFor(t, server);
  const batched = await clientFor(t, server);
  const session = await plainClient.createSession('batch');
  const code = 'for (let i = 0; i < 3000; i++) console.log("line " + i + " " + "x".repeat(i % 50)); "end"';
  const one = await plainClient.run(session, code);
  t.equal(plainClient.batches.length, 0, 'a client that does not ask gets no events frames');
  const two = await batched.run(session, code, { batch: true });
  t.equal(batchedCount(batched, two.execution.execution_id), two.events.length, 'every event came in an events frame');
  t.equal(seqProblem(two.events.map((e) => e.seq), 1), null, 'contiguous from 1, no duplicate');
  t.equal(doneProblems(two.events), null);
  // All but `done`, whose duration differs from run to run.
  const shape = (events: typeof one.events) => events.slice(0, -1).map(({ type, payload }) => ({ type, payload }));
  t.same(shape(two.events), shape(one.events), 'the same events');
  t.equal(two.done.payload.status, 'ok');
  t.ok(batched.batches.length < two.events.length / 10, `${two.events.length} events in ${batched.batches.length} frames`);
  const sizes = batched.batches.map((b) => b.events.length);
  t.ok(Math.max(...sizes) <= BATCH_MAX_EVENTS, `largest batch ${Math.max(...sizes)} events`);
  t.ok(batched.batchBytes.every((bytes, i) => bytes <= BATCH_MAX_BYTES || sizes[i] === 1), 'within 64 KiB');

  // A replay of the plain run, batched, is the live stream event for event.
  const reader = await clientFor(t, server);
  const sub = await reader.expect('subscribed', { op: 'subscribe', execution_id: one.execution.execution_id, batch: true });
  await waitAfter(reader, sub, (f) => f.op === 'event' && f.type === 'done');
  await sync(reader);
  t.same(plain(eventsAfter(reader, sub, one.execution.execution_id)), plain(one.events), 'batched replay = live single frames');
  t.ok(reader.batches.length <= Math.ceil(one.events.length / BATCH_MAX_EVENTS) + 1, `${reader.batches.length} frames for the replay`);
  for (const afterSeq of [1, 700, one.events.length - 1]) {
    const other = await clientFor(t, server);
    const reply = await other.expect('subscribed', { op: 'subscribe', execution_id: one.execution.execution_id, after_seq: afterSeq, batch: true });
    await waitAfter(other, reply, (f) => f.op === 'event' && f.type === 'done');
    await sync(other);
    t.same(plain(eventsAfter(other, reply, one.execution.execution_id)), plain(one.events.slice(afterSeq)), `after_seq ${afterSeq}`);
  }
});

t.test('batch must be a boolean', async (t) => {
  const client = await clientFor(t, await shared());
  const reply = await client.request({ op: 'subscribe', execution_id: 'x', batch: 'yes' });
  t.equal(reply.code, 'BAD_REQUEST');
  t.match(reply.message, /batch/);
});

t.test('hand-off under load: batched subscribers joining mid-stream see exactly after_seq+1..done', async (t) => {
  const server = await shared();
  const producer = await clientFor(t, server);
  const session = await producer.createSession('batch-load');
  const LINES = 10_000;
  const reply = await startExecution(producer, session, [
    `for (let i = 0; i < ${LINES}; i++) {`,
    '  console.log("line " + i);',
    '  if (i % 50 === 0) await new Promise((r) => setTimeout(r, 1));',
    '}',
  ].join('\n'), { timeout_ms: 120000, batch: true });
  const id = reply.execution.execution_id;
  await waitEvent(producer, id, (e) => e.seq >= 200);
  const failures: string[] = [];
  let midStream = 0;
  await Promise.all([0, 1, 2].map(async (index) => {
    const client = await TestClient.connect(server.url, server.token);
    try {
      for (let round = 0; round < 3; round++) {
        const afterSeq = Math.floor((maxSeq(producer, id) * (index + round + 1)) / 6);
        const sub = await client.request({ op: 'subscribe', execution_id: id, after_seq: afterSeq, batch: true });
        if (sub.op !== 'subscribed') { failures.push(JSON.stringify(sub)); return; }
        if (sub.last_seq <= LINES) midStream++;
        const last = round === 2;
        let end: object | undefined;
        if (last) {
          await waitAfter(client, sub, (f) => f.op === 'event' && f.execution_id === id && f.type === 'done', 60_000);
          await sync(client);
        } else {
          await waitAfter(client, sub, (f) => f.op === 'event' && f.execution_id === id && (f.seq >= afterSeq + 500 || f.type === 'done'), 60_000);
          end = await client.request({ op: 'unsubscribe', execution_id: id });
        }
        const segment = eventsAfter(client, sub, id, end);
        const problem = seqProblem(segment.map((e) => e.seq), afterSeq + 1);
        if (problem) failures.push(`subscriber ${index} round ${round}: ${problem}`);
        if (last && doneProblems(segment)) failures.push(`subscriber ${index}: ${doneProblems(segment)}`);
      }
    } finally {
      await client.close();
    }
  }));
  const all = await producer.untilDone(id, 60_000);
  t.same(failures, [], 'every round saw exactly its seqs');
  t.ok(midStream >= 1, `${midStream} subscriptions joined while it ran`);
  t.equal(seqProblem(all.map((e) => e.seq), 1), null, 'the producer saw 1..done');
  t.equal(batchedCount(producer, id), all.length, 'all of it batched');
});

t.test('each subscription chooses its frames: a resubscribe on the same socket can switch either way', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('switch');
  const run = await client.run(session, 'for (let i = 0; i < 50; i++) console.log(i)', { batch: true });
  const id = run.execution.execution_id;
  const events = [...run.events]; // the client's list goes on growing with the resubscriptions
  t.equal(batchedCount(client, id), events.length, 'the execute asked: batched');
  for (const batch of [false, true, false]) {
    const before = client.batches.length;
    const sub = await client.expect('subscribed', { op: 'subscribe', execution_id: id, after_seq: 10, batch });
    await waitAfter(client, sub, (f) => f.op === 'event' && f.execution_id === id && f.type === 'done');
    await sync(client);
    t.same(plain(eventsAfter(client, sub, id)), plain(events.slice(10)), `batch ${batch}: the same events`);
    t.equal(client.batches.length > before, batch, batch ? 'as events frames' : 'as event frames');
  }
});
