/**
 * The LevelDB backend of EventStore (classic-level). Key layout, all utf8, ids never contain `!`
 * (protocol/schemas.ts ID_PATTERN), and numbers are fixed-width hex so they sort bytewise:
 *
 *   s!<session_id>                          session record
 *   x!<execution_id>                        execution record; a terminal one may carry its log's tail
 *   i!<session_id>!<number:8>               the session's executions, in order (value: execution_id)
 *   a!<execution_id>                        executions not yet terminal (found again after a crash)
 *   t!<ended_at:12>!<execution_id>          terminal executions by end time (retention)
 *   e!<execution_id>!<last_seq:12>          a chunk of consecutive event frames ending at last_seq
 *
 * An execution costs three entries when its create and its end go out in one batch (a short run):
 * `x` (its terminal record, holding the run's few events as the tail of its log), `i` and `t`. When
 * the run outlives the batch of its create, six: `x`, `i`, `a` at creation, then `x`, `a` deleted and
 * `t` at the end. The index and markers are written at creation and at the end only; updates in
 * between (there are none on the hot path) rewrite `x` alone.
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
  storedEventsOf,
  type BinChunk,
  type CommitBatch,
  type CommitFailure,
  type EventChunk,
  type CreateResult,
  type Reservation,
  type ReserveOptions,
  type SessionFilter,
  type StoredEvent,
  type StoreSupports,
  type UnfinishedFilter,
} from './event-store.js';
import { copyRun, frameCount, packFrames, readRuns, sliceBins, type BinRun } from './frame-chunk.js';

type Operation = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

const CHUNK_EVENTS = 256;
/**
 * What one `nextv` of an events read may hold. classic-level's default (16 KiB) stops at the first
 * chunk of 256 frames, so a page of 1 024 events took four round trips to LevelDB's thread; this
 * lets a page come in one (the count asked for still bounds it).
 */
const READ_BYTES = 1024 * 1024;
/** A terminal record carries its last chunk when that chunk is this small (a short run's value and done). */
const TAIL_EVENTS = 16;
const TAIL_BYTES = 4096;
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
   * Ids decided for a create and not yet durable, each with its decision: LevelDB's lock makes this
   * instance the folder's only writer, so a read-then-write made exclusive here is a conditional
   * create. A winner's id stays here until the commit that writes its record lands.
   */
  readonly #claims = new Map<string, Promise<CreateResult>>();
  /** Decisions of this turn, read together (one getMany), as the commit log groups commits. */
  #decideQueue: Array<{ record: ExecutionRecord; settle: (result: Promise<CreateResult>) => void }> = [];

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
    const creates = batch.creates ?? [];
    const ending = new Map<string, number>();
    for (const record of [...creates, ...batch.executions]) if (record.ended_at !== undefined) ending.set(record.execution_id, record.last_seq);
    const tails = new Map<string, Uint8Array[]>();
    for (const chunk of batch.events) pushChunk(operations, chunk, tails, ending);
    for (const record of creates) pushRecord(operations, record, tails.get(record.execution_id), true);
    for (const record of batch.executions) pushRecord(operations, record, tails.get(record.execution_id), false);
    // One atomic write: it lands whole or throws, and EventStore then reports every item failed
    // (claims stay: the commit log sends the creates again).
    await this.#db.batch(operations);
    for (const record of creates) this.#claims.delete(record.execution_id);
    return [];
  }

  protected async _createExecution(record: ExecutionRecord): Promise<CreateResult> {
    const reservation = await this._reserveExecution(record, {});
    if (!reservation.created) return { created: false, record: reservation.record };
    const operations: Operation[] = [];
    pushRecord(operations, record, undefined, true);
    try {
      await this.#db.batch(operations);
    } finally {
      this.#claims.delete(record.execution_id);
    }
    return { created: true, record };
  }

  protected override _reserveExecution(record: ExecutionRecord, { fresh = false }: ReserveOptions): Promise<Reservation> {
    // Nobody else has the id, so there is nothing to read, and nothing to claim against (a read here
    // is a turn and a trip to LevelDB's thread pool before the run can start: ~0.1 ms of `execute`).
    if (fresh) return Promise.resolve({ created: true, record, written: false });
    const id = record.execution_id;
    const claim = this.#claims.get(id);
    if (claim) return claim.then((winner) => ({ created: false, record: winner.record, written: false }));
    const deciding = new Promise<CreateResult>((resolve) => {
      if (this.#decideQueue.push({ record, settle: resolve }) === 1) setImmediate(() => this.#decide());
    });
    this.#claims.set(id, deciding);
    // Only a winner keeps its claim, until its record is written.
    deciding.then((result) => !result.created && this.#claims.delete(id), () => this.#claims.delete(id));
    return deciding.then((result) => ({ ...result, written: false }));
  }

  /** One read for every decision of the turn (a read each was one LevelDB read per `execute`). */
  #decide(): void {
    const queue = this.#decideQueue;
    this.#decideQueue = [];
    const existing = this.#db.getMany(queue.map(({ record }) => executionKey(record.execution_id)));
    queue.forEach(({ record, settle }, index) => settle(existing.then((values): CreateResult => {
      const value = values[index];
      return value === undefined ? { created: true, record } : { created: false, record: unpackRecord(value).record };
    })));
  }

  protected async _lastSeq(executionId: string): Promise<number> {
    const stored = await this.#getEntry(executionId);
    if (stored?.tail) return stored.record.last_seq;
    const prefix = eventPrefix(executionId);
    for await (const key of this.#db.keys({ gt: prefix, lt: prefixEnd(prefix), reverse: true, limit: 1 })) {
      return Number.parseInt(key.slice(prefix.length), 16);
    }
    return 0;
  }

  protected async _readEvents(executionId: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    return storedEventsOf(await this._readRun(executionId, afterSeq, limit));
  }

  /** The chunks' frames as views into the values LevelDB returned: no copy, no object per event but the view. */
  protected override async _readRun(executionId: string, afterSeq: number, limit: number): Promise<EventChunk> {
    const { count, runs } = await this._readBins(executionId, afterSeq, limit);
    const frames: Uint8Array[] = [];
    readRuns(runs, 0, count, frames);
    return { executionId, firstSeq: afterSeq + 1, frames };
  }

  /** Slices of the values LevelDB returned: their headers checked, no view made, nothing copied. */
  protected override async _readBins(executionId: string, afterSeq: number, limit: number): Promise<BinChunk> {
    const runs: BinRun[] = [];
    let count = 0;
    // The first chunk whose last seq passes afterSeq holds afterSeq + 1.
    const iterator = this.#db.iterator({ gt: eventKey(executionId, afterSeq), lt: prefixEnd(eventPrefix(executionId)), highWaterMarkBytes: READ_BYTES });
    let gap = false;
    try {
      while (count < limit && !gap) {
        const entries = await iterator.nextv(Math.max(1, Math.ceil((limit - count) / CHUNK_EVENTS)));
        if (entries.length === 0) break;
        for (const [key, value] of entries) {
          const lastSeq = Number.parseInt(key.slice(key.lastIndexOf('!') + 1), 16);
          // Where seq afterSeq + 1 + count is in this chunk: before its start is a gap (nothing taken).
          const from = afterSeq + 1 + count - (lastSeq - frameCount(value) + 1);
          gap = from < 0;
          if (gap) break;
          const run = sliceBins(value, from, from + limit - count);
          runs.push(run);
          count += run.count;
          if (count === limit) break;
        }
      }
    } finally {
      await iterator.close();
    }
    if (count < limit && !gap) {
      const stored = await this.#getEntry(executionId);
      const from = stored?.tail ? afterSeq + 1 + count - (stored.record.last_seq - stored.tail.length + 1) : -1;
      if (stored?.tail && from >= 0 && from < stored.tail.length) {
        const run = copyRun(stored.tail, from, Math.min(stored.tail.length, from + limit - count));
        runs.push(run);
        count += run.count;
      }
    }
    return { executionId, firstSeq: afterSeq + 1, count, runs };
  }

  protected async _getExecution(executionId: string): Promise<ExecutionRecord | undefined> {
    return (await this.#getEntry(executionId))?.record;
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

  async #getEntry(executionId: string): Promise<StoredRecord | undefined> {
    const value = await this.#db.get(executionKey(executionId));
    return value === undefined ? undefined : unpackRecord(value);
  }

  async #getExecutions(ids: string[]): Promise<ExecutionRecord[]> {
    if (ids.length === 0) return [];
    const values = await this.#db.getMany(ids.map(executionKey));
    return values.filter((value): value is Uint8Array => value !== undefined).map((value) => unpackRecord(value).record);
  }
}

/** An `x` entry: the record alone, or `[record, tail]` for a terminal record that holds its log's last frames. */
interface StoredRecord {
  record: ExecutionRecord;
  tail?: Uint8Array[];
}

function unpackRecord(value: Uint8Array): StoredRecord {
  const stored = packr.unpack(value) as ExecutionRecord | [ExecutionRecord, Uint8Array[]];
  return Array.isArray(stored) ? { record: stored[0], tail: stored[1] } : { record: stored };
}

/**
 * An execution's chunk, as entries of at most CHUNK_EVENTS frames; or, when it is small and ends
 * the log of a record ending in this batch (`ending`: id → terminal last_seq), kept aside in `tails`
 * for that record to carry.
 */
function pushChunk(operations: Operation[], chunk: EventChunk, tails: Map<string, Uint8Array[]>, ending: Map<string, number>): void {
  const lastSeq = chunk.firstSeq + chunk.frames.length - 1;
  if (ending.get(chunk.executionId) === lastSeq && chunk.frames.length <= TAIL_EVENTS && bytesOf(chunk.frames) <= TAIL_BYTES) {
    tails.set(chunk.executionId, chunk.frames);
    return;
  }
  for (let start = 0; start < chunk.frames.length; start += CHUNK_EVENTS) {
    const end = Math.min(chunk.frames.length, start + CHUNK_EVENTS);
    operations.push({ type: 'put', key: eventKey(chunk.executionId, chunk.firstSeq + end - 1), value: packFrames(chunk.frames, start, end) });
  }
}

/** A record with the entries its step needs: index and unfinished marker at creation, retention marker at the end. */
function pushRecord(operations: Operation[], record: ExecutionRecord, tail: Uint8Array[] | undefined, created: boolean): void {
  operations.push({ type: 'put', key: executionKey(record.execution_id), value: packr.pack(tail ? [record, tail] : record) });
  if (created) operations.push({ type: 'put', key: indexKey(record), value: Buffer.from(record.execution_id, 'utf8') });
  if (record.ended_at === undefined) {
    if (created) operations.push({ type: 'put', key: activeKey(record.execution_id), value: EMPTY });
  } else {
    if (!created) operations.push({ type: 'del', key: activeKey(record.execution_id) });
    operations.push({ type: 'put', key: endedKey(record), value: EMPTY });
  }
}

function bytesOf(frames: Uint8Array[]): number {
  let bytes = 0;
  for (const frame of frames) bytes += frame.length;
  return bytes;
}
