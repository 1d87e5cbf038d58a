/**
 * Group commit: everything appended while one store commit is being written goes out together in
 * the next one, so the store sees one write per busy tick instead of one per event (a LevelDB batch
 * of 256 puts is ~15x the rate of awaited single puts here). Events reach sockets only after the
 * commit that holds them is durable: an event any client has seen survives `kill -9`.
 *
 * The store answers per item, and so does this log: an execution or session whose write failed is
 * retried alone, with backoff, while the others go on being written and delivered. A retried chunk
 * is resent exactly as it was (same first seq, same frames), because a remote log dedupes retries
 * by their first seq; whatever the execution produced meanwhile waits behind it, so its log never
 * gets a gap. An item the store refuses for good (a bad chunk, a fenced execution) is dropped with
 * everything its execution appends afterwards, and reported.
 */
import type { ExecutionRecord, SessionRecord } from '../../protocol/types.js';
import type { CommitBatch, CommitFailure, EventStore, StoreError } from '../store/event-store.js';

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

/** Told of each store write: how many records and events it held, and how long it took. */
export type BatchObserver = (items: number, seconds: number) => void;

export interface CommitLogHooks {
  /** Chunks made durable by one commit, in commit order: deliver them before anything else runs. */
  onCommitted(chunks: CommittedChunk[]): void;
  /** An item failed and will be retried (`attempt` counts its failures so far). */
  onRetry(error: StoreError, attempt: number): void;
  /** The store refused an execution's item for good: it and its later events are dropped. */
  onDropped(executionId: string, error: StoreError): void;
  onBatch?: BatchObserver;
}

/** What one execution has waiting to be written: frames from firstSeq on, and whether its record changed. */
interface Item {
  target: CommitTarget;
  firstSeq: number;
  frames: Uint8Array[];
  record: boolean;
}

interface Retry<T> {
  value: T;
  attempts: number;
  due: number;
}

const RETRY_FIRST_MS = 200;
const RETRY_MAX_MS = 5_000;
/** Failures in a row of one item after which the store counts as failing (readiness goes red). */
const STALLED_AFTER = 3;

/**
 * An execution's first commit holds at most this many of its events, and each later one at most as
 * many as it has committed so far: its first line goes out in a small write at once, whatever
 * follows it, and the cap stops mattering after a few commits (64, 64, 128, 256…).
 */
const FIRST_COMMIT_EVENTS = 64;

/** Errors no retry can fix. */
const permanent = (error: StoreError) => error.code === 'STORE_FENCED' || error.code === 'STORE_BAD_ARGUMENT';
const backoff = (attempts: number) => Math.min(RETRY_FIRST_MS * 2 ** (attempts - 1), RETRY_MAX_MS);

export class CommitLog {
  readonly #store: EventStore;
  readonly #hooks: CommitLogHooks;
  #pending = new Map<string, Item>();
  #sessions = new Map<string, SessionRecord>();
  readonly #retrying = new Map<string, Retry<Item>>();
  readonly #retryingSessions = new Map<string, Retry<SessionRecord>>();
  /** Executions whose writes were refused for good: what they append is discarded. */
  readonly #dropped = new Set<string>();
  #waiters: Array<() => void> = [];
  /** Waiters whose commit left items to retry: they resolve once nothing is left to retry. */
  #blocked: Array<() => void> = [];
  #writing = false;
  #scheduled = false;
  #retryTimer: NodeJS.Timeout | null = null;
  #pendingBytes = 0;
  #writingBytes = 0;
  #retryBytes = 0;
  /** Events appended so far: a plain count (read by /metrics), nothing allocated per event. */
  appended = 0;
  /** Items (executions or sessions) whose write failed, counting every failed attempt. */
  failures = 0;

  constructor(store: EventStore, hooks: CommitLogHooks) {
    this.#store = store;
    this.#hooks = hooks;
  }

  /** Bytes of frames appended but not yet durable: what the pool looks at before reading more output. */
  get backlogBytes(): number {
    return this.#pendingBytes + this.#writingBytes + this.#retryBytes;
  }

  /** Items waiting for a retry after a failed write. */
  get waiting(): number {
    return this.#retrying.size + this.#retryingSessions.size;
  }

  /** True while some item has failed STALLED_AFTER times in a row: the store is not keeping up. */
  get stalled(): boolean {
    for (const retry of this.#retrying.values()) if (retry.attempts >= STALLED_AFTER) return true;
    for (const retry of this.#retryingSessions.values()) if (retry.attempts >= STALLED_AFTER) return true;
    return false;
  }

  /** True once the store refused this execution's writes for good: nothing more of it is written. */
  isDropped(executionId: string): boolean {
    return this.#dropped.has(executionId);
  }

  appendEvent(target: CommitTarget, seq: number, frame: Uint8Array): void {
    this.appended++;
    if (this.#dropped.has(target.record.execution_id)) return;
    this.#pendingBytes += frame.length;
    const item = this.#item(target);
    if (item.frames.length === 0) item.firstSeq = seq;
    item.frames.push(frame);
    // An execution's first event is written without waiting for the rest of this turn's input.
    this.#schedule(target.committedSeq === 0 && item.frames.length === 1);
  }

  saveExecution(target: CommitTarget): void {
    if (this.#dropped.has(target.record.execution_id)) return;
    this.#item(target).record = true;
    this.#schedule();
  }

  saveSession(record: SessionRecord): void {
    this.#sessions.set(record.session_id, record);
    this.#schedule();
  }

  /** Resolves once everything appended or saved so far is durable (or dropped). */
  flushed(): Promise<void> {
    if (!this.#writing && !this.#scheduled && this.#pending.size + this.#sessions.size + this.waiting === 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #item(target: CommitTarget): Item {
    const id = target.record.execution_id;
    let item = this.#pending.get(id);
    if (!item) this.#pending.set(id, (item = { target, firstSeq: 0, frames: [], record: false }));
    return item;
  }

  /** Writes on the next turn, or (`soon`) once the code running now is done. */
  #schedule(soon = false): void {
    if (this.#writing || (this.#scheduled && !soon)) return;
    this.#scheduled = true;
    if (soon) queueMicrotask(() => void this.#write());
    else setImmediate(() => void this.#write());
  }

  async #write(): Promise<void> {
    // A write brought forward (#schedule's `soon`) leaves the one scheduled before it nothing to do.
    if (!this.#scheduled) return;
    this.#scheduled = false;
    if (!this.#store.isOpen) return;
    this.#writing = true;
    const now = performance.now();
    const items = this.#takeItems(now);
    const sessions = this.#takeSessions(now);
    // Waiters are done with this write only if it took everything: a capped execution's rest goes next.
    const waiters = this.#hasReady() ? [] : this.#waiters;
    if (waiters.length > 0) this.#waiters = [];
    const batch = toBatch(items, sessions);

    const started = performance.now();
    const { failed } = await this.#store.commit(batch);
    const byId = failuresById(failed);
    const committed: CommittedChunk[] = [];
    let written = 0;
    for (const item of items) {
      const id = item.target.record.execution_id;
      const chunkFailure = byId.get(`events ${id}`);
      const recordFailure = byId.get(`execution ${id}`);
      const failure = chunkFailure ?? recordFailure;
      if (item.frames.length > 0 && !chunkFailure) {
        written += item.frames.length;
        item.target.committedSeq = item.firstSeq + item.frames.length - 1;
        item.target.record.last_seq = item.target.committedSeq;
        committed.push({ executionId: id, firstSeq: item.firstSeq, frames: item.frames });
      }
      if (failure === undefined) {
        this.#retrying.delete(id);
        written += item.record ? 1 : 0;
      } else if (permanent(failure)) {
        this.#drop(id, failure);
      } else {
        // What landed is not resent: only the failed part is retried.
        const rest = chunkFailure ? item : { ...item, firstSeq: item.target.committedSeq + 1, frames: [] };
        this.#retryBytes += bytesOf(rest.frames);
        this.#fail(this.#retrying, id, rest, failure, now);
      }
    }
    for (const record of sessions) {
      const failure = byId.get(`session ${record.session_id}`);
      if (failure === undefined) {
        this.#retryingSessions.delete(record.session_id);
        written++;
      } else {
        this.#fail(this.#retryingSessions, record.session_id, record, failure, now);
      }
    }
    this.#writing = false;
    this.#writingBytes = 0;
    if (written > 0) this.#hooks.onBatch?.(written, (performance.now() - started) / 1000);
    // Deliver before anything else can run, so delivery order is commit order.
    if (committed.length > 0) this.#hooks.onCommitted(committed);
    this.#settle(waiters);
    this.#next();
  }

  /**
   * The executions to write now: each one's pending item, or, when an earlier write of it failed and
   * its retry is due, that item exactly as it was (what it appended since waits behind it).
   */
  #takeItems(now: number): Item[] {
    const items: Item[] = [];
    for (const [id, retry] of this.#retrying) {
      if (retry.due > now) continue;
      const retried = retry.value;
      const newer = this.#pending.get(id);
      if (newer && newer.frames.length > 0) {
        // The record may count (or be ended by) events still waiting: it goes out with them.
        newer.record ||= retried.record;
        retried.record = false;
      } else if (newer) {
        retried.record ||= newer.record;
        this.#pending.delete(id);
      }
      this.#retryBytes -= bytesOf(retried.frames);
      this.#writingBytes += bytesOf(retried.frames);
      items.push(retried);
    }
    for (const [id, item] of this.#pending) {
      if (this.#retrying.has(id)) continue;
      const taken = takeFront(item);
      if (taken === item) this.#pending.delete(id);
      this.#pendingBytes -= bytesOf(taken.frames);
      this.#writingBytes += bytesOf(taken.frames);
      items.push(taken);
    }
    return items;
  }

  #takeSessions(now: number): SessionRecord[] {
    const sessions: SessionRecord[] = [];
    for (const [id, retry] of this.#retryingSessions) {
      // A newer save of the session replaces the one that failed.
      if (retry.due <= now && !this.#sessions.has(id)) sessions.push(retry.value);
    }
    for (const [id, record] of this.#sessions) {
      const retry = this.#retryingSessions.get(id);
      if (retry && retry.due > now) continue;
      this.#sessions.delete(id);
      sessions.push(record);
    }
    return sessions;
  }

  #fail<T>(retries: Map<string, Retry<T>>, id: string, value: T, error: StoreError, now: number): void {
    this.failures++;
    const attempts = (retries.get(id)?.attempts ?? 0) + 1;
    retries.set(id, { value, attempts, due: now + backoff(attempts) });
    this.#hooks.onRetry(error, attempts);
  }

  #drop(id: string, error: StoreError): void {
    this.failures++;
    this.#retrying.delete(id);
    const pending = this.#pending.get(id);
    if (pending) this.#pendingBytes -= bytesOf(pending.frames);
    this.#pending.delete(id);
    this.#dropped.add(id);
    this.#hooks.onDropped(id, error);
  }

  /** Waiters of this write resolve when nothing is left to retry; until then they wait with the blocked. */
  #settle(waiters: Array<() => void>): void {
    if (this.waiting > 0) {
      this.#blocked.push(...waiters);
      return;
    }
    const all = [...this.#blocked, ...waiters];
    this.#blocked = [];
    for (const resolve of all) resolve();
    if (this.#pending.size + this.#sessions.size === 0) {
      // Waiters that arrived while nothing was pending any more.
      const idle = this.#waiters;
      this.#waiters = [];
      for (const resolve of idle) resolve();
    }
  }

  /** Something is pending that is not waiting for a retry. */
  #hasReady(): boolean {
    return [...this.#pending.keys()].some((id) => !this.#retrying.has(id))
      || [...this.#sessions.keys()].some((id) => !this.#retryingSessions.has(id));
  }

  /** Writes again at once if something new can go, else when the earliest retry is due. */
  #next(): void {
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    if (this.#hasReady()) {
      this.#schedule();
      return;
    }
    let due = Infinity;
    for (const retry of this.#retrying.values()) due = Math.min(due, retry.due);
    for (const retry of this.#retryingSessions.values()) due = Math.min(due, retry.due);
    if (due === Infinity) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#schedule();
    }, Math.max(0, due - performance.now()));
  }
}

function toBatch(items: Item[], sessions: SessionRecord[]): CommitBatch {
  const batch: CommitBatch = { sessions: sessions.map((record) => ({ ...record })), executions: [], events: [] };
  for (const { target, firstSeq, frames, record } of items) {
    const executionId = target.record.execution_id;
    if (frames.length > 0) batch.events.push({ executionId, firstSeq, frames });
    // The record counts exactly the events durable once this commit is; the store writes it only
    // after them, and not at all if they fail.
    if (record) batch.executions.push({ ...target.record, last_seq: frames.length > 0 ? firstSeq + frames.length - 1 : target.committedSeq });
  }
  return batch;
}

/**
 * The part of a pending item this commit takes: all of it, or, past the execution's cap, its first
 * frames, the rest (with the record, which must count them) staying pending for the next commit.
 */
function takeFront(item: Item): Item {
  const cap = Math.max(FIRST_COMMIT_EVENTS, item.target.committedSeq);
  if (item.frames.length <= cap) return item;
  const front: Item = { target: item.target, firstSeq: item.firstSeq, frames: item.frames.slice(0, cap), record: false };
  item.firstSeq += cap;
  item.frames = item.frames.slice(cap);
  return front;
}

function bytesOf(frames: Uint8Array[]): number {
  let bytes = 0;
  for (const frame of frames) bytes += frame.length;
  return bytes;
}

function failuresById(failed: CommitFailure[]): Map<string, StoreError> {
  const byId = new Map<string, StoreError>();
  for (const failure of failed) byId.set(`${failure.kind} ${failure.id}`, failure.error);
  return byId;
}
