/**
 * The cluster's KV buckets (`<P>_nodes`, `<P>_owners`, `<P>_sessions`), created when missing, with
 * handles whose gets are answered by each bucket's stream leader, never as direct gets.
 *
 * Why: nats-server 2.9 puts every replica of a bucket that has caught up once (90 % is enough) into
 * the queue group that answers direct gets, keeps it there however far it falls behind, and hands
 * each get to a member at random. With replicas, a get right after another node's write can then
 * be answered by a follower that has not applied it (5–16 of 24 gets through a server held
 * behind, R3 buckets: test/cluster-leader-reads.test.ts). A session created a moment ago on another
 * node would then be NOT_FOUND here (directory.ts `lookup`), a session just taken over would still
 * show its lost owner (`refreshOwner`: forwards wait for the watch instead), and a restarted node
 * could read its previous run's heartbeat key and refuse to start (membership.ts `join`). The
 * leader acknowledges a write only once it holds it, so its answer is never behind a write whose
 * ack anyone has had. These gets are few (a view that has not caught up, a forward that failed, a
 * start), so they go to the leader whatever the replicas (one replica is its own leader anyway),
 * at ~0.1 ms more each (jetstream-store.ts does the same for its buckets when replicated).
 *
 * `allow_direct: false` sets the handle to leader gets. A bucket created now has no direct gets
 * at all; one an earlier version created with them is left as it is and read through its leader
 * all the same: the choice is the client's, so an upgrade needs no change on disk. Turning
 * `allow_direct` off in place would not do: nats-server 2.9.10 accepts the update, but the replicas
 * of an R3 stream go on answering direct gets, stale ones included (measured, seconds after it),
 * and nodes not upgraded yet would lose theirs wherever it did take effect.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import type { Names } from '../store/jetstream/names.js';

export interface ClusterBuckets {
  nodes: KV;
  owners: KV;
  sessions: KV;
}

export async function openBuckets(nc: NatsConnection, names: Names, replicas: number, nodeKeyTtlMs: number): Promise<ClusterBuckets> {
  const kvm = new Kvm(nc);
  const bucket = (name: keyof ClusterBuckets, ttl?: number): Promise<KV> =>
    kvm.create(names.bucket(name), { history: 1, replicas, allow_direct: false, ...(ttl ? { ttl } : {}) });
  const [nodes, owners, sessions] = await Promise.all([bucket('nodes', nodeKeyTtlMs), bucket('owners'), bucket('sessions')]);
  return { nodes: nodes!, owners: owners!, sessions: sessions! };
}
