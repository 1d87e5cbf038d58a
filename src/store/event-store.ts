/**
 * The durable log behind vmstream: session and execution records, and each execution's events as
 * already-encoded wire frames (so replay sends stored bytes without decoding or re-encoding them).
 *
 * Like abstract-level, the public methods check their arguments and the store's state, then call a
 * backend's `_` method with normalised arguments; a backend (LevelDB today, a distributed log later)
 * implements only those, and every backend passes the one suite in test/store/suite.ts.
 */
import type { ExecutionRecord, SessionRecord } from '../../protocol/types.js';

/** A run of consecutive events of one execution: frames[i] has seq firstSeq + i. */
export interface EventChunk {
  executionId: string;
  firstSeq: number;
  frames: Uint8Array[];
}

export interface StoredEvent {
  seq: number;
  frame: Uint8Array;
}

/** Everything one group commit writes, atomically. */
export interface CommitBatch {
  sessions: SessionRecord[];
  executions: ExecutionRecord[];
  events: EventChunk[];
}

export interface ListExecutionsOptions {
  limit: number;
  /** Newest first (the default, for listings) or oldest first (for replaying a session's inputs). */
  order?: 'newest' | 'oldest';
}

export class StoreError extends Error {
  readonly code: 'STORE_NOT_OPEN' | 'STORE_BAD_ARGUMENT';
  constructor(code: StoreError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
    this.code = code;
  }
}

type StoreState = 'new' | 'open' | 'closing' | 'closed';

export abstract class EventStore {
  #state: StoreState = 'new';

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

  async commit(batch: CommitBatch): Promise<void> {
    this.#assertOpen();
    for (const chunk of batch.events) {
      if (!Number.isSafeInteger(chunk.firstSeq) || chunk.firstSeq < 1) throw badArgument('firstSeq must be a positive integer');
      if (chunk.frames.length === 0) throw badArgument('an event chunk must hold at least one frame');
    }
    if (batch.sessions.length + batch.executions.length + batch.events.length === 0) return;
    await this._commit(batch);
  }

  /** Events of one execution with seq > afterSeq, in order, at most `limit` of them. */
  async readEvents(executionId: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    this.#assertOpen();
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) throw badArgument('afterSeq must be a non-negative integer');
    if (!Number.isSafeInteger(limit) || limit < 1) throw badArgument('limit must be a positive integer');
    return this._readEvents(executionId, afterSeq, limit);
  }

  async getSession(sessionId: string): Promise<SessionRecord | undefined> {
    this.#assertOpen();
    return this._getSession(sessionId);
  }

  async getExecution(executionId: string): Promise<ExecutionRecord | undefined> {
    this.#assertOpen();
    return this._getExecution(executionId);
  }

  async listSessions(): Promise<SessionRecord[]> {
    this.#assertOpen();
    return this._listSessions();
  }

  async listExecutions(sessionId: string, options: ListExecutionsOptions): Promise<ExecutionRecord[]> {
    this.#assertOpen();
    if (!Number.isSafeInteger(options.limit) || options.limit < 1) throw badArgument('limit must be a positive integer');
    return this._listExecutions(sessionId, options.limit, options.order ?? 'newest');
  }

  /** Executions still `queued` or `running`: after a restart, the ones the dead process left behind. */
  async listUnfinishedExecutions(): Promise<ExecutionRecord[]> {
    this.#assertOpen();
    return this._listUnfinishedExecutions();
  }

  /** Terminal executions that ended before `endedBefore` (epoch ms), oldest first, at most `limit`. */
  async listEndedBefore(endedBefore: number, limit: number): Promise<ExecutionRecord[]> {
    this.#assertOpen();
    if (!Number.isSafeInteger(endedBefore) || endedBefore < 0) throw badArgument('endedBefore must be a non-negative integer');
    if (!Number.isSafeInteger(limit) || limit < 1) throw badArgument('limit must be a positive integer');
    return this._listEndedBefore(endedBefore, limit);
  }

  /** Deletes an execution's record, its events and its index entries. */
  async deleteExecution(executionId: string): Promise<void> {
    this.#assertOpen();
    const record = await this._getExecution(executionId);
    if (record) await this._deleteExecution(record);
  }

  #assertOpen(): void {
    if (this.#state !== 'open') throw new StoreError('STORE_NOT_OPEN', `store is ${this.#state}`);
  }

  protected abstract _open(): Promise<void>;
  protected abstract _close(): Promise<void>;
  protected abstract _commit(batch: CommitBatch): Promise<void>;
  protected abstract _readEvents(executionId: string, afterSeq: number, limit: number): Promise<StoredEvent[]>;
  protected abstract _getSession(sessionId: string): Promise<SessionRecord | undefined>;
  protected abstract _getExecution(executionId: string): Promise<ExecutionRecord | undefined>;
  protected abstract _listSessions(): Promise<SessionRecord[]>;
  protected abstract _listExecutions(sessionId: string, limit: number, order: 'newest' | 'oldest'): Promise<ExecutionRecord[]>;
  protected abstract _listUnfinishedExecutions(): Promise<ExecutionRecord[]>;
  protected abstract _listEndedBefore(endedBefore: number, limit: number): Promise<ExecutionRecord[]>;
  protected abstract _deleteExecution(record: ExecutionRecord): Promise<void>;
}

function badArgument(message: string): StoreError {
  return new StoreError('STORE_BAD_ARGUMENT', message);
}
