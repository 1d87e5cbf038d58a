/**
 * Sessions across the nodes of a 3-node cluster (test/helpers/cluster.ts; lease 1.5 s): a session
 * created on one node is found at once on the others by the front doors that look it up (the HTTP
 * API, Jupyter's kernel model), with no NOT_FOUND window; and a session whose owner key is missing
 * (its creator crashed between its session record and its owner key) is adopted by a live node,
 * which then runs it, whichever node was asked; and a paused owner (SIGSTOP past its lease) whose
 * session was taken never overwrites the taker's session record once it runs again (SIGCONT).
 */
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { connect as connectNats } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { unpack } from 'msgpackr';
import type { SessionRecord } from '../protocol/types.js';
import { encodeId, sessionKey } from '../src/store/jetstream/names.js';
import { packSession, unpackSession } from '../src/store/jetstream/records.js';
import { startCluster, type TestCluster } from './helpers/cluster.js';
import { HttpClient } from './helpers/http.js';
import { removeDir } from './helpers/server.js';

const LEASE_MS = 1500;

let cluster: TestCluster;
/** Asks until `read` is true; every try is answered by a server, not a clock. */
async function until(read: () => Promise<boolean>): Promise<void> {
  while (!(await read())) await new Promise((resolve) => setTimeout(resolve, 100));
}

t.before(async () => {
  cluster = await startCluster({ env: { VMSTREAM_NODE_LEASE_MS: String(LEASE_MS), VMSTREAM_NODE_HEARTBEAT_MS: '300' } });
});
t.teardown(async () => {
  await cluster?.stop();
  removeDir(cluster.dataDir);
  removeDir(cluster.workspaceDir);
});

t.test('a session created on one node is found at once on the others, over HTTP and as a Jupyter kernel', async (t) => {
  const [a, b, c] = cluster.nodes.map((node) => HttpClient.of(node));
  // Each lookup right behind the create reply, before the other nodes' watches may have brought it.
  for (let round = 0; round < 5; round++) {
    const kernel = await a.post('/api/kernels', { name: 'vmstream' });
    t.equal(kernel.status, 201, `round ${round}: kernel started on A`);
    const kernelId = kernel.body.id as string;
    t.equal((await b.get(`/api/kernels/${kernelId}`)).status, 200, `round ${round}: B answers its kernel model`);
    t.equal((await c.get(`/api/v1/sessions/${kernelId}`)).body.session_id, kernelId, `round ${round}: C answers its session`);

    const session = await c.createSession(`round ${round}`);
    t.equal((await a.get(`/api/kernels/${session}`)).status, 200, `round ${round}: a session made on C is a kernel on A at once`);
    t.equal((await b.get(`/api/v1/sessions/${session}`)).body.name, `round ${round}`, `round ${round}: and a session on B`);
  }
});

t.test('a session whose owner key was never written is adopted by a live node, and runs', async (t) => {
  const nc = await connectNats({ servers: cluster.nats.url });
  t.teardown(() => nc.close());
  const kvm = new Kvm(nc);
  const [sessions, owners] = await Promise.all([kvm.open(`${cluster.prefix}_sessions`), kvm.open(`${cluster.prefix}_owners`)]);
  const record: SessionRecord = { session_id: randomUUID(), tenant: 'default', name: 'ownerless', status: 'ready', created_at: Date.now(), execution_count: 0 };
  // What a node that crashed between the session's record and its owner key leaves behind.
  await sessions.create(sessionKey(record.tenant, record.session_id), packSession(record, 'crashed-node'));

  for (const [index, node] of cluster.nodes.entries()) {
    const client = HttpClient.of(node);
    // The request waits for the adoption (a scan every lease), then goes to the adopter.
    const reply = await client.repl(record.session_id, `globalThis.runs = (globalThis.runs ?? 0) + 1; "run " + runs`);
    const events = await client.untilDone(reply.execution_id);
    const done = events.find((event) => event.type === 'done');
    t.equal(done?.payload.status, 'ok', `sent to node ${index}: it ran`);
    t.match(events.find((event) => event.type === 'value')?.payload.preview, `run ${index + 1}`, 'in one context, kept from run to run');
  }
  const owner = await owners.get(encodeId(record.session_id));
  t.equal(owner?.operation, 'PUT', 'it has an owner key now');
  const listed = await HttpClient.of(cluster.nodes[0]!).get('/api/v1/sessions');
  t.ok(listed.body.items.some((item: SessionRecord) => item.session_id === record.session_id), 'and is listed');
});

t.test("a paused owner whose session was taken never overwrites the taker's session record", async (t) => {
  const nc = await connectNats({ servers: cluster.nats.url });
  t.teardown(() => nc.close());
  const kvm = new Kvm(nc);
  const [sessions, owners] = await Promise.all([kvm.open(`${cluster.prefix}_sessions`), kvm.open(`${cluster.prefix}_owners`)]);
  const staleIndex = 2;
  const stale = HttpClient.of(cluster.nodes[staleIndex]!);
  const other = HttpClient.of(cluster.nodes[0]!);
  const session = await stale.createSession('made by the owner');
  const key = sessionKey('default', session);
  const writerNow = async () => unpackSession((await sessions.get(key))!.value).writer;
  const firstWriter = await writerNow();

  const pid = cluster.nodes[staleIndex]!.process.pid!;
  process.kill(pid, 'SIGSTOP');
  let continued = false;
  t.teardown(() => { if (!continued) process.kill(pid, 'SIGCONT'); });
  await until(async () => {
    const owner = await owners.get(encodeId(session));
    return owner?.operation === 'PUT' && (unpack(owner.value) as { node: string }).node !== `node-${staleIndex}`;
  });
  // The taker claims the record before it hosts the session: the paused owner's revision is stale now.
  await until(async () => (await writerNow()) !== firstWriter);
  const renamed = await other.post(`/api/v1/sessions/${session}/rename`, { name: 'by the taker' });
  t.equal(renamed.body.name, 'by the taker', 'renamed on its new owner');
  process.kill(pid, 'SIGCONT');
  continued = true;

  // Whether the continued node has heard of the move yet or not, what it is asked lands on the taker.
  const again = await stale.post(`/api/v1/sessions/${session}/rename`, { name: 'through the old owner' });
  t.equal(again.status, 200, 'a rename sent to the old owner succeeds');
  t.equal(again.body.name, 'through the old owner');
  const stored = unpackSession((await sessions.get(key))!.value);
  t.equal(stored.record.name, 'through the old owner', 'and is the stored record');
  t.not(stored.writer, firstWriter, 'written by the taker, not by the old owner');
  t.comment(`the old owner's session writes refused as fenced: ${cluster.nodes[staleIndex]!.stderr().split('commit of session').length - 1}`);
  for (const node of cluster.nodes) {
    const seen = await HttpClient.of(node).get(`/api/v1/sessions/${session}`);
    t.equal(seen.status, 200, 'every node still finds the session');
  }
});
