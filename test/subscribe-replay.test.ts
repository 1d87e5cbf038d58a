import t from 'tap';
import { doneOf, TestClient } from './helpers/client.js';
import { clientFor, doneProblems, eventsAfter, maxSeq, seqProblem, serverFor, startExecution, sync, waitAfter, waitEvent, sharedServer } from './helpers/util.js';
import type { EventFrame } from '../protocol/types.js';

const shared = sharedServer(t);

t.test('subscribe to a finished execution: from 0, from the middle, at the end, beyond, unknown', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const reader = await clientFor(t, server);
  const session = await client.createSession('replay');
  const run = await client.run(session, 'for (let i = 0; i < 10; i++) console.log("line " + i); "end"');
  const id = run.execution.execution_id;
  const original = run.events;
  t.equal(original.length, 12);

  const all = await reader.expect('subscribed', { op: 'subscribe', execution_id: id });
  t.equal(all.execution_id, id);
  t.equal(all.last_seq, 12);
  await waitEvent(reader, id, (e) => e.type === 'done');
  const replayed = eventsAfter(reader, all, id);
  t.same(replayed, original, 'a replay from 0 is identical to the live stream');

  for (const afterSeq of [0, 1, 5, 11]) {
    const other = await TestClient.connect(server.url, server.token);
    const reply = await other.expect('subscribed', { op: 'subscribe', execution_id: id, after_seq: afterSeq });
    t.equal(reply.last_seq, 12);
    await waitEvent(other, id, (e) => e.type === 'done');
    await sync(other);
    const got = eventsAfter(other, reply, id);
    t.equal(seqProblem(got.map((e) => e.seq), afterSeq + 1), null, `after_seq ${afterSeq}: contiguous`);
    t.equal(got.length, 12 - afterSeq, `after_seq ${afterSeq}: everything after it, once`);
    t.same(got, original.slice(afterSeq));
    await other.close();
  }

  const atEnd = await TestClient.connect(server.url, server.token);
  const endReply = await atEnd.expect('subscribed', { op: 'subscribe', execution_id: id, after_seq: 12 });
  t.equal(endReply.last_seq, 12);
  await sync(atEnd);
  t.same(eventsAfter(atEnd, endReply, id), [], 'after_seq = last_seq sends nothing');
  await atEnd.close();

  const beyond = await reader.request({ op: 'subscribe', execution_id: id, after_seq: 13 });
  t.equal(beyond.op, 'error');
  t.equal(beyond.code, 'BAD_REQUEST');
  t.match(beyond.message, /after_seq/);
  const unknown = await reader.request({ op: 'subscribe', execution_id: 'no-such-execution' });
  t.equal(unknown.code, 'NOT_FOUND');
  const negative = await reader.request({ op: 'subscribe', execution_id: id, after_seq: -1 });
  t.equal(negative.code, 'BAD_REQUEST');
});

t.test('subscribe to a running execution; beyond last_seq refused; unsubscribe stops the stream', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const watcher = await clientFor(t, server);
  const session = await client.createSession('live');
  await client.run(session, 'globalThis.release = null');
  const reply = await startExecution(client, session, [
    'for (let i = 0; i < 5; i++) console.log("early " + i);',
    'await new Promise((r) => { globalThis.release = r; setTimeout(r, 60000); });',
    'for (let i = 0; i < 5; i++) console.log("late " + i);',
  ].join('\n'), { timeout_ms: 120000 });
  const id = reply.execution.execution_id;
  await waitEvent(client, id, (e) => e.type === 'console' && e.payload.text === 'early 4');

  const sub = await watcher.expect('subscribed', { op: 'subscribe', execution_id: id, after_seq: 2 });
  t.ok(sub.last_seq >= 5, 'last_seq counts what is stored');
  const tooFar = await watcher.request({ op: 'subscribe', execution_id: id, after_seq: sub.last_seq + 100 });
  t.equal(tooFar.code, 'BAD_REQUEST', 'after_seq beyond last_seq of a running execution');
  await waitEvent(watcher, id, (e) => e.seq === 5);
  const unsub = await watcher.request({ op: 'unsubscribe', execution_id: id });
  t.equal(unsub.op, 'unsubscribed');
  t.equal(unsub.execution_id, id);
  const seenBeforeUnsubscribe = eventsAfter(watcher, sub, id, unsub);
  t.equal(seqProblem(seenBeforeUnsubscribe.map((e) => e.seq), 3), null);

  // Let the execution finish; the subscriber socket must get nothing more for it.
  await client.expect('execution', { op: 'cancel', execution_id: id });
  await client.untilDone(id);
  await sync(watcher);
  t.same(eventsAfter(watcher, unsub, id), [], 'no events after unsubscribed');

  const events = client.events.get(id)!;
  t.equal(doneProblems(events), null);
  t.equal(seqProblem(events.map((e) => e.seq), 1), null);
});

t.test('replay hand-off under load: subscribers joining mid-stream see exactly after_seq+1..done', async (t) => {
  const server = await shared();
  const producer = await clientFor(t, server);
  const session = await producer.createSession('load');
  const LINES = 20_000;
  const reply = await startExecution(producer, session, [
    `for (let i = 0; i < ${LINES}; i++) {`,
    '  console.log("line " + i);',
    '  if (i % 50 === 0) await new Promise((r) => setTimeout(r, 1));',
    '}',
    '"all written"',
  ].join('\n'), { timeout_ms: 120000 });
  const id = reply.execution.execution_id;
  await waitEvent(producer, id, (e) => e.seq >= 200);

  let seed = 12345;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };

  const failures: string[] = [];
  let rounds = 0;
  let finalRounds = 0;
  let midStream = 0;
  async function subscriber(index: number): Promise<void> {
    const client = await TestClient.connect(server.url, server.token);
    try {
      for (let round = 0; ; round++) {
        // Any seq the producer has already received is stored, so it is a valid after_seq.
        const seen = maxSeq(producer, id);
        const choice = random(4);
        const afterSeq = choice === 0 ? 0 : choice === 1 ? seen : random(seen + 1);
        const reply = await client.request({ op: 'subscribe', execution_id: id, after_seq: afterSeq });
        if (reply.op !== 'subscribed') {
          failures.push(`subscriber ${index} round ${round}: ${JSON.stringify(reply)}`);
          return;
        }
        rounds++;
        if (reply.last_seq < LINES) midStream++;
        const producerDone = (producer.events.get(id) ?? []).some((e) => e.type === 'done');
        if (producerDone || round >= 6) {
          // Last round: read to the end.
          await waitAfter(client, reply, (f) => f.op === 'event' && f.execution_id === id && f.type === 'done', 60_000);
          await sync(client);
          const got = eventsAfter(client, reply, id);
          const problem = seqProblem(got.map((e) => e.seq), afterSeq + 1);
          if (problem) failures.push(`subscriber ${index} final round after_seq ${afterSeq}: ${problem}`);
          const last = got[got.length - 1];
          if (!last || last.type !== 'done') failures.push(`subscriber ${index}: final round does not end with done`);
          if (got.filter((e) => e.type === 'done').length !== 1) failures.push(`subscriber ${index}: ${got.filter((e) => e.type === 'done').length} dones`);
          finalRounds++;
          return;
        }
        // Read a while, then switch: either resubscribe directly or unsubscribe first.
        const want = afterSeq + 1 + random(2000);
        await waitAfter(client, reply, (f) => f.op === 'event' && f.execution_id === id && (f.seq >= want || f.type === 'done'), 60_000);
        let end: object | undefined;
        if (random(2) === 0) {
          end = await client.request({ op: 'unsubscribe', execution_id: id });
        } else {
          // The next subscribe reply closes this round's segment.
          await sync(client);
        }
        const segment = eventsAfter(client, reply, id, end);
        const problem = seqProblem(segment.map((e) => e.seq), afterSeq + 1);
        if (problem) failures.push(`subscriber ${index} round ${round} after_seq ${afterSeq}: ${problem}`);
        if (segment.filter((e) => e.type === 'done').length > 1) failures.push(`subscriber ${index} round ${round}: several dones`);
        if (end) {
          await sync(client);
          if (eventsAfter(client, end, id).length > 0) failures.push(`subscriber ${index} round ${round}: events after unsubscribed`);
        }
      }
    } finally {
      await client.close();
    }
  }

  await Promise.all([0, 1, 2, 3].map((index) => subscriber(index)));
  const all = await producer.untilDone(id, 60_000);
  t.same(failures, [], 'every subscription round saw exactly its seqs');
  t.equal(finalRounds, 4, 'every subscriber read to done');
  t.ok(rounds >= 4);
  t.comment(`${rounds} subscription rounds, ${midStream} of them joined while the execution was running`);
  t.ok(midStream >= 1, 'some subscriptions joined mid-stream');
  t.equal(seqProblem(all.map((e) => e.seq), 1), null, 'the producer saw 1..done');
  t.equal(all.filter((e) => e.type === 'console').length, LINES);
  t.equal(doneProblems(all), null);
  t.equal(doneOf(all).status, 'ok');

  // A last full replay after the end equals the live stream, frame for frame.
  const late = await TestClient.connect(server.url, server.token);
  t.teardown(() => late.close());
  const sub = await late.expect('subscribed', { op: 'subscribe', execution_id: id });
  t.equal(sub.last_seq, all.length);
  await waitEvent(late, id, (e) => e.type === 'done', 60_000);
  t.ok(sameEvents(eventsAfter(late, sub, id), all), 'full replay is identical to the live stream');
});

/** Batched or not (protocol v1.1 `batch: true`): the same guarantees, checked the same way (the test client records an `events` frame as its events). */
const SHAPES = [{ batch: false, shape: 'event frames' }, { batch: true, shape: 'events frames' }];

for (const { batch, shape } of SHAPES) {
  t.test(`reconnect mid-stream and resume from the last seq seen (${shape})`, async (t) => {
    const server = await shared();
    const first = await TestClient.connect(server.url, server.token);
    const session = await first.createSession('reconnect');
    const reply = await startExecution(first, session, [
      'for (let i = 0; i < 400; i++) {',
      '  console.log("tick " + i);',
      '  if (i % 10 === 0) await new Promise((r) => setTimeout(r, 2));',
      '}',
    ].join('\n'), { timeout_ms: 60000, batch });
    const id = reply.execution.execution_id;
    await waitEvent(first, id, (e) => e.seq >= 50);
    await first.close();
    const seen = [...(first.events.get(id) ?? [])];
    const lastSeen = seen[seen.length - 1]!.seq;
    t.equal(seqProblem(seen.map((e) => e.seq), 1), null);
    t.notOk(seen.some((e) => e.type === 'done'), 'disconnected mid-stream');
    t.equal(first.batches.length > 0, batch, batch ? 'batched' : 'not batched');

    const second = await clientFor(t, server);
    const sub = await second.expect('subscribed', { op: 'subscribe', execution_id: id, after_seq: lastSeen, batch });
    t.ok(sub.last_seq >= lastSeen);
    await waitEvent(second, id, (e) => e.type === 'done');
    await sync(second);
    const rest = eventsAfter(second, sub, id);
    t.equal(seqProblem(rest.map((e) => e.seq), lastSeen + 1), null, 'the rest, contiguous, from lastSeen + 1');
    const whole = [...seen, ...rest];
    t.equal(seqProblem(whole.map((e) => e.seq), 1), null, 'nothing missing, nothing twice');
    t.equal(whole.filter((e) => e.type === 'console').length, 400);
    t.equal(doneProblems(whole), null);
    t.equal(doneOf(whole).status, 'ok');
  });
}

t.test('a slow consumer (socket not read for a while) still gets every event once, in order', async (t) => {
  const server = await serverFor(t, { env: { VMSTREAM_BACKPRESSURE_BYTES: '1024' } });
  for (const { batch, shape } of SHAPES) {
    const producer = await clientFor(t, server);
    const slow = await clientFor(t, server);
    const session = await producer.createSession('slow');
    const LINES = 12_000;
    const reply = await startExecution(producer, session, [
      'const pad = "p".repeat(400);',
      `for (let i = 0; i < ${LINES}; i++) {`,
      '  console.log(i + " " + pad);',
      '  if (i % 100 === 0) await new Promise((r) => setTimeout(r, 1));',
      '}',
    ].join('\n'), { timeout_ms: 120000 });
    const id = reply.execution.execution_id;
    const sub = await slow.expect('subscribed', { op: 'subscribe', execution_id: id, batch });
    await waitAfter(slow, sub, (f) => f.op === 'event' && f.execution_id === id);
    // Stop reading: the server's buffer for this socket fills and it must hold events back.
    slow.socket.pause();
    await waitEvent(producer, id, (e) => e.seq >= LINES / 2);
    slow.socket.resume();
    await waitEvent(slow, id, (e) => e.type === 'done', 60_000);
    await sync(slow);
    const got = eventsAfter(slow, sub, id);
    t.equal(seqProblem(got.map((e) => e.seq), 1), null, `${shape}: contiguous from 1, no duplicate`);
    t.equal(got.filter((e) => e.type === 'console').length, LINES);
    t.equal(doneProblems(got), null);
    t.equal(slow.batches.length > 0, batch, batch ? 'batched' : 'not batched');
    const all = await producer.untilDone(id, 60_000);
    t.equal(seqProblem(all.map((e) => e.seq), 1), null);
    t.equal(all.length, got.length);
  }
});

function sameEvents(a: EventFrame[], b: EventFrame[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (JSON.stringify(a[i]) !== JSON.stringify(b[i])) return false;
  }
  return true;
}
