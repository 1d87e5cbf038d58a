/**
 * The durable log behind vmstream: session and execution records, and each execution's events as
 * already-encoded wire frames (so replay sends stored bytes without decoding or re-encoding them).
 *
 * Like abstract-level, the public methods check their arguments and the store's state, then call a
 * backend's `_` method with normalised arguments; a backend (LevelDB today, a distributed log later)
 * implements only those, declares what it can do in `supports`, and passes the one suite in
 * test/store/suite.ts (whose cases for a capability a backend lacks are skipped, by name).
 *
 * The contract is one a remote log can honour: nothing is promised atomic across keys. Within a
 * commit, an execution's events are durable before the record that counts them, so a stored
 * record's `last_seq` may lag its log (`lastSeq` reads the log itself), and a record is never
 * written when its events in the same commit failed. Each item of a commit succeeds or fails alone.
 *
 * An execution's record is written twice on the hot path: when it is created (with the entries that
 * list it by session and as unfinished) and when it ends (with the entry that lists it for
 * retention). A create is either a conditional write of its own (`createExecution`) or, when the
 * backend can decide a create without writing (`reserveExecution`), an item of a later commit, so a
 * short run's create, events and terminal record are one write.
 */
import type { ExecutionRecord, SessionRecord } from '../../protocol/types.js';
import { copyRun, type BinRun } from './frame-chunk.js';

/** A run of consecutive events of one execution: frames[i] has seq firstSeq + i. */
export interface EventChunk {
  executionId: string;
  firstSeq: number;
  frames: Uint8Array[];
}

/** The same as the bins they are stored in (frame-chunk.ts): `count` frames from seq firstSeq, in `runs`. */
export interface BinChunk {
  executionId: string;
  firstSeq: number;
  count: number;
  runs: BinRun[];
}

export interface StoredEvent {
  seq: number;
  frame: Uint8Array;
}

/** What one group commit writes. Items are independent: see CommitResult. */
export interface CommitBatch {
  sessions: SessionRecord[];
  /**
   * New executions whose ids the caller holds (reserved with `reserveExecution`, or known new): each
   * written with its session index entry, and listed as unfinished unless it has already ended.
   * Failures are reported as kind `execution`.
   */
  creates?: ExecutionRecord[];
  /**
   * Later states of executions created before. An update need not touch the session index; a
   * terminal one lists the execution for retention and no longer as unfinished. A terminal record is
   * an execution's last write: nothing of it is committed after it.
   */
  executions: ExecutionRecord[];
  events: EventChunk[];
}

/** One item of a commit that was not written, and why. */
export interface CommitFailure {
  kind: 'session' | 'execution' | 'events';
  /** The session id, or the execution id (of the record or of the chunk). */
  id: string;
  error: StoreError;
}

/** A commit's outcome: every item not listed in `failed` is durable. */
export interface CommitResult {
  failed: CommitFailure[];
}

export interface CreateResult {
  /** True for the one caller whose record was written; false when the id already existed. */
  created: boolean;
  /** The stored record: the caller's when created, the existing one otherwise. */
  record: ExecutionRecord;
}

/** A create decided; `written` says whether it is durable already or must go out in a commit's `creates`. */
export interface Reservation extends CreateResult {
  written: boolean;
}

export interface ReserveOptions {
  /**
   * The caller made the id up just now (a random id nobody else has seen, protocol/ids.ts), so no
   * other create of it can exist: a backend that decides by reading may win it without the read.
   */
  fresh?: boolean;
}

export interface ListExecutionsOptions {
  limit: number;
  /** Newest first (the default, for listings) or oldest first (for replaying a session's inputs). */
  order?: 'newest' | 'oldest';
}

/**
 * Scopes a listing. An empty filter means everything this store holds for the calling server: with
 * LevelDB (one process per store) that is the whole store; a clustered backend adds an owner scope.
 */
export interface SessionFilter {
  tenant?: string;
}

export interface UnfinishedFilter {
  sessionId?: string;
}

/** What a backend can do, as data (abstract-level's `supports`): the suite and callers branch on it. */
export interface StoreSupports {
  /**
   * Listings come from ordered key scans: `expireEndedBefore` with a limit removes the executions
   * that ended first. Without it, it removes any `limit` of those that ended before the cutoff.
   */
  readonly orderedScans: boolean;
  /**
   * Several store instances (processes, nodes) can open one location at once and see each other's
   * writes; `createExecution` is then a race between them that exactly one wins. LevelDB locks its
   * folder to one process, so within it the race is between callers of one instance.
   */
  readonly sharedLocation: boolean;
  /**
   * `commit` refuses a chunk that does not continue its execution's log as stored (a writer that
   * lost ownership, or one appending after the final chunk), failing it alone with STORE_FENCED.
   */
  readonly fencing: boolean;
  /**
   * `follow` tails a log another instance (node) writes, delivering its chunks as they are stored.
   * A store one process owns (LevelDB) has no such logs: every live execution is that process's.
   */
  readonly follow: boolean;
}

/** What a `follow` tells its caller. */
export interface FollowListener {
  /** The next stored events, in order, each seq once: the first chunk starts at afterSeq + 1. */
  chunk(chunk: EventChunk): void;
  /** The follow broke (the store stopped answering): nothing more comes; follow again from the last seq. */
  error(error: StoreError): void;
}

export interface LogFollow {
  stop(): void;
}

export type StoreErrorCode =
  | 'STORE_NOT_OPEN'
  | 'STORE_BAD_ARGUMENT'
  /** A conditional write lost: another writer owns this execution's log now. Not worth retrying. */
  | 'STORE_FENCED'
  /** The backend could not write (I/O error, remote log unreachable): worth retrying. */
  | 'STORE_UNAVAILABLE';

export class StoreError extends Error {
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
    this.code = code;
  }
}

type StoreState = 'new' | 'open' | 'closing' | 'closed';

export abstract class EventStore {
  #state: StoreState = 'new';
  abstract readonly supports: StoreSupports;

  get isOpen(): boolean {
    return this.#state === 'open';
  }

  async open(): Promise<void> {
    if (this.#state === 'open') return;
    await this._open();
    this.#state = 'open';
  }

  async close(): Promise<void> {
    if (this.#state !== 'open') return;
    this.#state = 'closing';
    await this._close();
    this.#state = 'closed';
  }

  /**
   * Writes what it can of `batch` and says what it could not. A bad chunk fails alone, and so does
   * the record of its execution in the same batch (it would count events that are not there); a
   * backend failure fails the items it touched. Rejects only when the store is not open.
   */
  async commit(batch: CommitBatch): Promise<CommitResult> {
    this.#assertOpen();
    const failed: CommitFailure[] = [];
    const badExecutions = new Set<string>();
    const events = batch.events.filter((chunk) => {
      const problem = chunkProblem(chunk);
      if (problem === null) return true;
      failed.push({ kind: 'events', id: chunk.executionId, error: badArgument(problem) });
      badExecutions.add(chunk.executionId);
      return false;
    });
    const unrefused = (record: ExecutionRecord) => {
      if (!badExecutions.has(record.execution_id)) return true;
      failed.push({ kind: 'execution', id: record.execution_id, error: badArgument('its events in this commit were refused') });
      return false;
    };
    const creates = (batch.creates ?? []).filter(unrefused);
    const executions = batch.executions.filter(unrefused);
    const valid: CommitBatch = { sessions: batch.sessions, creates, executions, events };
    if (valid.sessions.length + creates.length + valid.executions.length + valid.events.length === 0) return { failed };
    try {
      failed.push(...(await this._commit(valid)));
    } catch (error) {
      // The backend could not say which items landed: none is reported durable.
      const unavailable = new StoreError('STORE_UNAVAILABLE', `the store could not write: ${(error as Error).message}`, { cause: error });
      failed.push(...itemsOf(valid).map((item) => ({ ...item, error: unavailable })));
    }
    return { failed };
  }

  /**
   * Writes a new execution's record (and its session index entries) unless one with its id exists:
   * one conditional write, the idempotency point of `execute`. Of concurrent creates of one id
   * exactly one gets `created: true`; all get the same record.
   */
  async createExecution(record: ExecutionRecord): Promise<CreateResult> {
    this.#assertOpen();
    if (record.ended_at !== undefined) throw badArgument('a new execution cannot have ended');
    return this._createExecution(record);
  }

  /**
   * Decides a conditional create as `createExecution` does, but may leave the write to the winner's
   * next commit (`written: false`): the winner then commits the record in `creates`, before or with
   * the execution's first events, and until that lands the id stays taken here. A backend that can
   * only decide by writing (several writers share its location) writes now (`written: true`), and
   * the winner commits later states as updates. `fresh`: see ReserveOptions.
   */
  async reserveExecution(record: ExecutionRecord, options: ReserveOptions = {}): Promise<Reservation> {
    this.#assertOpen();
    if (record.ended_at !== undefined) throw badArgument('a new execution cannot have ended');
    return this._reserveExecution(record, options);
  }

  /** Events of one execution with seq > afterSeq, in order, at most `limit` of them. */
  async readEvents(executionId: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    this.#assertRead(afterSeq, limit);
    return this._readEvents(executionId, afterSeq, limit);
  }

  /**
   * The events `readEvents` returns, as one run of consecutive frames from seq afterSeq + 1 (no
   * frames: none stored there), cut before a gap should a backend's log have one. Replay reads
   * this way: a backend that overrides `_readRun` makes no object per event (issue 15).
   * `knownEnd`, when given, is a seq the log is known to reach (committed, or its end): a store
   * may read ahead up to it (the replay cache does, so that a replay's next pages are on their way).
   */
  async readRun(executionId: string, afterSeq: number, limit: number, knownEnd?: number): Promise<EventChunk> {
    this.#assertRead(afterSeq, limit);
    return this._readRun(executionId, afterSeq, limit, knownEnd);
  }

  /**
   * The events `readRun` returns, as the bins they are stored in, with no view of any: what the
   * replay cache keeps, and makes views of only as its readers need them. A backend that stores
   * packed chunks hands over slices of what it read (no copy); by default the frames are copied.
   */
  async readBins(executionId: string, afterSeq: number, limit: number): Promise<BinChunk> {
    this.#assertRead(afterSeq, limit);
    return this._readBins(executionId, afterSeq, limit);
  }

  #assertRead(afterSeq: number, limit: number): void {
    this.#assertOpen();
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) throw badArgument('afterSeq must be a non-negative integer');
    if (!Number.isSafeInteger(limit) || limit < 1) throw badArgument('limit must be a positive integer');
  }

  /** The highest seq in an execution's log (0 when it has none), read from the log, not the record. */
  async lastSeq(executionId: string): Promise<number> {
    this.#assertOpen();
    return this._lastSeq(executionId);
  }

  /**
   * Delivers the events of a log with seq > afterSeq as they are stored, whoever writes them, until
   * `stop` (the log's end is seen by the caller in its `done`). Only where `supports.follow`.
   */
  follow(executionId: string, afterSeq: number, listener: FollowListener): LogFollow {
    this.#assertOpen();
    if (!this.supports.follow) throw badArgument('this store has no logs written elsewhere to follow');
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) throw badArgument('afterSeq must be a non-negative integer');
    return this._follow(executionId, afterSeq, listener);
  }

  async getExecution(executionId: string): Promise<ExecutionRecord | undefined> {
    this.#assertOpen();
    return this._getExecution(executionId);
  }

  /**
   * Makes this instance the writer of a session's record (taking a session over, or back after a
   * restart): returns the record as stored now (`record` when none is), and on a store that fences,
   * the session's previous writer has its next write of the record refused with STORE_FENCED.
   */
  async claimSession(record: SessionRecord): Promise<SessionRecord> {
    this.#assertOpen();
    return this._claimSession(record);
  }

  async listSessions(filter: SessionFilter): Promise<SessionRecord[]> {
    this.#assertOpen();
    return this._listSessions(filter);
  }

  async listExecutions(sessionId: string, options: ListExecutionsOptions): Promise<ExecutionRecord[]> {
    this.#assertOpen();
    if (!Number.isSafeInteger(options.limit) || options.limit < 1) throw badArgument('limit must be a positive integer');
    return this._listExecutions(sessionId, options.limit, options.order ?? 'newest');
  }

  /** Executions still `queued` or `running`: after a restart, the ones the dead process left behind. */
  async listUnfinished(filter: UnfinishedFilter): Promise<ExecutionRecord[]> {
    this.#assertOpen();
    return this._listUnfinished(filter);
  }

  /**
   * Deletes at most `limit` terminal executions (records, index entries, events) that ended before
   * `endedBefore` (epoch ms), and says how many it deleted: fewer than `limit` means none is left.
   */
  async expireEndedBefore(endedBefore: number, limit: number): Promise<number> {
    this.#assertOpen();
    if (!Number.isSafeInteger(endedBefore) || endedBefore < 0) throw badArgument('endedBefore must be a non-negative integer');
    if (!Number.isSafeInteger(limit) || limit < 1) throw badArgument('limit must be a positive integer');
    return this._expireEndedBefore(endedBefore, limit);
  }

  /**
   * Calls `listener` whenever another instance sharing this store's location (another node) may have
   * deleted executions (its retention sweep), so that whatever was read of them and kept (a cache) is
   * dropped: a deleted id may come back as a new execution with other events. A store one process
   * owns has no such deletions. Returns what stops the calls.
   */
  onRemoteExpiry(_listener: () => void): () => void {
    return () => undefined;
  }

  #assertOpen(): void {
    if (this.#state !== 'open') throw new StoreError('STORE_NOT_OPEN', `store is ${this.#state}`);
  }

  protected abstract _open(): Promise<void>;
  protected abstract _close(): Promise<void>;
  /** Writes a batch of valid items; returns the ones it could not write (throwing fails them all). */
  protected abstract _commit(batch: CommitBatch): Promise<CommitFailure[]>;
  protected abstract _createExecution(record: ExecutionRecord): Promise<CreateResult>;

  /** By default a reservation is a create: decided by writing (a fresh id too, so every node can read it at once). */
  protected async _reserveExecution(record: ExecutionRecord, _options: ReserveOptions): Promise<Reservation> {
    return { ...(await this._createExecution(record)), written: true };
  }
  protected abstract _readEvents(executionId: string, afterSeq: number, limit: number): Promise<StoredEvent[]>;
  protected async _readRun(executionId: string, afterSeq: number, limit: number, _knownEnd?: number): Promise<EventChunk> {
    return runOf(executionId, afterSeq, await this._readEvents(executionId, afterSeq, limit));
  }
  protected async _readBins(executionId: string, afterSeq: number, limit: number): Promise<BinChunk> {
    const { frames } = await this._readRun(executionId, afterSeq, limit);
    return { executionId, firstSeq: afterSeq + 1, count: frames.length, runs: frames.length === 0 ? [] : [copyRun(frames, 0, frames.length)] };
  }
  protected abstract _lastSeq(executionId: string): Promise<number>;
  /** Only backends that declare `supports.follow` are asked. */
  protected _follow(_executionId: string, _afterSeq: number, _listener: FollowListener): LogFollow {
    throw badArgument('this store has no logs written elsewhere to follow');
  }
  protected abstract _getExecution(executionId: string): Promise<ExecutionRecord | undefined>;
  /** A store one process owns has no other writer to fence: the record is its own. */
  protected async _claimSession(record: SessionRecord): Promise<SessionRecord> {
    return record;
  }
  protected abstract _listSessions(filter: SessionFilter): Promise<SessionRecord[]>;
  protected abstract _listExecutions(sessionId: string, limit: number, order: 'newest' | 'oldest'): Promise<ExecutionRecord[]>;
  protected abstract _listUnfinished(filter: UnfinishedFilter): Promise<ExecutionRecord[]>;
  protected abstract _expireEndedBefore(endedBefore: number, limit: number): Promise<number>;
}

/** Events read after `afterSeq` as a run from afterSeq + 1, up to the first one out of line. */
export function runOf(executionId: string, afterSeq: number, events: readonly StoredEvent[]): EventChunk {
  const frames: Uint8Array[] = [];
  for (const event of events) {
    if (event.seq <= afterSeq) continue;
    if (event.seq !== afterSeq + 1 + frames.length) break;
    frames.push(event.frame);
  }
  return { executionId, firstSeq: afterSeq + 1, frames };
}

/** A run's events, each with its seq: for the callers that read pages (`readEvents`). */
export function storedEventsOf(run: EventChunk): StoredEvent[] {
  return run.frames.map((frame, index) => ({ seq: run.firstSeq + index, frame }));
}

function chunkProblem(chunk: EventChunk): string | null {
  if (!Number.isSafeInteger(chunk.firstSeq) || chunk.firstSeq < 1) return 'firstSeq must be a positive integer';
  if (chunk.frames.length === 0) return 'an event chunk must hold at least one frame';
  return null;
}

/** Every item of a batch, for reporting them all failed. */
function itemsOf(batch: CommitBatch): Array<Omit<CommitFailure, 'error'>> {
  return [
    ...batch.sessions.map((record) => ({ kind: 'session' as const, id: record.session_id })),
    ...[...(batch.creates ?? []), ...batch.executions].map((record) => ({ kind: 'execution' as const, id: record.execution_id })),
    ...batch.events.map((chunk) => ({ kind: 'events' as const, id: chunk.executionId })),
  ];
}

function badArgument(message: string): StoreError {
  return new StoreError('STORE_BAD_ARGUMENT', message);
}
