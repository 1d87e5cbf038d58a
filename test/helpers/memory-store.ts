/**
 * An in-memory EventStore for unit tests, shaped like a remote log rather than like LevelDB: no
 * atomicity across items (each chunk, then each record, lands on its own), a chunk must continue its
 * log (fencing), a resent chunk that is already stored is a no-op (as a deduped publish), several
 * instances can share one location, listings are unordered scans. It passes the shared store suite
 * (test/store-memory.test.ts), so tests built on it test against the contract.
 *
 * `fault` injects failures: it is asked about every item of every commit and may fail it.
 *
 * With `reserve: true` it decides creates without writing (`reserveExecution` answers `written:
 * false`), as the LevelDB backend does: valid for one instance over a location only.
 */
import type { ExecutionRecord, SessionRecord } from '../../protocol/types.js';
import {
  EventStore,
  StoreError,
  type CommitBatch,
  type CommitFailure,
  type CreateResult,
  type Reservation,
  type ReserveOptions,
  type SessionFilter,
  type StoredEvent,
  type StoreErrorCode,
  type StoreSupports,
  type UnfinishedFilter,
} from '../../src/store/event-store.js';

/** What a fault sees of an item; it returns the code to fail it with, or null to let it land. */
export type Fault = (item: Omit<CommitFailure, 'error'> & { firstSeq?: number }) => StoreErrorCode | null;

/** The data every instance over one location shares. */
export interface MemoryLocation {
  sessions: Map<string, SessionRecord>;
  executions: Map<string, ExecutionRecord>;
  logs: Map<string, StoredEvent[]>;
  /** Per execution, the chunks stored: first seq → frame count (what a resend is recognised by). */
  chunks: Map<string, Map<number, number>>;
}

const SUPPORTS: StoreSupports = Object.freeze({ orderedScans: false, sharedLocation: true, fencing: true, follow: false });

export class MemoryEventStore extends EventStore {
  readonly supports = SUPPORTS;
  readonly location: MemoryLocation;
  fault: Fault = () => null;
  /** Commits received (each `_commit` call), for tests that count store round trips. */
  commits = 0;
  /** Reserved ids not yet written, with the winner's record; null when creates are decided by writing. */
  readonly #reserved: Map<string, ExecutionRecord> | null;

  constructor(location?: MemoryLocation, options: { reserve?: boolean } = {}) {
    super();
    this.location = location ?? { sessions: new Map(), executions: new Map(), logs: new Map(), chunks: new Map() };
    this.#reserved = options.reserve ? new Map() : null;
  }

  protected override async _reserveExecution(record: ExecutionRecord, options: ReserveOptions): Promise<Reservation> {
    if (!this.#reserved) return super._reserveExecution(record, options);
    // As LevelDB: an id its caller made up is won without looking.
    const existing = options.fresh ? undefined : this.#reserved.get(record.execution_id) ?? this.location.executions.get(record.execution_id);
    if (existing) return { created: false, record: structuredClone(existing), written: false };
    this.#reserved.set(record.execution_id, record);
    return { created: true, record, written: false };
  }

  protected async _open(): Promise<void> {}
  protected async _close(): Promise<void> {}

  protected async _commit(batch: CommitBatch): Promise<CommitFailure[]> {
    this.commits++;
    // A turn of the event loop, as a remote write takes: callers must not rely on synchronous commits.
    await new Promise((resolve) => setImmediate(resolve));
    const failed: CommitFailure[] = [];
    const failedLogs = new Set<string>();
    for (const chunk of batch.events) {
      const error = this.#fault({ kind: 'events', id: chunk.executionId, firstSeq: chunk.firstSeq }) ?? this.#append(chunk.executionId, chunk.firstSeq, chunk.frames);
      if (error) {
        failed.push({ kind: 'events', id: chunk.executionId, error });
        failedLogs.add(chunk.executionId);
      }
    }
    // A create is written as an update is: records are keyed by id alone, listings scan them all.
    for (const record of [...(batch.creates ?? []), ...batch.executions]) {
      const error = failedLogs.has(record.execution_id)
        ? new StoreError('STORE_UNAVAILABLE', 'its events were not written')
        : this.#fault({ kind: 'execution', id: record.execution_id });
      if (error) failed.push({ kind: 'execution', id: record.execution_id, error });
      else {
        this.location.executions.set(record.execution_id, structuredClone(record));
        this.#reserved?.delete(record.execution_id);
      }
    }
    for (const record of batch.sessions) {
      const error = this.#fault({ kind: 'session', id: record.session_id });
      if (error) failed.push({ kind: 'session', id: record.session_id, error });
      else this.location.sessions.set(record.session_id, structuredClone(record));
    }
    return failed;
  }

  #fault(item: Parameters<Fault>[0]): StoreError | null {
    const code = this.fault(item);
    return code === null ? null : new StoreError(code, `injected ${code} for ${item.kind} ${item.id}`);
  }

  /** Appends a chunk that continues the log; a resend of a stored chunk is a no-op; anything else is fenced. */
  #append(executionId: string, firstSeq: number, frames: Uint8Array[]): StoreError | null {
    let log = this.location.logs.get(executionId);
    if (!log) this.location.logs.set(executionId, (log = []));
    let chunks = this.location.chunks.get(executionId);
    if (!chunks) this.location.chunks.set(executionId, (chunks = new Map()));
    if (chunks.get(firstSeq) === frames.length) return null;
    const last = log.length === 0 ? 0 : log[log.length - 1]!.seq;
    if (firstSeq !== last + 1) return new StoreError('STORE_FENCED', `${executionId}: a chunk from ${firstSeq} does not follow ${last}`);
    frames.forEach((frame, index) => log.push({ seq: firstSeq + index, frame }));
    chunks.set(firstSeq, frames.length);
    return null;
  }

  protected async _createExecution(record: ExecutionRecord): Promise<CreateResult> {
    const existing = this.location.executions.get(record.execution_id);
    if (existing) return { created: false, record: structuredClone(existing) };
    this.location.executions.set(record.execution_id, structuredClone(record));
    // A fresh incarnation: events of an expired execution with this id never come back.
    this.location.logs.delete(record.execution_id);
    this.location.chunks.delete(record.execution_id);
    return { created: true, record };
  }

  protected async _readEvents(executionId: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    const log = this.location.logs.get(executionId) ?? [];
    const start = log.findIndex((event) => event.seq > afterSeq);
    return start < 0 ? [] : log.slice(start, start + limit);
  }

  protected async _lastSeq(executionId: string): Promise<number> {
    const log = this.location.logs.get(executionId);
    return log && log.length > 0 ? log[log.length - 1]!.seq : 0;
  }

  protected async _getExecution(executionId: string): Promise<ExecutionRecord | undefined> {
    const record = this.location.executions.get(executionId);
    return record && structuredClone(record);
  }

  protected async _listSessions(filter: SessionFilter): Promise<SessionRecord[]> {
    return [...this.location.sessions.values()].filter((record) => filter.tenant === undefined || record.tenant === filter.tenant).map((record) => structuredClone(record));
  }

  protected async _listExecutions(sessionId: string, limit: number, order: 'newest' | 'oldest'): Promise<ExecutionRecord[]> {
    const records = [...this.location.executions.values()].filter((record) => record.session_id === sessionId);
    records.sort((a, b) => (order === 'oldest' ? a.number - b.number : b.number - a.number));
    return records.slice(0, limit).map((record) => structuredClone(record));
  }

  protected async _listUnfinished(filter: UnfinishedFilter): Promise<ExecutionRecord[]> {
    return [...this.location.executions.values()]
      .filter((record) => record.ended_at === undefined && (filter.sessionId === undefined || record.session_id === filter.sessionId))
      .map((record) => structuredClone(record));
  }

  protected async _expireEndedBefore(endedBefore: number, limit: number): Promise<number> {
    let count = 0;
    for (const [id, record] of this.location.executions) {
      if (count === limit) break;
      if (record.ended_at === undefined || record.ended_at >= endedBefore) continue;
      this.location.executions.delete(id);
      this.location.logs.delete(id);
      this.location.chunks.delete(id);
      count++;
    }
    return count;
  }
}
