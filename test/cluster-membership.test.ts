/**
 * Membership (src/cluster/membership.ts) in-process against a real nats-server: nodes see each
 * other alive; a node whose heartbeat stops is dead to the others after a lease, by their own
 * timers; its restart under the same id reports the epoch it left; a NATS outage longer than the
 * lease kills nobody (observers pause their timers while their own connection is down), and a
 * heartbeat lost with the connection does not hold back the next one (with a fake bucket: which
 * request is under way when NATS dies is luck against a real one); closing leaves nothing running,
 * whether NATS is down or a watch is being reopened.
 */
import t, { type Test } from 'tap';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { Cluster, type ClusterOptions } from '../src/cluster/cluster.js';
import { KvMirror } from '../src/cluster/kv-mirror.js';
import { Membership } from '../src/cluster/membership.js';
import { FakeHeartbeatBucket } from './helpers/fake-heartbeat-bucket.js';
import { natsFor, type TestNats } from './helpers/nats.js';

const LEASE_MS = 800;

interface Seen {
  alive: Array<[string, string, string | undefined]>;
  dead: Array<[string, string]>;
}

async function node(t: Test, nats: TestNats, prefix: string, nodeId: string, options: Partial<ClusterOptions> = {}): Promise<{ cluster: Cluster; seen: Seen }> {
  const cluster = await Cluster.open({
    servers: [nats.url],
    prefix,
    replicas: 1,
    nodeId,
    heartbeatMs: 100,
    leaseMs: LEASE_MS,
    onConflict: (message) => t.fail(`conflict: ${message}`),
    onError: () => undefined,
    ...options,
  });
  const seen: Seen = { alive: [], dead: [] };
  cluster.membership.on({
    alive: (id, epoch, previous) => seen.alive.push([id, epoch, previous]),
    dead: (id, epoch) => seen.dead.push([id, epoch]),
  });
  t.teardown(() => cluster.close().catch(() => undefined));
  return { cluster, seen };
}

/** Polls a condition (each look is immediate; only the waiting between looks is timed). */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 20));
}

t.test('a node that stops renewing is dead after a lease; its restart says which epoch it left', async (t) => {
  const nats = await natsFor(t);
  const a = await node(t, nats, 'life', 'node-a');
  const b = await node(t, nats, 'life', 'node-b');
  await until(() => a.cluster.membership.isAlive('node-b'));
  t.same(a.seen.alive[0]?.slice(0, 2), ['node-b', b.cluster.epoch], 'A saw B alive, with its epoch');
  t.ok(a.cluster.ready && b.cluster.ready, 'both ready (connected, own heartbeat current)');

  // B's process "dies": its connection goes without a clean leave, so its key stays and stops moving.
  await b.cluster.nc.close();
  await until(() => a.seen.dead.length > 0);
  t.same(a.seen.dead, [['node-b', b.cluster.epoch]], 'dead to A, with the epoch it had');
  t.notOk(a.cluster.membership.isAlive('node-b'));

  const again = await node(t, nats, 'life', 'node-b');
  t.equal(again.cluster.membership.previousEpoch, b.cluster.epoch, 'the restart found the epoch its previous run left');
  await until(() => a.cluster.membership.isAlive('node-b'));
  t.same(a.seen.alive.at(-1), ['node-b', again.cluster.epoch, b.cluster.epoch], 'alive again to A, new epoch, previous one named');
});

t.test('a NATS outage longer than the lease is nobody\'s death', async (t) => {
  const nats = await natsFor(t);
  const a = await node(t, nats, 'outage', 'node-a');
  const b = await node(t, nats, 'outage', 'node-b');
  await until(() => a.cluster.membership.isAlive('node-b') && b.cluster.membership.isAlive('node-a'));
  const before = a.cluster.membership.revisionOf('node-b');

  await nats.kill();
  await until(() => !a.cluster.connected && !b.cluster.connected);
  t.notOk(a.cluster.ready, 'not ready while NATS is gone');
  // The outage itself: twice the lease, in which unpaused timers would have declared everyone dead.
  await new Promise((resolve) => setTimeout(resolve, 2 * LEASE_MS));
  await nats.start();
  // A hears B's heartbeat again (a newer revision of its key): its timer was never allowed to run out.
  await until(() => a.cluster.membership.revisionOf('node-b') > before && b.cluster.membership.revisionOf('node-a') > 0);
  await until(() => a.cluster.ready && b.cluster.ready);
  t.same(a.seen.dead, [], 'A declared nobody dead');
  t.same(b.seen.dead, [], 'nor did B');
  t.ok(a.cluster.membership.isAlive('node-b'), 'B is alive to A');
});

t.test('a heartbeat lost with the connection does not hold back the first one after the reconnect', async (t) => {
  const bucket = new FakeHeartbeatBucket();
  const membership = new Membership(bucket, { nodeId: 'node-a', heartbeatMs: 20, leaseMs: LEASE_MS, onConflict: (message) => t.fail(message), onError: () => undefined });
  await membership.join();
  t.teardown(() => membership.leave());

  // NATS dies with a renewal under way: no answer will ever come (a real one would wait out the
  // 5 s JetStream timeout, while the peers, back first, count this node's lease from their own beat).
  bucket.answering = false;
  await until(() => bucket.updates > 0);
  membership.pause();
  bucket.answering = true;
  const sent = bucket.updates;
  const acknowledged = membership.heartbeats;
  membership.resume();
  // Before the fix nothing was sent until the lost one failed, here never: no point waiting below.
  if (!t.equal(bucket.updates, sent + 1, 'the reconnect sends a heartbeat at once')) return;
  await until(() => membership.heartbeats > acknowledged);
  t.equal(membership.heartbeatFailures, 1, 'the lost one counts as failed, and nothing else failed');
});

t.test('a second live process with the same id is refused', async (t) => {
  const nats = await natsFor(t);
  await node(t, nats, 'twice', 'node-a');
  await t.rejects(node(t, nats, 'twice', 'node-a'), /node id "node-a" is in use by a running node/);
});

t.test('a node closed while NATS is down closes at once and stops redialling', async (t) => {
  const nats = await natsFor(t);
  const a = await node(t, nats, 'down', 'node-a');
  const statuses: string[] = [];
  void (async () => {
    for await (const status of a.cluster.nc.status()) statuses.push(status.type);
  })();
  await nats.kill();
  await until(() => !a.cluster.connected && statuses.includes('reconnecting'));
  // A drain would wait for the dead server's PONG for ever, redialling it every 250 ms meanwhile.
  await a.cluster.close();
  t.ok(a.cluster.nc.isClosed(), 'the connection is closed, not left redialling');
  t.equal(await a.cluster.nc.closed(), undefined, 'and closed without an error');
});

t.test('a mirror stopped while it reopens its watch leaves nothing running once the connection drains', async (t) => {
  const nats = await natsFor(t);
  const timers = () => process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;
  const before = timers();
  const nc = await connect({ servers: [nats.url] });
  const kv = await new Kvm(nc).create('mirror_stop', { history: 1 });
  await kv.put('k', new Uint8Array([1]));
  const mirror = new KvMirror(kv, () => undefined, () => undefined);
  await mirror.start();
  mirror.restart(); // as after a reconnect: a new watch is being opened now
  // What Cluster.close does: the drain must wait for that watch, which would otherwise fail on
  // the draining connection after starting its consumer's 30 s heartbeat monitor, never stopped.
  await mirror.stop();
  await kv.delete('k'); // as membership.leave does: one JetStream round trip, the watch's requests meanwhile under way
  await nc.drain();
  t.equal(timers(), before, 'no timer left running');
});
