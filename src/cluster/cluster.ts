/**
 * One node of a vmstream cluster (VMSTREAM_STORE=jetstream): its own NATS connection, its
 * membership (membership.ts: heartbeats, who is alive), the cluster-wide session directory
 * (directory.ts: every session and its owner), and the subject on which the other nodes forward it
 * requests (rpc.ts). The event store (src/store/jetstream/) has a connection of its own: a node's
 * liveness does not queue behind its commits.
 *
 *   <P>_nodes    <node id>   Heartbeat {epoch, started_at, sessions}, renewed every heartbeatMs
 *   <P>_owners   <sid>       Owner {node, epoch}: created at session.create, moved by takeover CAS
 *   <P>_sessions <t>.<sid>   SessionRecord (the store writes it; watched here)
 *   <P>.node.<node id>.rpc   requests forwarded to that node (rpc.ts)
 *
 * Keys and subject tokens are base64url ids (store/jetstream/names.ts).
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Names } from '../store/jetstream/names.js';
import { openBuckets } from './buckets.js';
import { SessionDirectory } from './directory.js';
import { KvMirror } from './kv-mirror.js';
import { Membership } from './membership.js';

export interface ClusterOptions {
  servers: string[];
  prefix: string;
  replicas: number;
  nodeId: string;
  heartbeatMs: number;
  leaseMs: number;
  /** Another process is this node now (same VMSTREAM_NODE_ID): this one must stop. */
  onConflict(message: string): void;
  onError(context: string, error: unknown): void;
}

/** The KV TTL of heartbeats: garbage collection of long-gone nodes only, never a liveness signal. */
const NODE_KEY_TTL_MS = 30_000;

export class Cluster {
  readonly names: Names;
  readonly membership: Membership;
  readonly directory: SessionDirectory;
  readonly nc: NatsConnection;
  readonly #mirrors: KvMirror[];
  #connected = true;
  #closing: Promise<void> | undefined;
  /** Called on the next disconnect (see close). */
  #onDisconnect: () => void = () => undefined;

  private constructor(nc: NatsConnection, names: Names, membership: Membership, directory: SessionDirectory, mirrors: KvMirror[]) {
    this.nc = nc;
    this.names = names;
    this.membership = membership;
    this.directory = directory;
    this.#mirrors = mirrors;
  }

  /** Connects, takes this node's id (refused while another live process holds it), loads the directory. */
  static async open(options: ClusterOptions): Promise<Cluster> {
    const names = new Names(options.prefix);
    const nc = await connect({ servers: options.servers, maxReconnectAttempts: -1, reconnectTimeWait: 250, waitOnFirstConnect: true, name: `vmstream ${options.nodeId}` });
    try {
      // Their gets go to each bucket's leader: a follower may answer behind the acks (buckets.ts).
      const { nodes, owners, sessions } = await openBuckets(nc, names, options.replicas, Math.max(NODE_KEY_TTL_MS, 3 * options.leaseMs));
      const directory = new SessionDirectory(owners, sessions);
      const membership = new Membership(nodes, {
        nodeId: options.nodeId,
        heartbeatMs: options.heartbeatMs,
        leaseMs: options.leaseMs,
        sessionCount: () => directory.ownedBy(options.nodeId).length,
        onConflict: options.onConflict,
        onError: (error) => options.onError('heartbeat', error),
      });
      await membership.join();
      const watchError = (what: string) => (error: unknown) => options.onError(`watch of ${what}`, error);
      const mirrors = [
        new KvMirror(nodes, (entry) => membership.observe(entry), watchError('nodes')),
        new KvMirror(owners, (entry) => directory.observeOwner(entry), watchError('owners')),
        new KvMirror(sessions, (entry) => directory.observeSession(entry), watchError('sessions')),
      ];
      await Promise.all(mirrors.map((mirror) => mirror.start()));
      const cluster = new Cluster(nc, names, membership, directory, mirrors);
      void cluster.#watchConnection();
      return cluster;
    } catch (error) {
      await nc.close();
      throw error;
    }
  }

  get nodeId(): string {
    return this.membership.nodeId;
  }

  get epoch(): string {
    return this.membership.epoch;
  }

  /** Connected to NATS (false while it reconnects). */
  get connected(): boolean {
    return this.#connected && !this.nc.isClosed();
  }

  /** For /readyz: connected, and this node's own heartbeat acknowledged within the lease. */
  get ready(): boolean {
    return this.connected && this.membership.current;
  }

  /**
   * Leaves the cluster cleanly (its heartbeat key deleted) and closes the connection. While NATS is
   * down it closes at once instead: a drain ends with a flush that waits for the server's answer,
   * the client redialling it meanwhile; this node's key then runs out its lease as after a crash.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const stopped = Promise.all(this.#mirrors.map((mirror) => mirror.stop()));
    if (this.connected) {
      const lost = new Promise<void>((resolve) => (this.#onDisconnect = resolve));
      const drained = (async () => {
        await this.membership.leave();
        await stopped; // no watch may still be opening when the connection drains (kv-mirror.ts)
        await this.nc.drain();
      })();
      await Promise.race([drained, lost]).catch(() => undefined);
    } else {
      await this.membership.leave();
    }
    await this.nc.close();
    await stopped; // a watch that was opening fails now that the connection is closed
  }

  async #watchConnection(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type === 'disconnect') {
        this.#connected = false;
        this.membership.pause();
        this.#onDisconnect();
      } else if (status.type === 'reconnect') {
        this.#connected = true;
        this.membership.resume();
        for (const mirror of this.#mirrors) mirror.restart();
      }
    }
  }
}
