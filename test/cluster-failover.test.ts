/**
 * Node loss on a 3-node cluster (test/helpers/cluster.ts; lease 1.5 s): sessions created through
 * each node run streaming executions with subscribers on the other nodes; one node is killed (-9)
 * mid-stream. Its executions end with exactly one `done {crashed, node_lost}`, seen by the
 * subscribers on the surviving nodes; every frame any client received is what a full replay from
 * each surviving node gives; the other executions end ok with no gap; the lost node's sessions are
 * taken over and rebuilt on their next execution (`session.restored` at seq 1); an execute resent
 * with the same id to another node returns the existing record. The killed node, restarted with its
 * id, takes nothing back and serves the same replays. Then a stale owner: a node stopped (SIGSTOP)
 * past its lease is taken over, and once continued (SIGCONT) it is fenced and drops the session: its
 * log keeps exactly one `done`, and its own socket gets the taker's. Last, owners nobody saw alive
 * (every node down, two of them long enough for their heartbeat keys to expire) are taken over by
 * the node that starts after them.
 *
 * No timed assertion: takeover times are measured and printed; waits are generous test timeouts.
 */
import t, { type Test } from 'tap';
import { startCluster, type TestCluster } from './helpers/cluster.js';
import { removeDir } from './helpers/server.js';
import { TestClient } from './helpers/client.js';
import { connect as connectNats } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { doneProblems, plain, replay, seqProblem, startExecution, waitAfter, waitEvent } from './helpers/util.js';
import type { EventFrame } from '../protocol/types.js';

const LEASE_MS = 1500;
const WAIT_MS = 120_000;

/** Streams for a while (the survivors' runs end ok after the kill), or forever (`endless`). */
const stream = (lines: number | null) => [
  `for (let i = 0; ${lines === null ? 'true' : `i < ${lines}`}; i++) {`,
  '  console.log("line " + i);',
  '  if (i % 20 === 0) await new Promise((r) => setTimeout(r, 10));',
  '}',
  '"finished"',
].join('\n');

let cluster: TestCluster;
t.before(async () => {
  cluster = await startCluster({ env: { VMSTREAM_NODE_LEASE_MS: String(LEASE_MS), VMSTREAM_NODE_HEARTBEAT_MS: '300' } });
});
t.teardown(async () => {
  await cluster?.kill();
  removeDir(cluster.dataDir);
  removeDir(cluster.workspaceDir);
});

/** A counter or gauge of one node's /metrics. */
async function metric(index: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${cluster.nodes[index]!.port}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
}

/** Asks until `read` is true; every try is answered by a server, not a clock. */
async function until(read: () => Promise<boolean>): Promise<void> {
  while (!(await read())) await new Promise((resolve) => setTimeout(resolve, 100));
}

async function connect(t: Test, index: number): Promise<TestClient> {
  const client = await TestClient.connect(cluster.nodes[index]!.url, cluster.nodes[index]!.token);
  t.teardown(() => client.close());
  return client;
}

interface Run { id: string; node: number; session: string; number: number; createdAt: number }

t.test('kill -9 of a node mid-stream: its executions end node_lost once, everything else goes on', async (t) => {
  const clients = await Promise.all([0, 1, 2].map((index) => connect(t, index)));
  const victim = 1;
  const runs: Run[] = [];
  // Two sessions created through each node, each streaming under a client-chosen id.
  for (const node of [0, 1, 2]) {
    for (const k of [0, 1]) {
      const client = clients[node]!;
      const session = await client.createSession(`node ${node} #${k}`);
      await client.run(session, 'globalThis.kept = "state"; 1');
      const id = `fail-${node}-${k}`;
      const reply = await startExecution(client, session, stream(node === victim ? null : 4000), { execution_id: id, timeout_ms: WAIT_MS });
      runs.push({ id, node, session, number: reply.execution.number, createdAt: reply.execution.created_at });
    }
  }
  // Subscribers on the other nodes, from seq 0.
  for (const run of runs) {
    for (const node of [0, 1, 2]) if (node !== run.node) await clients[node]!.expect('subscribed', { op: 'subscribe', execution_id: run.id, after_seq: 0 });
  }
  for (const run of runs) await waitEvent(clients[run.node]!, run.id, (e) => e.seq >= 50, WAIT_MS);

  const killedAt = performance.now();
  await cluster.nodes[victim]!.kill();
  const survivors = [0, 2];
  const lost = runs.filter((run) => run.node === victim);
  const seenAfter: number[] = [];
  for (const run of lost) {
    for (const node of survivors) {
      const done = await waitEvent(clients[node]!, run.id, (e) => e.type === 'done', WAIT_MS);
      seenAfter.push(performance.now() - killedAt);
      t.same([done.payload.status, done.payload.reason], ['crashed', 'node_lost'], `${run.id}: done crashed/node_lost on node ${node}`);
    }
  }
  t.comment(`kill -9 → node_lost done on the survivors' sockets: ${seenAfter.map((ms) => Math.round(ms)).join(', ')} ms (lease ${LEASE_MS} ms)`);
  for (const run of runs.filter((r) => r.node !== victim)) {
    for (const node of [0, 1, 2].filter((n) => n !== victim)) {
      const done = await waitEvent(clients[node]!, run.id, (e) => e.type === 'done', WAIT_MS);
      t.equal(done.payload.status, 'ok', `${run.id} (on node ${run.node}) ends ok for node ${node}'s socket`);
    }
  }

  // Every frame any client received is what a full replay from each surviving node gives.
  const readers = await Promise.all(survivors.map((index) => connect(t, index)));
  for (const run of runs) {
    const replays = await Promise.all(readers.map((reader) => replay(reader, run.id)));
    for (const [index, events] of replays.entries()) {
      t.equal(seqProblem(events.map((e) => e.seq), 1), null, `${run.id}: replay on node ${survivors[index]} contiguous from 1`);
      t.equal(doneProblems(events), null, `${run.id}: exactly one done, last`);
    }
    t.same(plain(replays[1]!), plain(replays[0]!), `${run.id}: both survivors replay the same frames`);
    for (const [node, client] of clients.entries()) {
      const got = plain(client.events.get(run.id) ?? []);
      const first = got[0]?.seq ?? 1;
      t.same(got, plain(replays[0]!).slice(first - 1, first - 1 + got.length), `${run.id}: what node ${node}'s socket got is in the replay, frame for frame`);
    }
  }
  const reader = readers[0]!;
  for (const run of lost) {
    const record = await reader.expect('execution', { op: 'execution.get', execution_id: run.id });
    t.same([record.execution.status, record.execution.reason], ['crashed', 'node_lost'], `${run.id}: its record says node_lost`);
  }

  // The lost node's sessions were taken over, each by one node.
  const claims = (await metric(0, 'vmstream_takeover_claims_total')) + (await metric(2, 'vmstream_takeover_claims_total'));
  t.equal(claims, 2, "the lost node's two sessions were claimed, once each");

  // Resent with the same ids to another node: the existing records.
  for (const run of runs) {
    const node = survivors.find((n) => n !== run.node)!;
    const again = await startExecution(clients[node]!, run.session, '"never runs"', { execution_id: run.id });
    t.same([again.execution.number, again.execution.created_at], [run.number, run.createdAt], `${run.id}: a resent execute on node ${node} returns the existing record`);
  }

  // The next execution in a taken-over session rebuilds it first, wherever it is sent.
  const nextAt = performance.now();
  const next = await clients[2]!.run(lost[0]!.session, 'kept', { timeout_ms: WAIT_MS });
  t.comment(`first execute in a taken-over session: ${Math.round(performance.now() - nextAt)} ms to its done`);
  t.equal(next.events[0]!.seq, 1, 'it begins at seq 1…');
  t.match(next.events[0]!.type, /^session\.restor(ing|ed)$/, '…with the rebuild (session.restoring, then session.restored)');
  const restored = next.events.findIndex((e) => e.type === 'session.restored');
  t.ok(restored >= 0 && restored < next.events.findIndex((e) => e.type === 'value'), 'session.restored comes before the value');
  t.equal(next.done.payload.status, 'ok', 'and runs in the rebuilt context');
  t.match(next.events.find((e) => e.type === 'value')?.payload.preview, /state/, 'with the state the lost node had built');

  // Back with its id: it takes nothing back and serves the same replays.
  await cluster.restartNode(victim);
  const back = await connect(t, victim);
  for (const run of runs) {
    t.same(plain(await replay(back, run.id)), plain(await replay(reader, run.id)), `${run.id}: the restarted node replays it identically`);
  }
  const again = await back.run(lost[0]!.session, 'kept', { timeout_ms: WAIT_MS });
  t.equal(again.done.payload.status, 'ok', 'an execute through the restarted node is forwarded to the new owner');
  t.notOk(again.events.some((e) => e.type === 'session.restored'), 'and does not rebuild the session a second time');
  t.equal(await metric(victim, 'vmstream_takeover_claims_total'), 0, 'the restarted node claimed nothing');
});

t.test('a stale owner (SIGSTOP past its lease, then SIGCONT) is fenced and writes no second done', async (t) => {
  const stale = 2;
  const owner = await connect(t, stale);
  const watcher = await connect(t, 0);
  const session = await owner.createSession('stale');
  // Synchronous: once its session is taken, the stale node's only way to end it is to kill its host.
  const spin = 'for (let i = 0; ; i++) { console.log("line " + i); const until = Date.now() + 2; while (Date.now() < until); }';
  const reply = await startExecution(owner, session, spin, { execution_id: 'stale-run', timeout_ms: WAIT_MS });
  const id = reply.execution.execution_id as string;
  await watcher.expect('subscribed', { op: 'subscribe', execution_id: id, after_seq: 0 });
  await waitEvent(watcher, id, (e) => e.seq >= 50, WAIT_MS);

  const pid = cluster.nodes[stale]!.process.pid!;
  const stoppedAt = performance.now();
  process.kill(pid, 'SIGSTOP');
  let continued = false;
  t.teardown(() => { if (!continued) process.kill(pid, 'SIGCONT'); });
  const done = await waitEvent(watcher, id, (e) => e.type === 'done', WAIT_MS);
  t.comment(`SIGSTOP → node_lost done on another node: ${Math.round(performance.now() - stoppedAt)} ms (lease ${LEASE_MS} ms)`);
  t.same([done.payload.status, done.payload.reason], ['crashed', 'node_lost'], 'the paused owner\'s execution was ended by a taker');
  process.kill(pid, 'SIGCONT');
  continued = true;

  // It learns that it was taken over, and drops the session.
  await until(async () => (await metric(stale, 'vmstream_sessions_disowned_total')) >= 1);
  t.pass('the continued node dropped the session taken from it');
  await until(async () => (await metric(stale, 'vmstream_worker_restarts_total\\{reason="node_lost"\\}')) >= 1);
  t.pass("and ended its run, which could not hear a stop, by killing the run's host");
  t.comment(`the continued node's refused writes (STORE_FENCED in its log): ${cluster.nodes[stale]!.stderr().split('STORE_FENCED').length - 1}`);
  const ownerEvents = await owner.untilDone(id, WAIT_MS);
  t.equal(seqProblem(ownerEvents.map((e) => e.seq), 1), null, "the stale node's own socket: no gap");
  t.same(plain(ownerEvents.slice(-1)), plain([done]), "and it ends with the taker's done");
  // A request answered after the drop: whatever the stale node still had, it had its chance to write.
  const again = await owner.run(session, '1 + 1', { timeout_ms: WAIT_MS });
  t.equal(again.done.payload.status, 'ok', 'the session goes on, on its new owner, through the stale node');
  for (const index of [0, 1, 2]) {
    const reader = await connect(t, index);
    const events: EventFrame[] = await replay(reader, id);
    t.equal(doneProblems(events), null, `replay on node ${index}: exactly one done, last`);
    t.equal(seqProblem(events.map((e) => e.seq), 1), null, `replay on node ${index}: contiguous`);
  }
});

t.test('owners nobody saw alive (their heartbeat keys expired) are taken over by a node that starts later', async (t) => {
  const [zero, two] = [await connect(t, 0), await connect(t, 2)];
  const runs: Array<{ id: string; session: string }> = [];
  for (const [client, name] of [[zero, 'orphan-0'], [two, 'orphan-2']] as const) {
    const session = await client.createSession(name);
    await startExecution(client, session, stream(null), { execution_id: name, timeout_ms: WAIT_MS });
    await waitEvent(client, name, (e) => e.seq >= 20, WAIT_MS);
    runs.push({ id: name, session });
  }
  // Every node gone; nodes 0 and 2 long enough for their heartbeat keys to have expired.
  await Promise.all(cluster.nodes.map((node) => node.kill()));
  const nc = await connectNats({ servers: cluster.nats.url });
  t.teardown(() => nc.close());
  const heartbeats = await new Kvm(nc).open(`${cluster.prefix}_nodes`);
  for (const id of ['node-0', 'node-2']) await heartbeats.purge(Buffer.from(id).toString('base64url'));

  const startedAt = performance.now();
  await cluster.restartNode(1);
  const reader = await connect(t, 1);
  for (const run of runs) {
    const reply = await reader.expect('subscribed', { op: 'subscribe', execution_id: run.id, after_seq: 0 });
    const done = await waitAfter(reader, reply, (f) => f.op === 'event' && f.execution_id === run.id && f.type === 'done', WAIT_MS);
    t.same([done.payload.status, done.payload.reason], ['crashed', 'node_lost'], `${run.id}: ended node_lost by the node that started later`);
  }
  t.comment(`restart → unseen owners' executions ended: ${Math.round(performance.now() - startedAt)} ms (boot included; lease ${LEASE_MS} ms)`);
  for (const run of runs) {
    const events = await replay(reader, run.id);
    t.equal(doneProblems(events), null, `${run.id}: exactly one done, last`);
    t.equal(seqProblem(events.map((e) => e.seq), 1), null, `${run.id}: contiguous`);
    const next = await reader.run(run.session, '"alive"', { timeout_ms: WAIT_MS });
    t.equal(next.done.payload.status, 'ok', `${run.id}: its session runs again, on the node that took it`);
  }
});
