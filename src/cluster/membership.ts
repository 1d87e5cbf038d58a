/**
 * Which nodes are alive, as this node sees them. Every node puts a heartbeat under its id into the
 * `<P>_nodes` bucket every `heartbeatMs`, and watches the bucket.
 *
 * Liveness is judged by each observer's own monotonic clock, never by timestamps or KV TTLs (an
 * expired KV key sends watchers no event on nats-server 2.9): a timer per node, reset by every new
 * revision of its key; a node whose key has not moved for `leaseMs` is dead to this observer
 * (`nodeDead`). While this node's own NATS connection is down it cannot see anyone's heartbeat, so
 * the timers are paused, and restarted from zero once this node's own first heartbeat after the
 * reconnect is acknowledged (a restarted NATS takes a while to serve JetStream again, and the
 * others reconnect at their own pace): a NATS restart is not everyone's death. That first heartbeat
 * is sent as soon as the connection is back: one still under way when it dropped is abandoned, not
 * waited for (see `#inFlight`).
 *
 * One process per node id: at start a node refuses an id whose heartbeat is still moving (another
 * live process has it), waiting up to a lease to find out when a recently renewed key of another
 * epoch is there (`previousEpoch`: what a crashed run of this node left). Each heartbeat is a compare-and-set on the
 * key's revision, so a second process that got the id anyway is noticed (`onConflict`) by the older
 * one as soon as the newer one writes.
 *
 * Events (`on`): `alive(id, epoch, previousEpoch?)` when a node is first seen, comes back after being
 * dead, or restarted with a new epoch (`previousEpoch` set); `dead(id, lastEpoch)` after a lease of
 * silence. This node never reports itself.
 */
import { randomUUID } from 'node:crypto';
import type { KV, KvEntry } from '@nats-io/kv';
import { Packr } from 'msgpackr';
import { decodeId, encodeId } from '../store/jetstream/names.js';

/** The value of a node's key in `<P>_nodes`. */
export interface Heartbeat {
  epoch: string;
  started_at: number;
  /** Wall-clock time of this renewal: only a restart of the same node id reads it (see join). */
  at: number;
  /** Sessions this node owns, as it counts them (for operators). */
  sessions: number;
}

export interface MembershipListener {
  alive?(nodeId: string, epoch: string, previousEpoch: string | undefined): void;
  dead?(nodeId: string, lastEpoch: string): void;
}

export interface MembershipOptions {
  nodeId: string;
  heartbeatMs: number;
  leaseMs: number;
  /** For the heartbeat's `sessions`. */
  sessionCount?: () => number;
  /** Another process writes this node's key: this one must stop being this node. */
  onConflict(message: string): void;
  onError(error: unknown): void;
}

/** What membership does with its bucket (a fake in tests). */
export type HeartbeatBucket = Pick<KV, 'get' | 'create' | 'update' | 'delete' | 'watch'>;

interface Peer {
  epoch: string;
  revision: number;
  dead: boolean;
  timer: NodeJS.Timeout | undefined;
}

const packr = new Packr({ useRecords: false });

export class Membership {
  readonly nodeId: string;
  /** Random per start: tells this run of the node from an earlier one with the same id. */
  readonly epoch = randomUUID();
  readonly startedAt = Date.now();
  /** The epoch a previous run of this node left in its key (it did not leave cleanly), if any. */
  previousEpoch: string | undefined;
  /** Heartbeats acknowledged, and renewals refused or failed: for /metrics. */
  heartbeats = 0;
  heartbeatFailures = 0;
  readonly #kv: HeartbeatBucket;
  readonly #options: MembershipOptions;
  readonly #key: string;
  readonly #peers = new Map<string, Peer>();
  readonly #listeners = new Set<MembershipListener>();
  #revision = 0;
  #lastAck: number | undefined;
  #connected = true;
  /** Reconnected, and no heartbeat of ours acknowledged since: peers' timers stay paused. */
  #resuming = false;
  #beating: NodeJS.Timeout | undefined;
  /**
   * The heartbeat under way, if any. A disconnect abandons it (`pause`): its request went down with
   * the connection and no answer comes; waiting for it would hold back every later heartbeat until
   * the JetStream request timeout (5 s, many leases), while the peers, back first, count our lease
   * from their own first heartbeat and declare us dead meanwhile (seen in CI under load).
   */
  #inFlight: object | undefined;
  #stopped = false;

  constructor(kv: HeartbeatBucket, options: MembershipOptions) {
    this.#kv = kv;
    this.#options = options;
    this.nodeId = options.nodeId;
    this.#key = encodeId(options.nodeId);
  }

  /** Takes this node's id (refusing one a live process holds) and writes the first heartbeat. */
  async join(): Promise<void> {
    const entry = await this.#kv.get(this.#key);
    if (entry?.operation === 'PUT') {
      const previous = unpack(entry);
      // A key renewed longer than a lease ago by this host's clock is a dead run's: no need to wait
      // and see. The compare-and-set below and on every heartbeat still catches a live one.
      const recent = Date.now() - (previous.at ?? 0) <= this.#options.leaseMs;
      if (recent && (await this.#stillBeating(entry))) {
        throw new Error(`node id ${JSON.stringify(this.nodeId)} is in use by a running node (started ${new Date(previous.started_at).toISOString()}): give this one another VMSTREAM_NODE_ID`);
      }
      this.previousEpoch = previous.epoch;
    }
    // Conditional on what was read: of two processes starting with one id, one gets it.
    const write = entry ? this.#kv.update(this.#key, this.#value(), entry.revision) : this.#kv.create(this.#key, this.#value());
    this.#revision = await write.catch(() => {
      throw new Error(`node id ${JSON.stringify(this.nodeId)} was taken by another process while this one started`);
    });
    this.#lastAck = performance.now();
    this.heartbeats++;
    this.#beating = setInterval(() => void this.#beat(), this.#options.heartbeatMs);
  }

  /**
   * Leaving cleanly: no more heartbeats, and the key goes, so that a restart need not wait a lease.
   * Cut off from NATS the key stays (a delete would only wait out its request timeout): it runs out
   * its lease as a crashed node's does.
   */
  async leave(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#beating);
    for (const peer of this.#peers.values()) clearTimeout(peer.timer);
    if (this.#connected) await this.#kv.delete(this.#key, { previousSeq: this.#revision }).catch(() => undefined);
  }

  on(listener: MembershipListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Connected to NATS, and this node's own heartbeat was acknowledged within the lease. */
  get current(): boolean {
    return this.#connected && this.heartbeatAgeMs < this.#options.leaseMs;
  }

  /** Milliseconds since this node's heartbeat was last acknowledged (Infinity before the first). */
  get heartbeatAgeMs(): number {
    return this.#lastAck === undefined ? Infinity : performance.now() - this.#lastAck;
  }

  get leaseMs(): number {
    return this.#options.leaseMs;
  }

  /** Whether this observer takes the node for alive (this node always is). */
  isAlive(nodeId: string): boolean {
    if (nodeId === this.nodeId) return true;
    const peer = this.#peers.get(nodeId);
    return peer !== undefined && !peer.dead;
  }

  /** The epoch last seen in a node's heartbeat. */
  epochOf(nodeId: string): string | undefined {
    return nodeId === this.nodeId ? this.epoch : this.#peers.get(nodeId)?.epoch;
  }

  /** The revision of a node's heartbeat key this observer saw last (0: never). */
  revisionOf(nodeId: string): number {
    return nodeId === this.nodeId ? this.#revision : (this.#peers.get(nodeId)?.revision ?? 0);
  }

  /** The nodes this observer takes for alive, this one included, sorted by id. */
  alive(): Array<{ nodeId: string; epoch: string }> {
    const nodes: Array<{ nodeId: string; epoch: string }> = [{ nodeId: this.nodeId, epoch: this.epoch }];
    for (const [nodeId, peer] of this.#peers) if (!peer.dead) nodes.push({ nodeId, epoch: peer.epoch });
    return nodes.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  }

  /** A revision of some node's key, from the bucket's watch (cluster.ts). */
  observe(entry: KvEntry): void {
    if (this.#stopped) return;
    const nodeId = decodeId(entry.key);
    if (entry.operation !== 'PUT') return; // A clean leave: its lease runs out like any silence.
    const { epoch } = unpack(entry);
    if (nodeId === this.nodeId) {
      if (epoch !== this.epoch) this.#options.onConflict(`another process took node id ${JSON.stringify(this.nodeId)}`);
      return;
    }
    const peer = this.#peers.get(nodeId);
    if (!peer) {
      this.#peers.set(nodeId, { epoch, revision: entry.revision, dead: false, timer: this.#timer(nodeId) });
      this.#emit((listener) => listener.alive?.(nodeId, epoch, undefined));
      return;
    }
    clearTimeout(peer.timer);
    peer.timer = this.#timer(nodeId);
    peer.revision = entry.revision;
    const previousEpoch = peer.epoch;
    const back = peer.dead;
    peer.epoch = epoch;
    peer.dead = false;
    if (back || previousEpoch !== epoch) this.#emit((listener) => listener.alive?.(nodeId, epoch, previousEpoch === epoch ? undefined : previousEpoch));
  }

  /** Our NATS connection is down: nobody's silence means anything until it is back. */
  pause(): void {
    this.#connected = false;
    if (this.#inFlight) this.heartbeatFailures++; // abandoned (see #inFlight): it will never be acknowledged
    this.#inFlight = undefined;
    for (const peer of this.#peers.values()) {
      clearTimeout(peer.timer);
      peer.timer = undefined;
    }
  }

  /** Back: once our own heartbeat lands again, every live peer gets a full lease from then. */
  resume(): void {
    this.#connected = true;
    this.#resuming = true;
    if (this.#stopped) return;
    void this.#beat();
  }

  #restartTimers(): void {
    for (const [nodeId, peer] of this.#peers) {
      clearTimeout(peer.timer);
      peer.timer = peer.dead ? undefined : this.#timer(nodeId);
    }
  }

  #timer(nodeId: string): NodeJS.Timeout | undefined {
    if (!this.#connected || this.#resuming) return undefined;
    return setTimeout(() => this.#expire(nodeId), this.#options.leaseMs);
  }

  #expire(nodeId: string): void {
    const peer = this.#peers.get(nodeId);
    if (!peer || peer.dead || !this.#connected || this.#resuming) return;
    peer.dead = true;
    peer.timer = undefined;
    this.#emit((listener) => listener.dead?.(nodeId, peer.epoch));
  }

  #emit(call: (listener: MembershipListener) => void): void {
    for (const listener of this.#listeners) {
      try {
        call(listener);
      } catch (error) {
        this.#options.onError(error);
      }
    }
  }

  async #beat(): Promise<void> {
    if (this.#inFlight || this.#stopped || !this.#connected) return;
    const beat = {};
    this.#inFlight = beat;
    // Abandoned at a disconnect: whatever it learns late is stale, and a newer beat owns the revision.
    const abandoned = () => this.#inFlight !== beat;
    try {
      const revision = await this.#kv.update(this.#key, this.#value(), this.#revision);
      if (abandoned()) return;
      this.#revision = revision;
      this.#lastAck = performance.now();
      this.heartbeats++;
      if (this.#resuming) {
        this.#resuming = false;
        this.#restartTimers();
      }
    } catch (error) {
      if (abandoned()) return;
      this.heartbeatFailures++;
      const revision = await this.#recoverRevision(error);
      if (revision !== undefined && !abandoned()) this.#revision = revision;
    } finally {
      if (!abandoned()) this.#inFlight = undefined;
    }
  }

  /**
   * A renewal was refused or lost: the revision to renew from next. When our key has our epoch at a
   * newer revision, our own write landed without its ack reaching us (NATS restarted): carry on from
   * it. Another epoch there means another process is this node now (undefined, as when NATS is
   * unreachable).
   */
  async #recoverRevision(error: unknown): Promise<number | undefined> {
    const entry = await this.#kv.get(this.#key).catch(() => undefined);
    if (entry === undefined) {
      this.#options.onError(error); // NATS unreachable: the next beat retries.
      return undefined;
    }
    if (entry?.operation === 'PUT' && unpack(entry).epoch !== this.epoch) {
      this.#options.onConflict(`another process took node id ${JSON.stringify(this.nodeId)}`);
      return undefined;
    }
    // Gone (its TTL passed while we were cut off): the next renewal creates it again.
    return entry?.revision ?? 0;
  }

  /** Whether a key another run left is still renewed: waits up to a lease for a new revision. */
  async #stillBeating(entry: KvEntry): Promise<boolean> {
    const watch = await this.#kv.watch({ key: entry.key, resumeFromRevision: entry.revision + 1 });
    const timer = setTimeout(() => watch.stop(), this.#options.leaseMs);
    try {
      for await (const next of watch) if (next.operation === 'PUT' && next.revision > entry.revision) return true;
      return false;
    } finally {
      clearTimeout(timer);
      watch.stop();
    }
  }

  #value(): Uint8Array {
    const heartbeat: Heartbeat = { epoch: this.epoch, started_at: this.startedAt, at: Date.now(), sessions: this.#options.sessionCount?.() ?? 0 };
    return packr.pack(heartbeat);
  }
}

function unpack(entry: KvEntry): Heartbeat {
  return packr.unpack(entry.value) as Heartbeat;
}
