/**
 * Remote tails (src/events/following-feed.ts): two server processes on one nats-server and one
 * JetStream prefix. An execution streams on node A; subscribers on node B, which does not run it,
 * get every event once, in order, while it runs (from a follow of its log, not from its end), the
 * stored → live hand-off has no gap, an after_seq a client received from A is accepted on B, and
 * what B delivers is byte for byte what A's own socket got, in `events` frames to a subscriber
 * that asks for them (protocol v1.1).
 */
import t, { type Test } from 'tap';
import { natsFor } from './helpers/nats.js';
import { TestClient } from './helpers/client.js';
import { clientFor, doneProblems, maxSeq, plain, replay, seqProblem, serverFor, startExecution, waitEvent } from './helpers/util.js';
import type { EventFrame } from '../protocol/types.js';
import type { TestServer } from './helpers/server.js';

/** Streams until told to stop (a cancel), so that what B sees is seen while it runs. */
const ENDLESS = [
  'for (let i = 0; ; i++) {',
  '  console.log("line " + i);',
  '  if (i % 20 === 0) await new Promise((r) => setTimeout(r, 2));',
  '}',
].join('\n');

/** Nodes A and B of one cluster (one nats-server, one JetStream prefix), and a client on each. */
async function twoNodes(t: Test, prefix: string): Promise<{ nodeB: TestServer; onA: TestClient; onB: TestClient }> {
  const nats = await natsFor(t);
  const env = { VMSTREAM_STORE: 'jetstream', VMSTREAM_NATS_URL: nats.url, VMSTREAM_JS_PREFIX: prefix, VMSTREAM_NODE_LEASE_MS: '1500', VMSTREAM_NODE_HEARTBEAT_MS: '300' };
  const nodeA = await serverFor(t, { env: { ...env, VMSTREAM_NODE_ID: 'node-a' } });
  const nodeB = await serverFor(t, { env: { ...env, VMSTREAM_NODE_ID: 'node-b' } });
  return { nodeB, onA: await clientFor(t, nodeA), onB: await clientFor(t, nodeB) };
}

t.test('a subscriber on another node gets an execution live, every event once, in order, as its owner sent it', async (t) => {
  const { nodeB, onA, onB: early } = await twoNodes(t, 'tail');
  const session = await onA.createSession('streams on A');

  const reply = await startExecution(onA, session, ENDLESS, { timeout_ms: 120_000 });
  const id = reply.execution.execution_id as string;
  await early.expect('subscribed', { op: 'subscribe', execution_id: id, after_seq: 0 });
  // The same tail, sent as events frames.
  const batched = await clientFor(t, nodeB);
  await batched.expect('subscribed', { op: 'subscribe', execution_id: id, after_seq: 0, batch: true });
  await waitEvent(early, id, (e) => e.seq >= 300, 60_000);
  t.pass('B delivers events while the execution still runs on A');

  // Joins while the tail runs ahead of it: the stored part first, then live.
  const late = await clientFor(t, nodeB);
  await late.expect('subscribed', { op: 'subscribe', execution_id: id, after_seq: 0 });
  await waitEvent(late, id, (e) => e.seq >= maxSeq(early, id) + 100, 60_000);
  // Joins with a cursor A's client got, which may be ahead of what B has delivered so far.
  const resumed = await clientFor(t, nodeB);
  const cursor = maxSeq(onA, id);
  await resumed.expect('subscribed', { op: 'subscribe', execution_id: id, after_seq: cursor });
  await waitEvent(resumed, id, (e) => e.seq >= cursor + 100, 60_000);

  const cancelled = await onA.expect('execution', { op: 'cancel', execution_id: id });
  t.equal(cancelled.execution.status, 'cancelled', 'cancelled on its owner');
  const seen: Record<string, EventFrame[]> = {};
  for (const [name, client] of Object.entries({ onA, early, batched, late, resumed })) seen[name] = await client.untilDone(id, 60_000);

  t.equal(seqProblem(seen.early!.map((e) => e.seq), 1), null, 'early subscriber on B: every seq once, from 1');
  t.equal(seqProblem(seen.late!.map((e) => e.seq), 1), null, 'late subscriber on B: stored then live, no gap, no duplicate');
  t.equal(seqProblem(seen.resumed!.map((e) => e.seq), cursor + 1), null, "subscriber on B from A's cursor: from there on, no gap");
  t.equal(seqProblem(seen.batched!.map((e) => e.seq), 1), null, 'batched subscriber on B: every seq once, from 1');
  const inBatches = batched.batches.filter((b) => b.execution_id === id).reduce((sum, b) => sum + b.events.length, 0);
  t.equal(inBatches, seen.batched!.length, `every event came in an events frame (${batched.batches.length} frames)`);
  t.equal(early.batches.length, 0, 'a subscriber that did not ask gets single event frames');
  for (const name of ['early', 'batched', 'late', 'resumed']) t.equal(doneProblems(seen[name]!), null, `${name}: one done, last`);
  t.same(plain(seen.early!), plain(seen.onA!), "B's early subscriber got exactly what A's socket got");
  t.same(plain(seen.batched!), plain(seen.onA!), 'and so did the batched one');
  t.same(plain(seen.late!), plain(seen.onA!), "and so did the late one");
  t.same(plain(seen.resumed!), plain(seen.onA!.slice(cursor)), 'and the resumed one, from its cursor');

  // After the end, B replays it from the store (the tail is gone; the record says where it ended).
  const after = await TestClient.connect(nodeB.url, nodeB.token);
  t.teardown(() => after.close());
  t.same(plain(await replay(after, id)), plain(seen.onA!), 'a replay on B after the end is identical');
  const record = await after.expect('execution', { op: 'execution.get', execution_id: id });
  t.equal(record.execution.status, 'cancelled', 'and B reads the same record');
});

t.test('a subscriber on another node joins before the execution wrote anything', async (t) => {
  const { onA, onB } = await twoNodes(t, 'early');
  const session = await onA.createSession();
  // Queued behind a run that holds the session, so its log has no key yet when B subscribes.
  const blocker = await startExecution(onA, session, 'await new Promise((r) => setTimeout(r, 1500)); 1', { timeout_ms: 60_000 });
  const reply = await startExecution(onA, session, 'for (let i = 0; i < 500; i++) console.log(i); "end"', { timeout_ms: 60_000 });
  const id = reply.execution.execution_id as string;
  await onB.expect('subscribed', { op: 'subscribe', execution_id: id, after_seq: 0 });
  await onA.untilDone(blocker.execution.execution_id as string, 60_000);
  const onBEvents = await onB.untilDone(id, 60_000);
  t.equal(seqProblem(onBEvents.map((e) => e.seq), 1), null, 'every seq once, from 1');
  t.same(plain(onBEvents), plain(await onA.untilDone(id)), "what A's socket got");
});
