/**
 * The cluster's KV reads (src/cluster/buckets.ts) on a replicated NATS cluster: 3 nats-servers,
 * R3 buckets. Node B's connection is to `n2`, a follower of every bucket, and the other servers'
 * traffic to `n2` is held back (helpers/nats-cluster.ts) while node A writes through `n0`: `n2`
 * is then behind for certain, not by chance.
 *
 * What is left to chance is who answers a direct get: nats-server 2.9 hands a client's request to a
 * random member of the direct-get group (it prefers its own member only for requests that come
 * over a route). So each read is made READS times at once: on the old handles the chance that none
 * of them lands on `n2` is (2/3)^READS, under 1 in 10 000; the premise (some direct gets through
 * `n2` come back from before the write) is checked the same way. Reads through the leader are
 * right every time.
 *
 * The buckets are first created the way earlier versions did (`allow_direct` on, the client's
 * default), as an operator's cluster has them on disk: this version reads them through their
 * leaders without changing them. Buckets it creates itself have no direct gets.
 */
import t, { type Test } from 'tap';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { openBuckets, type ClusterBuckets } from '../src/cluster/buckets.js';
import { SessionDirectory } from '../src/cluster/directory.js';
import { encodeId, Names, sessionKey } from '../src/store/jetstream/names.js';
import { packSession } from '../src/store/jetstream/records.js';
import { natsClusterFor } from './helpers/nats-cluster.js';

const BUCKETS = ['nodes', 'owners', 'sessions'] as const;
const NODE_TTL_MS = 30_000;
const READS = 24;

// One NATS cluster for the file: three servers forming one are slow to start on a shared machine.
const cluster = await natsClusterFor(t);

async function connectTo(t: Test, url: string): Promise<NatsConnection> {
  const nc = await connect({ servers: [url] });
  t.teardown(() => nc.close());
  return nc;
}

const streamOf = (names: Names, bucket: keyof ClusterBuckets) => `KV_${names.bucket(bucket)}`;

/** Until no bucket's stream leader is the server that will be held back (a leader is never behind). */
async function leadersOff(jsm: JetStreamManager, nc: NatsConnection, names: Names): Promise<void> {
  for (const bucket of BUCKETS) {
    for (;;) {
      const leader = await jsm.streams.info(streamOf(names, bucket)).then((info) => info.cluster?.leader, () => undefined);
      if (leader && leader !== cluster.heldName) break;
      if (leader) await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${streamOf(names, bucket)}`);
      else await new Promise((resolve) => setTimeout(resolve, 50)); // electing
    }
  }
}

/**
 * Holds `n2` back while `write` goes through A and `read` is made READS times on B's connection;
 * lets it go once `n2` has taken every read (it handles a connection's messages in order, so past
 * a flush it has answered them itself or sent them on to another server, whose answer is held).
 */
async function behind<T>(b: NatsConnection, write: () => Promise<unknown>, read: () => Promise<T>): Promise<T[]> {
  let reads: Array<Promise<T>> = [];
  cluster.holdInbound();
  try {
    await write();
    reads = Array.from({ length: READS }, read);
    await b.flush();
  } finally {
    cluster.releaseInbound();
  }
  return Promise.all(reads);
}

/** The revision a direct get of `key` finds through B's server (0: none). */
function directRevision(jsm: JetStreamManager, names: Names, bucket: keyof ClusterBuckets, key: string): Promise<number> {
  return jsm.direct.getMessage(streamOf(names, bucket), { last_by_subj: `$KV.${names.bucket(bucket)}.${key}` }).then((message) => message?.seq ?? 0);
}

/**
 * The premise, per bucket: a direct get through `n2` answers from before a write A has had acked.
 * Until it does: a follower joins the direct-get group once it has caught up (nats-server checks
 * every second).
 */
async function directGetsAreStale(t: Test, jsmB: JetStreamManager, b: NatsConnection, names: Names, old: ClusterBuckets): Promise<void> {
  for (const bucket of BUCKETS) {
    for (;;) {
      let written = 0;
      const seen = await behind(b, async () => (written = await old[bucket].put('probe', new Uint8Array([1]))), () => directRevision(jsmB, names, bucket, 'probe'));
      const stale = seen.filter((revision) => revision < written).length;
      if (stale === 0) continue;
      t.pass(`premise, ${bucket}: ${stale} of ${READS} direct gets through n2 came back from before the write`);
      break;
    }
  }
}

t.test('on buckets an earlier version made with direct gets, B reads what A wrote a moment ago', async (t) => {
  const names = new Names('upgrade');
  const a = await connectTo(t, cluster.url(0));
  const b = await connectTo(t, cluster.url(2));
  const jsmA = await jetstreamManager(a);
  const jsmB = await jetstreamManager(b);
  const kvm = new Kvm(a);
  const create = (bucket: keyof ClusterBuckets): Promise<KV> =>
    // As cluster.ts opened them before: no allow_direct given, so the client turned it on.
    kvm.create(names.bucket(bucket), { history: 1, replicas: 3, ...(bucket === 'nodes' ? { ttl: NODE_TTL_MS } : {}) });
  const [nodes, owners, sessions] = await Promise.all([create('nodes'), create('owners'), create('sessions')]);
  const old: ClusterBuckets = { nodes: nodes!, owners: owners!, sessions: sessions! };
  for (const bucket of BUCKETS) {
    const { config } = await jsmA.streams.info(streamOf(names, bucket));
    t.ok(config.allow_direct && config.num_replicas === 3, `${bucket}: R3 with direct gets, as on disk before`);
  }
  await leadersOff(jsmA, a, names);
  await directGetsAreStale(t, jsmB, b, names, old);

  // This version, on both nodes, over the buckets as they are.
  const atA = await openBuckets(a, names, 3, NODE_TTL_MS);
  const atB = await openBuckets(b, names, 3, NODE_TTL_MS);
  for (const bucket of BUCKETS) t.ok((await jsmA.streams.info(streamOf(names, bucket))).config.allow_direct, `${bucket}: left as it was`);
  const directoryA = new SessionDirectory(atA.owners, atA.sessions);
  // Each read on B by a directory of its own: what one finds, it keeps in its view.
  const directoriesB = Array.from({ length: READS }, () => new SessionDirectory(atB.owners, atB.sessions));
  let next = 0;
  const onB = () => directoriesB[next++ % READS]!;

  // A session created on A a moment ago, looked up on B before B's watch brings it.
  const record = { session_id: 's-1', tenant: 'acme', name: '', status: 'ready' as const, created_at: Date.now(), execution_count: 0 };
  let claimed = 0;
  const found = await behind(
    b,
    async () => {
      claimed = (await directoryA.claim('s-1', { node: 'node-a', epoch: 'e-a' })).revision;
      await atA.sessions.create(sessionKey('acme', 's-1'), packSession(record, 'writer-a'));
    },
    () => onB().lookup('acme', 's-1'),
  );
  t.equal(found.filter((lookup) => lookup.session?.session_id === 's-1').length, READS, 'B finds the session A created, every time (not NOT_FOUND)');
  t.equal(found.filter((lookup) => lookup.owner?.node === 'node-a').length, READS, 'and its owner');

  // Taken over by C: B, whose view still says A, asks KV after its forward to A failed.
  const moved = await behind(
    b,
    () => directoryA.transfer('s-1', { node: 'node-c', epoch: 'e-c' }, claimed),
    () => onB().refreshOwner('s-1'),
  );
  t.equal(moved.filter((owner) => owner?.node === 'node-c').length, READS, 'B sees the new owner, every time');

  // A heartbeat renewed on A's side (membership.ts reads its own key at start and after a failed renewal).
  let beat = 0;
  const beats = await behind(
    b,
    async () => (beat = await atA.nodes.put(encodeId('node-x'), new Uint8Array([2]))),
    () => atB.nodes.get(encodeId('node-x')),
  );
  t.equal(beats.filter((entry) => entry?.revision === beat).length, READS, 'B reads the heartbeat A wrote, every time');
});

t.test('buckets this version creates have no direct gets', async (t) => {
  const nc = await connectTo(t, cluster.url(0));
  const names = new Names('fresh');
  await openBuckets(nc, names, 3, NODE_TTL_MS);
  const jsm = await jetstreamManager(nc);
  for (const bucket of BUCKETS) {
    const { config } = await jsm.streams.info(streamOf(names, bucket));
    t.equal(config.allow_direct, false, `${bucket}: allow_direct off`);
    t.equal(config.num_replicas, 3, `${bucket}: 3 replicas`);
  }
});
