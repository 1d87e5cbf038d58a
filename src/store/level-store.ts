/**
 * The LevelDB backend of EventStore (classic-level). Key layout, all utf8, ids never contain `!`
 * (protocol/schemas.ts ID_PATTERN), and numbers are fixed-width hex so they sort bytewise:
 *
 *   s!<session_id>                          session record
 *   x!<execution_id>                        execution record
 *   i!<session_id>!<number:8>               the session's executions, in order (value: execution_id)
 *   a!<execution_id>                        executions not yet terminal (found again after a crash)
 *   t!<ended_at:12>!<execution_id>          terminal executions by end time (retention)
 *   e!<execution_id>!<last_seq:12>          a chunk of consecutive event frames ending at last_seq
 *
 * Events are stored in chunks (one entry per group commit and execution, at most CHUNK_EVENTS
 * frames), because LevelDB's per-entry cost, not its bytes, bounds replay (measured on a 2-core
 * machine: an iterator yields ~250 000 entries/s, far under what a socket can push; bench's storage
 * baseline measures it again).
 */
import { ClassicLevel } from 'classic-level';
import { Packr } from 'msgpackr';
import type { ExecutionRecord, SessionRecord } from '../../protocol/types.js';
import {
  EventStore,
  type CommitBatch,
  type CommitFailure,
  type CreateResult,
  type SessionFilter,
  type StoredEvent,
  type StoreSupports,
  type UnfinishedFilter,
} from './event-store.js';

type Operation = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

const CHUNK_EVENTS = 256;
const EMPTY = new Uint8Array(0);
const packr = new Packr({ useRecords: false });

const hex = (value: number, width: number) => value.toString(16).padStart(width, '0');
const sessionKey = (id: string) => `s!${id}`;
const executionKey = (id: string) => `x!${id}`;
const indexPrefix = (sessionId: string) => `i!${sessionId}!`;
const indexKey = (record: ExecutionRecord) => `${indexPrefix(record.session_id)}${hex(record.number, 8)}`;
const activeKey = (id: string) => `a!${id}`;
const endedKey = (record: ExecutionRecord) => `t!${hex(record.ended_at ?? 0, 12)}!${record.execution_id}`;
const eventPrefix = (id: string) => `e!${id}!`;
const eventKey = (id: string, lastSeq: number) => `${eventPrefix(id)}${hex(lastSeq, 12)}`;
// '~' sorts after every hex digit and id character, so it closes a prefix range.
const prefixEnd = (prefix: string) => `${prefix}~`;
// classic-level keeps only the low 32 bits of `limit`: anything that large means "all".
const levelLimit = (limit: number) => (limit >= 0x7fffffff ? Infinity : limit);

/** One batch is one atomic LevelDB write, so a failure fails the whole commit; one process per folder. */
const SUPPORTS: StoreSupports = Object.freeze({ orderedScans: true, sharedLocation: false, fencing: false, follow: false });

export class LevelEventStore extends EventStore {
  readonly supports = SUPPORTS;
  readonly location: string;
  readonly #db: ClassicLevel<string, Uint8Array>;
  /**
   * Creates under way, by id. LevelDB's lock makes this instance the folder's only writer, so a
   * read-then-write made exclusive here is a conditional create.
   */
  readonly #creating = new Map<string, Promise<CreateResult>>();
  /** Creates of this turn, written together (one getMany, one batch), as the commit log groups commits. */
  #createQueue: Array<{ record: ExecutionRecord; settle: (result: Promise<CreateResult>) => void }> = [];

  constructor(location: string) {
    super();
    this.location = location;
    this.#db = new ClassicLevel<string, Uint8Array>(location, { keyEncoding: 'utf8', valueEncoding: 'view' });
  }

  protected async _open(): Promise<void> {
    await this.#db.open({ createIfMissing: true });
  }

  protected async _close(): Promise<void> {
    await this.#db.close();
  }

  protected async _commit(batch: CommitBatch): Promise<CommitFailure[]> {
    const operations: Operation[] = [];
    for (const session of batch.sessions) {
      operations.push({ type: 'put', key: sessionKey(session.session_id), value: packr.pack(session) });
    }
    for (const record of batch.executions) pushExecution(operations, record);
    for (const chunk of batch.events) {
      for (let start = 0; start < chunk.frames.length; start += CHUNK_EVENTS) {
        const frames = chunk.frames.slice(start, start + CHUNK_EVENTS);
        const lastSeq = chunk.firstSeq + start + frames.length - 1;
        operations.push({ type: 'put', key: eventKey(chunk.executionId, lastSeq), value: packr.pack(frames) });
      }
    }
    // One atomic write: it lands whole or throws, and EventStore then reports every item failed.
    await this.#db.batch(operations);
    return [];
  }

  protected _createExecution(record: ExecutionRecord): Promise<CreateResult> {
    const id = record.execution_id;
    const inFlight = this.#creating.get(id);
    if (inFlight) return inFlight.then((winner) => ({ created: false, record: winner.record }));
    const creating = new Promise<CreateResult>((resolve) => {
      if (this.#createQueue.push({ record, settle: resolve }) === 1) setImmediate(() => this.#writeCreates());
    }).finally(() => this.#creating.delete(id));
    this.#creating.set(id, creating);
    return creating;
  }

  /** One write for every create of the turn (a write each was one LevelDB write per `execute`). */
  #writeCreates(): void {
    const queue = this.#createQueue;
    this.#createQueue = [];
    const written = (async () => {
      const existing = await this.#db.getMany(queue.map(({ record }) => executionKey(record.execution_id)));
      const operations: Operation[] = [];
      const results = queue.map(({ record }, index): CreateResult => {
        const value = existing[index];
        if (value !== undefined) return { created: false, record: packr.unpack(value) as ExecutionRecord };
        pushExecution(operations, record);
        return { created: true, record };
      });
      if (operations.length > 0) await this.#db.batch(operations);
      return results;
    })();
    queue.forEach(({ settle }, index) => settle(written.then((results) => results[index]!)));
  }

  protected async _lastSeq(executionId: string): Promise<number> {
    const prefix = eventPrefix(executionId);
    for await (const key of this.#db.keys({ gt: prefix, lt: prefixEnd(prefix), reverse: true, limit: 1 })) {
      return Number.parseInt(key.slice(prefix.length), 16);
    }
    return 0;
  }

  protected async _readEvents(executionId: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    const events: StoredEvent[] = [];
    // The first chunk whose last seq passes afterSeq holds afterSeq + 1.
    const iterator = this.#db.iterator({ gt: eventKey(executionId, afterSeq), lt: prefixEnd(eventPrefix(executionId)) });
    try {
      while (events.length < limit) {
        const entries = await iterator.nextv(Math.max(1, Math.ceil((limit - events.length) / CHUNK_EVENTS)));
        if (entries.length === 0) break;
        for (const [key, value] of entries) {
          const frames = packr.unpack(value) as Uint8Array[];
          const lastSeq = Number.parseInt(key.slice(key.lastIndexOf('!') + 1), 16);
          const firstSeq = lastSeq - frames.length + 1;
          for (let i = Math.max(0, afterSeq + 1 - firstSeq); i < frames.length && events.length < limit; i++) {
            events.push({ seq: firstSeq + i, frame: frames[i]! });
          }
        }
      }
    } finally {
      await iterator.close();
    }
    return events;
  }

  protected async _getExecution(executionId: string): Promise<ExecutionRecord | undefined> {
    return this.#getRecord<ExecutionRecord>(executionKey(executionId));
  }

  protected async _listSessions(filter: SessionFilter): Promise<SessionRecord[]> {
    // Sessions are keyed by id alone: a tenant's are found by reading them all. Their number is
    // bounded by the open-session limit per tenant and by what one process serves.
    const sessions: SessionRecord[] = [];
    for await (const value of this.#db.values({ gt: 's!', lt: prefixEnd('s!') })) {
      const record = packr.unpack(value) as SessionRecord;
      if (filter.tenant === undefined || record.tenant === filter.tenant) sessions.push(record);
    }
    return sessions;
  }

  protected async _listExecutions(sessionId: string, limit: number, order: 'newest' | 'oldest'): Promise<ExecutionRecord[]> {
    const prefix = indexPrefix(sessionId);
    const ids: string[] = [];
    for await (const value of this.#db.values({ gt: prefix, lt: prefixEnd(prefix), reverse: order === 'newest', limit: levelLimit(limit) })) {
      ids.push(Buffer.from(value).toString('utf8'));
    }
    return this.#getExecutions(ids);
  }

  protected async _listUnfinished(filter: UnfinishedFilter): Promise<ExecutionRecord[]> {
    // Unfinished executions are the live ones (a few per session): filtering them by session after
    // reading is cheaper than a second index to keep in step.
    const ids: string[] = [];
    for await (const key of this.#db.keys({ gt: 'a!', lt: prefixEnd('a!') })) ids.push(key.slice(2));
    const records = await this.#getExecutions(ids);
    return filter.sessionId === undefined ? records : records.filter((record) => record.session_id === filter.sessionId);
  }

  protected async _expireEndedBefore(endedBefore: number, limit: number): Promise<number> {
    const keys: string[] = [];
    for await (const key of this.#db.keys({ gt: 't!', lt: `t!${hex(endedBefore, 12)}`, limit: levelLimit(limit) })) keys.push(key);
    for (const key of keys) {
      const record = await this._getExecution(key.slice(key.lastIndexOf('!') + 1));
      // An index entry whose record is gone would otherwise come back in every sweep.
      if (record) await this.#delete(record);
      else await this.#db.del(key);
    }
    return keys.length;
  }

  async #delete(record: ExecutionRecord): Promise<void> {
    const operations: Operation[] = [
      { type: 'del', key: executionKey(record.execution_id) },
      { type: 'del', key: indexKey(record) },
      { type: 'del', key: activeKey(record.execution_id) },
      { type: 'del', key: endedKey(record) },
    ];
    await this.#db.batch(operations);
    await this.#db.clear({ gt: eventPrefix(record.execution_id), lt: prefixEnd(eventPrefix(record.execution_id)) });
  }

  async #getRecord<T>(key: string): Promise<T | undefined> {
    const value = await this.#db.get(key);
    return value === undefined ? undefined : (packr.unpack(value) as T);
  }

  async #getExecutions(ids: string[]): Promise<ExecutionRecord[]> {
    if (ids.length === 0) return [];
    const values = await this.#db.getMany(ids.map(executionKey));
    return values.filter((value): value is Uint8Array => value !== undefined).map((value) => packr.unpack(value) as ExecutionRecord);
  }
}

function pushExecution(operations: Operation[], record: ExecutionRecord): void {
  operations.push({ type: 'put', key: executionKey(record.execution_id), value: packr.pack(record) });
  operations.push({ type: 'put', key: indexKey(record), value: Buffer.from(record.execution_id, 'utf8') });
  if (record.ended_at === undefined) {
    operations.push({ type: 'put', key: activeKey(record.execution_id), value: EMPTY });
  } else {
    operations.push({ type: 'del', key: activeKey(record.execution_id) });
    operations.push({ type: 'put', key: endedKey(record), value: EMPTY });
  }
}
