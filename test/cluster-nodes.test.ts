/**
 * Three nodes on one nats-server (test/helpers/cluster.ts), each client on a node of its own: a
 * session lives on the node that created it; the others list it, and forward what needs its live
 * context (execute, cancel, session.close) to that node, while serving its events themselves from
 * the shared log. A second process with a live node's id is refused.
 */
import t from 'tap';
import { startCluster, type TestCluster } from './helpers/cluster.js';
import { removeDir, startProcess } from './helpers/server.js';
import type { TestClient } from './helpers/client.js';
import { clientFor, doneProblems, seqProblem, startExecution, waitEvent } from './helpers/util.js';
import type { EventFrame } from '../protocol/types.js';

let cluster: TestCluster;
let a: TestClient;
let b: TestClient;
let c: TestClient;

t.before(async () => {
  cluster = await startCluster();
});
t.teardown(async () => {
  await cluster?.stop();
  removeDir(cluster.dataDir);
  removeDir(cluster.workspaceDir);
});

t.beforeEach(async (t) => {
  [a, b, c] = await Promise.all(cluster.nodes.map((node) => clientFor(t, node)));
});

/** A counter of one node's /metrics. */
async function metric(index: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${cluster.nodes[index]!.port}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
}

const listed = async (client: TestClient) => ((await client.expect('sessions', { op: 'session.list' })).items as Array<{ session_id: string }>).map((s) => s.session_id);

t.test('a session created on A is usable on B at once, and listed on every node', async (t) => {
  const session = await a.createSession('on A');
  // No NOT_FOUND window: B may not have seen the session's keys yet, and asks KV.
  const run = await b.run(session, '"from B"');
  t.equal(run.done.payload.status, 'ok', 'executed through B right after the create reply');
  for (const [name, client] of [['B', b], ['C', c]] as const) {
    // The watch brings it; each try is a request answered by the node, not a timer.
    let ids = await listed(client);
    while (!ids.includes(session)) ids = await listed(client);
    t.ok(ids.includes(session), `listed on ${name}`);
  }
  t.ok((await listed(a)).includes(session), 'and on A');
});

t.test('execute on B for A\'s session runs in A\'s context and streams to B from seq 1', async (t) => {
  const session = await a.createSession('context');
  await a.run(session, 'globalThis.kept = 41; 1');
  const servedBefore = await metric(0, 'vmstream_forwards_served_total');
  const forwardedBefore = await metric(1, 'vmstream_forwarded_total');
  const run = await b.run(session, 'for (let i = 0; i < 50; i++) console.log("line " + i); kept + 1');
  const seqs = run.events.map((event) => event.seq);
  t.equal(seqProblem(seqs, 1), null, 'B got every event from seq 1');
  t.equal(doneProblems(run.events as EventFrame[]), null, 'ending with one done');
  t.equal(run.events.filter((event) => event.type === 'console').length, 50, 'all console lines');
  t.match(run.events.find((event) => event.type === 'value')?.payload.preview, /42/, 'the REPL state of A\'s context');
  t.equal(await metric(0, 'vmstream_forwards_served_total'), servedBefore + 1, 'A ran a forwarded request');
  t.equal(await metric(1, 'vmstream_forwarded_total'), forwardedBefore + 1, 'B forwarded one');
});

t.test('one execution_id sent to B and C at once makes one record, streamed whole to both', async (t) => {
  const session = await a.createSession('idempotent');
  const input = { op: 'execute', session_id: session, kind: 'repl', code: 'for (let i = 0; i < 20; i++) console.log(i); "once"', execution_id: 'same-id-1' };
  const [onB, onC] = await Promise.all([b.expect('execution', input), c.expect('execution', input)]);
  t.equal(onB.execution.number, onC.execution.number, 'one number');
  t.equal(onB.execution.created_at, onC.execution.created_at, 'one created_at');
  for (const [name, client] of [['B', b], ['C', c]] as const) {
    const events = await client.untilDone('same-id-1');
    t.equal(seqProblem(events.map((event) => event.seq), 1), null, `${name} got the stream from seq 1`);
    t.equal(doneProblems(events as EventFrame[]), null, `${name}: one done`);
  }
  const listing = await a.expect('executions', { op: 'execution.list', session_id: session });
  t.equal((listing.items as unknown[]).length, 1, 'the session holds one execution');
  const again = await c.expect('execution', input);
  t.equal(again.execution.number, onB.execution.number, 'resent later: the same record');
});

t.test('cancel and session.close sent to other nodes are forwarded to the owner', async (t) => {
  const session = await a.createSession('to close');
  const reply = await startExecution(a, session, 'for (;;) await new Promise((r) => setTimeout(r, 5));', { timeout_ms: 60_000 });
  const id = reply.execution.execution_id as string;
  await c.expect('subscribed', { op: 'subscribe', execution_id: id, after_seq: 0 });
  const cancelled = await c.expect('execution', { op: 'cancel', execution_id: id });
  t.equal(cancelled.execution.status, 'cancelled', 'cancelled through C');
  const done = await waitEvent(a, id, (event) => event.type === 'done');
  t.equal(done.payload.status, 'cancelled', 'A\'s own socket saw it end');
  await waitEvent(c, id, (event) => event.type === 'done');
  t.equal(doneProblems(c.events.get(id) as EventFrame[]), null, 'C\'s subscriber got one done');

  const closed = await b.expect('session', { op: 'session.close', session_id: session });
  t.equal(closed.session.status, 'closed', 'closed through B');
  const refused = await c.request({ op: 'execute', session_id: session, kind: 'repl', code: '1' });
  t.equal(refused.code, 'SESSION_CLOSED', 'the owner refuses new work in it, whoever asks');
  t.notOk((await listed(a)).includes(session), 'no longer listed on its owner');
});

t.test('a second process with a live node\'s id is refused', async (t) => {
  const env = cluster.nodeEnv(1);
  await t.rejects(startProcess({ dataDir: `${cluster.dataDir}/dup`, workspaceDir: cluster.workspaceDir, env }), /node id \W+node-1\W+ is in use by a running node/);
});
