/**
 * Group commit: everything appended while one LevelDB batch is being written goes out together in
 * the next one, so the store sees one write per busy tick instead of one per event (a batch of 256
 * puts is ~15x the rate of awaited single puts here). Events reach sockets only after the batch that
 * holds them is durable: an event any client has seen survives `kill -9`.
 */
import type { ExecutionRecord, SessionRecord } from '../../protocol/types.js';
import type { CommitBatch, EventChunk, EventStore } from '../store/event-store.js';

/** What a commit made durable for one execution, handed on for delivery. */
export interface CommittedChunk {
  executionId: string;
  firstSeq: number;
  frames: Uint8Array[];
}

/** The execution-side state the log reads and advances. */
export interface CommitTarget {
  readonly record: ExecutionRecord;
  /** Highest seq that is durable. */
  committedSeq: number;
}

/** Told of each successful store write: how many records and events it held, and how long it took. */
export type BatchObserver = (items: number, seconds: number) => void;

interface PendingChunk { target: CommitTarget; firstSeq: number; frames: Uint8Array[] }

const RETRY_DELAY_MS = 200;

export class CommitLog {
  readonly #store: EventStore;
  readonly #onCommitted: (chunks: CommittedChunk[]) => void;
  readonly #onError: (error: unknown) => void;
  #chunks = new Map<string, PendingChunk>();
  #executions = new Map<string, CommitTarget>();
  #sessions = new Map<string, SessionRecord>();
  #waiters: Array<() => void> = [];
  readonly #onBatch: BatchObserver | undefined;
  #writing = false;
  #scheduled = false;
  #pendingBytes = 0;
  #writingBytes = 0;
  /** Events appended so far: a plain count (read by /metrics), nothing allocated per event. */
  appended = 0;

  constructor(store: EventStore, onCommitted: (chunks: CommittedChunk[]) => void, onError: (error: unknown) => void, onBatch?: BatchObserver) {
    this.#store = store;
    this.#onCommitted = onCommitted;
    this.#onError = onError;
    this.#onBatch = onBatch;
  }

  /** Bytes of frames appended but not yet durable: what the pool looks at before reading more output. */
  get backlogBytes(): number {
    return this.#pendingBytes + this.#writingBytes;
  }

  appendEvent(target: CommitTarget, seq: number, frame: Uint8Array): void {
    this.appended++;
    this.#pendingBytes += frame.length;
    const id = target.record.execution_id;
    const chunk = this.#chunks.get(id);
    if (chunk) chunk.frames.push(frame);
    else this.#chunks.set(id, { target, firstSeq: seq, frames: [frame] });
    this.#schedule();
  }

  saveExecution(target: CommitTarget): void {
    this.#executions.set(target.record.execution_id, target);
    this.#schedule();
  }

  saveSession(record: SessionRecord): void {
    this.#sessions.set(record.session_id, record);
    this.#schedule();
  }

  /** Resolves once everything appended or saved so far is durable. */
  flushed(): Promise<void> {
    if (!this.#writing && !this.#scheduled) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #schedule(): void {
    if (this.#scheduled || this.#writing) return;
    this.#scheduled = true;
    setImmediate(() => void this.#write());
  }

  async #write(): Promise<void> {
    this.#scheduled = false;
    this.#writing = true;
    const chunks = this.#chunks;
    const executions = this.#executions;
    const sessions = this.#sessions;
    const waiters = this.#waiters;
    this.#chunks = new Map();
    this.#executions = new Map();
    this.#sessions = new Map();
    this.#waiters = [];
    this.#writingBytes = this.#pendingBytes;
    this.#pendingBytes = 0;

    for (const chunk of chunks.values()) executions.set(chunk.target.record.execution_id, chunk.target);
    const batch = this.#batch(chunks, executions, sessions);
    const started = performance.now();
    try {
      await this.#store.commit(batch);
    } catch (error) {
      this.#onError(error);
      this.#requeue(chunks, executions, sessions, waiters);
      this.#pendingBytes += this.#writingBytes;
      this.#writingBytes = 0;
      this.#writing = false;
      if (this.#store.isOpen) setTimeout(() => this.#schedule(), RETRY_DELAY_MS);
      return;
    }
    const committed: CommittedChunk[] = [];
    let items = batch.sessions.length + batch.executions.length;
    for (const { target, firstSeq, frames } of chunks.values()) {
      items += frames.length;
      target.committedSeq = firstSeq + frames.length - 1;
      target.record.last_seq = target.committedSeq;
      committed.push({ executionId: target.record.execution_id, firstSeq, frames });
    }
    this.#writing = false;
    this.#writingBytes = 0;
    this.#onBatch?.(items, (performance.now() - started) / 1000);
    // Deliver before anything else can run, so delivery order is commit order.
    if (committed.length > 0) this.#onCommitted(committed);
    for (const resolve of waiters) resolve();
    if (this.#chunks.size + this.#executions.size + this.#sessions.size > 0) this.#schedule();
    else this.#releaseIdleWaiters();
  }

  #batch(chunks: Map<string, PendingChunk>, executions: Map<string, CommitTarget>, sessions: Map<string, SessionRecord>): CommitBatch {
    const events: EventChunk[] = [];
    for (const [executionId, { firstSeq, frames }] of chunks) events.push({ executionId, firstSeq, frames });
    const records: ExecutionRecord[] = [];
    for (const target of executions.values()) {
      const chunk = chunks.get(target.record.execution_id);
      // The stored record's last_seq covers the events written beside it, atomically.
      records.push(chunk ? { ...target.record, last_seq: chunk.firstSeq + chunk.frames.length - 1 } : { ...target.record });
    }
    return { sessions: [...sessions.values()].map((s) => ({ ...s })), executions: records, events };
  }

  #requeue(chunks: Map<string, PendingChunk>, executions: Map<string, CommitTarget>, sessions: Map<string, SessionRecord>, waiters: Array<() => void>): void {
    for (const [id, chunk] of this.#chunks) {
      const earlier = chunks.get(id);
      if (earlier) earlier.frames.push(...chunk.frames);
      else chunks.set(id, chunk);
    }
    for (const [id, target] of this.#executions) executions.set(id, target);
    for (const [id, record] of this.#sessions) sessions.set(id, record);
    this.#chunks = chunks;
    this.#executions = executions;
    this.#sessions = sessions;
    this.#waiters = [...waiters, ...this.#waiters];
  }

  #releaseIdleWaiters(): void {
    // Waiters that arrived while nothing was pending any more.
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
  }
}
