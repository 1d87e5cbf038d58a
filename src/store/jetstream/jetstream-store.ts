/**
 * The JetStream backend of EventStore (NATS JetStream, nats-server 2.9): events in one stream
 * (event-log.ts), records in KV buckets, every name under a prefix so that several stores (tests,
 * clusters) share one nats-server. Several instances over one prefix see each other's writes.
 *
 *   <P>_executions     <xid>                 execution record; `create` is the idempotency point
 *   <P>_session_execs  <sid>.<number:8>      the session's executions, in order (value: execution id)
 *   <P>_active         <sid>.<xid>           executions not yet terminal
 *   <P>_sessions       <tenant>.<sid>        session record and its writer (fenced like execution records)
 *   <P>_logs           <xid>                 the log's incarnation (event-log.ts)
 *   <P>_code           <xid>.<hash>.<part>   code too large to sit in its record (records.ts)
 *
 * and the stream <P>_ENDED queues terminal executions in end order for retention (ended-queue.ts).
 * A sweep that deleted executions says so on <P>.expired (core NATS), for the other nodes' caches.
 *
 * Ids are base64url tokens (names.ts). Nothing is atomic across keys: a commit publishes events
 * first and writes the records that count them only once those are acked.
 */
import { randomBytes } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { ExecutionRecord, SessionRecord } from '../../../protocol/types.js';
import {
  EventStore,
  StoreError,
  type CommitBatch,
  type CommitFailure,
  type CreateResult,
  type EventChunk,
  type FollowListener,
  type LogFollow,
  type SessionFilter,
  type StoredEvent,
  type StoreSupports,
  type UnfinishedFilter,
} from '../event-store.js';
import { EndedQueue } from './ended-queue.js';
import { EventLog } from './event-log.js';
import { decodeId, encodeId, hex, Names, sessionKey } from './names.js';
import { AckPublisher } from './publisher.js';
import { packSession, RecordCodec, unpackSession } from './records.js';

export interface JetStreamStoreOptions {
  /** nats://host:port, one or more (a NATS cluster). */
  servers: string[];
  /** Prefix of every stream, bucket and subject ([a-zA-Z0-9_-]). */
  prefix: string;
  /** Replicas of streams and buckets (1 on a single nats-server, 3 on a NATS cluster). */
  replicas?: number;
  /** How long a publish waits for its ack before it counts as unavailable (and is resent). */
  ackTimeoutMs?: number;
  /** How long JetStream recognises a resent chunk by its Msg-Id (default 2 min; set when the stream is created). */
  duplicateWindowMs?: number;
  /**
   * Age at which the stream drops events, in bulk (0: never). Expiring an execution deletes its
   * records and makes its events unreachable; the events themselves go with this age, which must
   * outlast the records (retention + the longest run + a margin).
   */
  maxAgeMs?: number;
}

type Bucket = 'executions' | 'session_execs' | 'active' | 'sessions';

/** JetStream's "wrong last sequence": a conditional write whose expected revision was not the key's. */
const WRONG_LAST_SEQUENCE = 10071;

/** Shared by every node; expiry follows the order executions were committed as ended, not a sorted scan. */
const SUPPORTS: StoreSupports = Object.freeze({ orderedScans: false, sharedLocation: true, fencing: true, follow: true });

export class JetStreamEventStore extends EventStore {
  readonly supports = SUPPORTS;
  readonly options: JetStreamStoreOptions;
  readonly #names: Names;
  #nc: NatsConnection | undefined;
  #kv: Record<Bucket, KV> | undefined;
  #log: EventLog | undefined;
  #publisher: AckPublisher | undefined;
  #records: RecordCodec | undefined;
  #ended: EndedQueue | undefined;

  constructor(options: JetStreamStoreOptions) {
    super();
    this.options = options;
    this.#names = new Names(options.prefix);
  }

  /** Connected to NATS right now (false while it reconnects). */
  get connected(): boolean {
    return this.#nc !== undefined && !this.#nc.isClosed() && this.#connected;
  }

  #connected = false;
  /** The KV revision of each record this instance created and has not ended yet (see #writeRecord). */
  readonly #recordRevisions = new Map<string, number>();
  /** The KV revision of each session record this instance wrote last (see #putSession). */
  readonly #sessionRevisions = new Map<string, number>();
  /** This instance as the writer of session records, and as the sender of its expiry notices. */
  readonly #writer = randomBytes(6).toString('base64url');
  readonly #expiryListeners = new Set<() => void>();

  protected async _open(): Promise<void> {
    // Until NATS answers the store is not open, so the server does not listen (nothing to serve from).
    const nc = await connect({ servers: this.options.servers, maxReconnectAttempts: -1, reconnectTimeWait: 250, waitOnFirstConnect: true, name: 'vmstream' });
    this.#nc = nc;
    this.#connected = true;
    void this.#watchStatus(nc);
    nc.subscribe(this.#names.expiredSubject, {
      callback: (error, message) => {
        if (!error && message.string() !== this.#writer) this.#remoteExpiry();
      },
    });
    const replicas = this.options.replicas ?? 1;
    const jsm = await jetstreamManager(nc);
    const stream = await this.#ensureStream(jsm, replicas);
    // With replicas, nats-server 2.9 lets every replica that has caught up once answer direct gets,
    // and a follower may then answer from behind the acks this process has had (measured on a
    // 3-server cluster: 14 of 300 log ends read right after their commit's ack were one chunk short,
    // and one read of a just-acked chunk came back empty, which a subscriber's catch-up takes for a
    // deleted log). Reads then go to the stream's leader instead, which acks only what it holds;
    // one replica is its own leader, and answers direct gets as they are.
    const leaderReads = stream.replicas > 1;
    const kvm = new Kvm(nc);
    const bucket = (name: Bucket | 'logs' | 'code') => kvm.create(this.#names.bucket(name), { history: 1, replicas, allow_direct: !leaderReads });
    const [executions, session_execs, active, sessions, logs, code] = await Promise.all(
      (['executions', 'session_execs', 'active', 'sessions', 'logs', 'code'] as const).map(bucket),
    );
    await EndedQueue.ensure(this.#names, jsm, replicas);
    this.#kv = { executions: executions!, session_execs: session_execs!, active: active!, sessions: sessions! };
    this.#records = new RecordCodec(code!);
    this.#publisher = new AckPublisher(nc, this.options.ackTimeoutMs ?? 5_000);
    this.#log = new EventLog(this.#names, jsm, logs!, this.#publisher, stream.lastSeq, leaderReads);
    this.#ended = new EndedQueue(this.#names, jsm, this.#publisher);
  }

  protected async _close(): Promise<void> {
    this.#publisher?.close();
    await this.#nc?.drain().catch(() => this.#nc?.close());
    this.#nc = undefined;
    this.#connected = false;
  }

  /**
   * Creates the event stream when missing (and sets its max age when that changed); returns its last
   * stream seq and its replicas (as created: another node may have made it).
   */
  async #ensureStream(jsm: JetStreamManager, replicas: number): Promise<{ lastSeq: number; replicas: number }> {
    const name = this.#names.eventStream;
    const maxAge = (this.options.maxAgeMs ?? 0) * 1_000_000;
    const existing = await jsm.streams.info(name).catch(() => undefined);
    if (existing) {
      if (existing.config.max_age !== maxAge) await jsm.streams.update(name, { max_age: maxAge });
      return { lastSeq: existing.state.last_seq, replicas: existing.config.num_replicas };
    }
    const created = await jsm.streams.add({
      name,
      subjects: [this.#names.eventSubjects],
      allow_direct: true,
      duplicate_window: (this.options.duplicateWindowMs ?? 120_000) * 1_000_000,
      num_replicas: replicas,
      max_msg_size: 1024 * 1024,
      max_age: maxAge,
    });
    return { lastSeq: created.state.last_seq, replicas: created.config.num_replicas };
  }

  async #watchStatus(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') this.#connected = false;
      if (status.type === 'reconnect') {
        this.#connected = true;
        // Notices sent while this instance was away are lost: as if one had come.
        this.#remoteExpiry();
      }
    }
  }

  override onRemoteExpiry(listener: () => void): () => void {
    this.#expiryListeners.add(listener);
    return () => this.#expiryListeners.delete(listener);
  }

  #remoteExpiry(): void {
    for (const listener of this.#expiryListeners) listener();
  }

  protected async _commit(batch: CommitBatch): Promise<CommitFailure[]> {
    const failed: CommitFailure[] = [];
    // Phase 1: events, each execution's chunks in order, executions side by side.
    const refused = new Map<string, StoreError>();
    await Promise.all(
      [...groupByExecution(batch.events)].map(async ([executionId, chunks]) => {
        try {
          await this.#log!.append(executionId, chunks);
        } catch (error) {
          const storeError = asStoreError(error);
          refused.set(executionId, storeError);
          failed.push({ kind: 'events', id: executionId, error: storeError });
        }
      }),
    );
    // Phase 2: records, but none that would count events that are not there.
    const writes: Array<Promise<void>> = [];
    const attempt = (kind: CommitFailure['kind'], id: string, write: () => Promise<unknown>) =>
      writes.push(write().then(() => undefined, (error: unknown) => void failed.push({ kind, id, error: asStoreError(error) })));
    for (const session of batch.sessions) attempt('session', session.session_id, () => this.#putSession(session));
    // A create (its id reserved by its writer) is put as an update is: #putExecution indexes every record.
    for (const record of [...(batch.creates ?? []), ...batch.executions]) {
      const problem = refused.get(record.execution_id);
      if (problem) failed.push({ kind: 'execution', id: record.execution_id, error: problem });
      else attempt('execution', record.execution_id, () => this.#putExecution(record));
    }
    await Promise.all(writes);
    return failed;
  }

  protected async _createExecution(record: ExecutionRecord): Promise<CreateResult> {
    const kv = this.#kv!;
    const key = encodeId(record.execution_id);
    try {
      this.#recordRevisions.set(record.execution_id, await kv.executions.create(key, await this.#records!.pack(record)));
    } catch (error) {
      const existing = await this._getExecution(record.execution_id);
      if (existing) return { created: false, record: existing };
      throw asStoreError(error);
    }
    await Promise.all([kv.session_execs.put(indexKey(record), utf8(record.execution_id)), kv.active.put(activeKey(record), new Uint8Array(0))]);
    return { created: true, record };
  }

  protected _readEvents(executionId: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    return this.#log!.read(executionId, afterSeq, limit);
  }

  protected override _follow(executionId: string, afterSeq: number, listener: FollowListener): LogFollow {
    return this.#log!.follow(executionId, afterSeq, listener);
  }

  protected _lastSeq(executionId: string): Promise<number> {
    return this.#log!.lastSeq(executionId);
  }

  protected async _getExecution(executionId: string): Promise<ExecutionRecord | undefined> {
    const entry = await this.#kv!.executions.get(encodeId(executionId));
    return entry && entry.operation === 'PUT' ? this.#records!.unpack(entry.value) : undefined;
  }

  protected async _listSessions(filter: SessionFilter): Promise<SessionRecord[]> {
    const keys = await this.#keys('sessions', filter.tenant === undefined ? '>' : `${encodeId(filter.tenant)}.>`);
    const entries = await Promise.all(keys.map((key) => this.#kv!.sessions.get(key)));
    return entries.flatMap((entry) => (entry?.operation === 'PUT' ? [unpackSession(entry.value).record] : []));
  }

  /**
   * Rewrites the stored record unchanged, as this instance's, by compare-and-set: the previous
   * writer's next write then finds another revision, and another writer's name on it, and is fenced.
   */
  protected override async _claimSession(record: SessionRecord): Promise<SessionRecord> {
    const kv = this.#kv!.sessions;
    const key = sessionKey(record.tenant, record.session_id);
    for (;;) {
      const stored = await kv.get(key);
      if (stored?.operation !== 'PUT') return record;
      const current = unpackSession(stored.value).record;
      try {
        this.#sessionRevisions.set(record.session_id, await kv.update(key, packSession(current, this.#writer), stored.revision));
        return current;
      } catch (error) {
        // Written meanwhile (by its previous writer, not fenced yet): claimed again over that write.
        if ((error as { code?: number }).code !== WRONG_LAST_SEQUENCE) throw asStoreError(error);
      }
    }
  }

  protected async _listExecutions(sessionId: string, limit: number, order: 'newest' | 'oldest'): Promise<ExecutionRecord[]> {
    const keys = (await this.#keys('session_execs', `${encodeId(sessionId)}.>`)).sort();
    if (order === 'newest') keys.reverse();
    const ids = await Promise.all(keys.slice(0, Math.min(limit, keys.length)).map((key) => this.#kv!.session_execs.get(key)));
    const records = await Promise.all(ids.map((entry) => (entry?.operation === 'PUT' ? this._getExecution(Buffer.from(entry.value).toString('utf8')) : undefined)));
    return records.filter((record): record is ExecutionRecord => record !== undefined);
  }

  protected async _listUnfinished(filter: UnfinishedFilter): Promise<ExecutionRecord[]> {
    const keys = await this.#keys('active', filter.sessionId === undefined ? '>' : `${encodeId(filter.sessionId)}.>`);
    const records = await Promise.all(keys.map((key) => this._getExecution(decodeId(key.slice(key.indexOf('.') + 1)))));
    // An `active` key outlives its record's end by a moment (separate writes): the record decides.
    return records.filter((record): record is ExecutionRecord => record !== undefined && record.ended_at === undefined);
  }

  protected async _expireEndedBefore(endedBefore: number, limit: number): Promise<number> {
    const deleted = await this.#ended!.sweep(endedBefore, limit, async (executionId, endedAt) => {
      const record = await this._getExecution(executionId);
      // The record may be gone already, or belong to a later execution that reused the id.
      if (!record || record.ended_at !== endedAt) return false;
      await this.#delete(record);
      return true;
    });
    if (deleted > 0) this.#nc!.publish(this.#names.expiredSubject, this.#writer);
    return deleted;
  }

  async #delete(record: ExecutionRecord): Promise<void> {
    const kv = this.#kv!;
    const stored = await kv.executions.get(encodeId(record.execution_id));
    await this.#log!.forget(record.execution_id);
    await Promise.all([
      kv.session_execs.delete(indexKey(record)),
      kv.active.delete(activeKey(record)),
      kv.executions.delete(encodeId(record.execution_id)),
      stored?.operation === 'PUT' ? this.#records!.deleteCode(stored.value) : undefined,
    ]);
  }

  /**
   * Writes a session record as an update of the revision this instance wrote last (a new session's
   * first write is a create), so that a node that lost the session (paused past its lease, and
   * claimed by its taker: `claimSession`) cannot overwrite the taker's record: STORE_FENCED. A
   * refused write that finds this instance's own write stored (its ack was lost) goes on over it.
   */
  async #putSession(session: SessionRecord): Promise<void> {
    const kv = this.#kv!.sessions;
    const key = sessionKey(session.tenant, session.session_id);
    const value = packSession(session, this.#writer);
    let expected = this.#sessionRevisions.get(session.session_id);
    for (;;) {
      try {
        this.#sessionRevisions.set(session.session_id, await (expected === undefined ? kv.create(key, value) : kv.update(key, value, expected)));
        return;
      } catch (error) {
        if ((error as { code?: number }).code !== WRONG_LAST_SEQUENCE) throw error;
        const stored = await kv.get(key);
        if (stored?.operation !== 'PUT' || unpackSession(stored.value).writer !== this.#writer) {
          this.#sessionRevisions.delete(session.session_id);
          throw new StoreError('STORE_FENCED', `the record of session ${session.session_id} is written by another node (this one lost the session)`);
        }
        expected = stored.revision;
      }
    }
  }

  async #putExecution(record: ExecutionRecord): Promise<void> {
    const kv = this.#kv!;
    // First, and alone: a record refused as fenced must not touch the indexes either.
    await this.#writeRecord(record);
    const writes: Array<Promise<unknown>> = [kv.session_execs.put(indexKey(record), utf8(record.execution_id))];
    if (record.ended_at === undefined) {
      writes.push(kv.active.put(activeKey(record), new Uint8Array(0)));
    } else {
      writes.push(this.#ended!.push(record.execution_id, record.ended_at));
      // Its `done` is durable (events before records): no more appends, so no head to keep.
      this.#log!.release(record.execution_id);
      writes.push(kv.active.delete(activeKey(record)));
    }
    await Promise.all(writes);
  }

  /**
   * Writes an execution record as an update of the revision this instance last wrote (it created
   * the record), so that an owner that lost its session (paused past its lease) cannot overwrite
   * the end its taker wrote: STORE_FENCED. A refused update whose stored record has not ended (or
   * ended as this one says) was this instance's own write whose ack was lost (NATS restarted): it is
   * written again over it (or taken as written). A record this instance did not create (a taker's
   * end, a restart's recovery) is put as it is.
   */
  async #writeRecord(record: ExecutionRecord): Promise<void> {
    const kv = this.#kv!.executions;
    const id = record.execution_id;
    const key = encodeId(id);
    const value = await this.#records!.pack(record);
    let expected = this.#recordRevisions.get(id);
    for (;;) {
      try {
        const revision = await (expected === undefined ? kv.put(key, value) : kv.update(key, value, expected));
        if (record.ended_at === undefined) this.#recordRevisions.set(id, revision);
        else this.#recordRevisions.delete(id);
        return;
      } catch (error) {
        if (expected === undefined || (error as { code?: number }).code !== WRONG_LAST_SEQUENCE) throw error;
        const stored = await kv.get(key);
        const current = stored?.operation === 'PUT' ? await this.#records!.unpack(stored.value) : undefined;
        if (current?.ended_at !== undefined) {
          this.#recordRevisions.delete(id);
          // Our own end, landed without its ack: done.
          if (current.ended_at === record.ended_at && current.status === record.status) return;
          throw new StoreError('STORE_FENCED', `the record of ${id} was ended by another node (this one lost its session)`);
        }
        expected = stored?.revision ?? 0;
      }
    }
  }

  async #keys(bucket: Bucket, filter: string): Promise<string[]> {
    // A key written again while the listing runs (an index entry rewritten at its execution's end)
    // can be delivered twice: a session's listing showed one execution twice on a cluster.
    const keys = new Set<string>();
    for await (const key of await this.#kv![bucket].keys(filter)) keys.add(key);
    return [...keys];
  }

}

const indexKey = (record: ExecutionRecord) => `${encodeId(record.session_id)}.${hex(record.number, 8)}`;
const activeKey = (record: ExecutionRecord) => `${encodeId(record.session_id)}.${encodeId(record.execution_id)}`;
const utf8 = (text: string) => Buffer.from(text, 'utf8');

function groupByExecution(chunks: EventChunk[]): Map<string, EventChunk[]> {
  const groups = new Map<string, EventChunk[]>();
  for (const chunk of chunks) {
    const group = groups.get(chunk.executionId);
    if (group) group.push(chunk);
    else groups.set(chunk.executionId, [chunk]);
  }
  return groups;
}

function asStoreError(error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  return new StoreError('STORE_UNAVAILABLE', `NATS: ${(error as Error).message}`, { cause: error });
}
