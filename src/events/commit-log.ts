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
 *
 * A new execution whose id the store reserved (`create`) waits here for its first events, up to
 * CREATE_LINGER_MS, and goes out with them: a short run's create, events and terminal record are
 * one store write. Its events can never land before it (it is in their commit, or an earlier one).
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
  /** The store refused a session's record for good (fenced: another node writes it now): it is not retried. */
  onSessionDropped?(sessionId: string, error: StoreError): void;
  /**
   * A write ended, after its onCommitted, onRetry and onDropped: what held output back (backlog
   * bytes, a flood's first lines: firstLinesWaiting) may be gone, so output is to be read again.
   * Every write, whatever it committed: a first commit discarded and failed while under way (a
   * session moved to another node) says nothing else.
   */
  onWritten?(): void;
  onBatch?: BatchObserver;
  /**
   * Which reader of output an execution's output comes through (the engine: its tenant, whose
   * sandbox process runs it), so that a flood's first lines hold back that reader only (see
   * firstLinesWaiting). Without it every execution is in one group.
   */
  groupOf?(executionId: string): string;
}

/** What one execution has waiting to be written: frames from firstSeq on, and whether its record changed. */
interface Item {
  target: CommitTarget;
  firstSeq: number;
  frames: Uint8Array[];
  record: boolean;
  /** The record is new: written as a create (with its index entries), before or with any frame. */
  create: boolean;
  /** When the create was asked for (performance.now()), for its linger. */
  since: number;
  /** The first frames of a capped item (see takeFront): the record it writes has not ended yet. */
  front?: true;
}

interface Retry<T> {
  value: T;
  attempts: number;
  due: number;
  /** Taken into the write under way: its bytes count in #writingBytes until that write ends. */
  writing?: true;
}

const RETRY_FIRST_MS = 200;
const RETRY_MAX_MS = 5_000;
/** Failures in a row of one item after which the store counts as failing (readiness goes red). */
const STALLED_AFTER = 3;
/**
 * How long a create waits for its run's first events (a trivial run's value and done come back from
 * the sandbox well within it); past it, it goes out alone, so an execute's reply waits at most this
 * much longer for a run that is silent or queued.
 */
const CREATE_LINGER_MS = 2;

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
  /** Per execution created here and not yet durable: what resolves its `create` promise. */
  readonly #creating = new Map<string, () => void>();
  /** Waiters whose commit left items to retry: they resolve once nothing is left to retry. */
  #blocked: Array<() => void> = [];
  #writing = false;
  /** Executions whose capped first commit is in the write under way (see firstLinesWaiting). */
  readonly #writingFirstLines = new Set<string>();
  /** Executions whose first lines hold output reading back, each with its group (see firstLinesWaiting). */
  readonly #flooding = new Map<string, string>();
  /** How many of #flooding each group has: what firstLinesWaiting reads, once per output read. */
  readonly #floodingIn = new Map<string, number>();
  #scheduled = false;
  /** An execution's first events wait for the write under way: the next one starts the moment it ends. */
  #firstEventsWaiting = false;
  /** Wakes the log when the earliest retry or create linger is due (`#timerDue`, performance.now()). */
  #timer: NodeJS.Timeout | null = null;
  #timerDue = Infinity;
  /**
   * What the last timer was set for: whatever was due by then is due when it fires. Timers run on the
   * event loop's clock, which can lag performance.now() by the callback under way when one was set,
   * so one can fire before its due (traced: a linger's write found nothing due, and its create went
   * a timer later, 1.4 ms past its linger).
   */
  #timerFiredFor = 0;
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

  /**
   * True from the moment an execution of `group` (any group, when none is given) has first events
   * that are more than its first commit takes (a run printing a flood) until that commit has been
   * written (or has failed: a retry does not hold anything back). Output read meanwhile only delays
   * the answer that lets the first line out (the commit's completion waits behind that reading in
   * the event loop: traced, 1.5–10 ms), so the engine reads none of that group's until then: once
   * per such run. A count kept as items change, not a scan: it is asked after every output read.
   */
  firstLinesWaiting(group?: string): boolean {
    return group === undefined ? this.#flooding.size > 0 : (this.#floodingIn.get(group) ?? 0) > 0;
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

  /**
   * Nothing more of this execution is written, and nothing is reported: another node owns it now
   * (its writes would be fenced anyway) and ends it there.
   */
  discard(executionId: string): void {
    const retry = this.#retrying.get(executionId);
    if (retry && !retry.writing) this.#retryBytes -= bytesOf(retry.value.frames);
    this.#forget(executionId);
  }

  appendEvent(target: CommitTarget, seq: number, frame: Uint8Array): void {
    this.appended++;
    if (this.#dropped.has(target.record.execution_id)) return;
    this.#pendingBytes += frame.length;
    const item = this.#item(target);
    if (item.frames.length === 0) item.firstSeq = seq;
    item.frames.push(frame);
    if (target.committedSeq > 0) return this.#schedule();
    // Past what its first commit takes: a flood, whose first lines hold output reading back.
    if (item.frames.length === FIRST_COMMIT_EVENTS + 1) this.#refreshFlooding(target.record.execution_id);
    if (item.frames.length > 1) return this.#schedule();
    // An execution's first event is written without waiting for the rest of this turn's input, or
    // the moment the write under way ends (it may be its create, gone alone after its linger).
    if (this.#writing) this.#firstEventsWaiting = true;
    this.#schedule(true);
  }

  /**
   * Writes a new execution's record (reserved in the store, `written: false`) with its first events
   * or, if none come within CREATE_LINGER_MS, alone. Resolves once it is durable, or dropped.
   */
  create(target: CommitTarget): Promise<void> {
    const item = this.#item(target);
    item.create = item.record = true;
    item.since = performance.now();
    const durable = new Promise<void>((resolve) => this.#creating.set(target.record.execution_id, resolve));
    // A write under way or scheduled sets the wake-up after it (#next).
    if (!this.#scheduled && !this.#writing) this.#wake(item.since + CREATE_LINGER_MS);
    return durable;
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
    const flushed = new Promise<void>((resolve) => this.#waiters.push(resolve));
    // Creates waiting for their events are not waited for: the next write takes them.
    this.#schedule();
    return flushed;
  }

  #item(target: CommitTarget): Item {
    const id = target.record.execution_id;
    let item = this.#pending.get(id);
    if (!item) this.#pending.set(id, (item = { target, firstSeq: 0, frames: [], record: false, create: false, since: 0 }));
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
    const now = this.#now();
    // Someone waits for everything to be durable: creates waiting for their events go now too.
    const items = this.#takeItems(now, this.#waiters.length > 0);
    const sessions = this.#takeSessions(now);
    // Waiters are done with this write only if it took everything: a capped execution's rest goes next.
    const waiters = this.#hasReady(now) ? [] : this.#waiters;
    if (waiters.length > 0) this.#waiters = [];
    const batch = toBatch(items, sessions);
    for (const item of items) {
      const id = item.target.record.execution_id;
      if (item.front === true && item.target.committedSeq === 0 && !this.#retrying.has(id)) this.#writingFirstLines.add(id);
      this.#refreshFlooding(id);
    }

    const started = performance.now();
    // Nothing may be due (a flush while only retries wait for their time, a timer's item gone meanwhile).
    const { failed } = items.length + sessions.length === 0 ? { failed: [] } : await this.#store.commit(batch);
    const byId = failuresById(failed);
    const committed: CommittedChunk[] = [];
    let written = 0;
    for (const item of items) {
      const id = item.target.record.execution_id;
      const chunkFailure = byId.get(`events ${id}`);
      const recordFailure = byId.get(`execution ${id}`);
      const failure = chunkFailure ?? recordFailure;
      // Frames of an execution whose create did not land are not delivered (a store that is not
      // atomic may hold them): the whole item is sent again, the stored chunk as a resend.
      const unborn = item.create && recordFailure !== undefined;
      if (item.frames.length > 0 && !chunkFailure && !unborn) {
        written += item.frames.length;
        item.target.committedSeq = item.firstSeq + item.frames.length - 1;
        item.target.record.last_seq = item.target.committedSeq;
        committed.push({ executionId: id, firstSeq: item.firstSeq, frames: item.frames });
      }
      // Discarded while this write was under way: a failed part is neither retried nor reported.
      if (failure !== undefined && this.#dropped.has(id)) continue;
      if (failure === undefined) {
        this.#retrying.delete(id);
        written += item.record ? 1 : 0;
        if (item.create) this.#created(id);
      } else if (permanent(failure)) {
        this.#drop(id, failure);
      } else {
        // What landed is not resent: only the failed part is retried.
        const rest = chunkFailure || unborn ? item : { ...item, firstSeq: item.target.committedSeq + 1, frames: [] };
        this.#retryBytes += bytesOf(rest.frames);
        this.#fail(this.#retrying, id, rest, failure, now);
      }
    }
    for (const record of sessions) {
      const failure = byId.get(`session ${record.session_id}`);
      if (failure === undefined) {
        this.#retryingSessions.delete(record.session_id);
        written++;
      } else if (permanent(failure)) {
        this.#retryingSessions.delete(record.session_id);
        this.failures++;
        this.#hooks.onSessionDropped?.(record.session_id, failure);
      } else {
        this.#fail(this.#retryingSessions, record.session_id, record, failure, now);
      }
    }
    this.#writing = false;
    this.#writingFirstLines.clear();
    for (const item of items) this.#refreshFlooding(item.target.record.execution_id);
    this.#writingBytes = 0;
    if (written > 0) this.#hooks.onBatch?.(written, (performance.now() - started) / 1000);
    // Deliver before anything else can run, so delivery order is commit order.
    if (committed.length > 0) this.#hooks.onCommitted(committed);
    this.#hooks.onWritten?.();
    this.#settle(waiters);
    this.#next();
  }

  /**
   * The executions to write now: each one's pending item, or, when an earlier write of it failed and
   * its retry is due, that item exactly as it was (what it appended since waits behind it).
   */
  #takeItems(now: number, hurry: boolean): Item[] {
    const items: Item[] = [];
    for (const [id, retry] of this.#retrying) {
      if (retry.due > now) continue;
      const retried = retry.value;
      const newer = this.#pending.get(id);
      if (newer && newer.frames.length > 0) {
        // The record may count (or be ended by) events still waiting: it goes out with them, unless
        // it is a create, which must land no later than the retried frames.
        if (!retried.create) {
          newer.record ||= retried.record;
          retried.record = false;
        }
      } else if (newer) {
        retried.record ||= newer.record;
        this.#pending.delete(id);
      }
      const bytes = bytesOf(retried.frames);
      this.#retryBytes -= bytes;
      this.#writingBytes += bytes;
      retry.writing = true;
      items.push(retried);
    }
    for (const [id, item] of this.#pending) {
      if (this.#retrying.has(id) || (!hurry && lingering(item, now))) continue;
      const taken = takeFront(item);
      if (taken === item) this.#pending.delete(id);
      const bytes = bytesOf(taken.frames);
      this.#pendingBytes -= bytes;
      this.#writingBytes += bytes;
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
    this.#forget(id);
    this.#hooks.onDropped(id, error);
  }

  /** Nothing more of this execution is written: what waits is let go, and a create waiting for it resolves. */
  #forget(id: string): void {
    this.#retrying.delete(id);
    const pending = this.#pending.get(id);
    if (pending) this.#pendingBytes -= bytesOf(pending.frames);
    this.#pending.delete(id);
    this.#dropped.add(id);
    this.#refreshFlooding(id);
    this.#created(id);
  }

  /**
   * Whether this execution's first lines hold output reading back, counted in its group: its capped
   * first commit is being written, or its first events waiting are more than that commit takes and
   * not behind a retry. Called wherever one of those changes.
   */
  #refreshFlooding(id: string): void {
    const item = this.#pending.get(id);
    const flooding = this.#writingFirstLines.has(id)
      || (item !== undefined && item.target.committedSeq === 0 && item.frames.length > FIRST_COMMIT_EVENTS && !this.#retrying.has(id));
    const group = this.#flooding.get(id);
    if (flooding === (group !== undefined)) return;
    if (group === undefined) {
      const joined = this.#hooks.groupOf?.(id) ?? '';
      this.#flooding.set(id, joined);
      this.#floodingIn.set(joined, (this.#floodingIn.get(joined) ?? 0) + 1);
      return;
    }
    this.#flooding.delete(id);
    const left = this.#floodingIn.get(group)! - 1;
    if (left === 0) this.#floodingIn.delete(group);
    else this.#floodingIn.set(group, left);
  }

  #created(id: string): void {
    this.#creating.get(id)?.();
    this.#creating.delete(id);
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

  /** Something is pending that is neither waiting for a retry nor a create waiting for its events. */
  #hasReady(now: number): boolean {
    return [...this.#pending].some(([id, item]) => !this.#retrying.has(id) && !lingering(item, now))
      || [...this.#sessions.keys()].some((id) => !this.#retryingSessions.has(id));
  }

  /** The time against which lingers and retries are due: a timer that fired means its due has come. */
  #now(): number {
    return Math.max(performance.now(), this.#timerFiredFor);
  }

  /** Writes again at once if something new can go, else when the earliest retry or linger is due. */
  #next(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerDue = Infinity;
    const firstEvents = this.#firstEventsWaiting;
    this.#firstEventsWaiting = false;
    if (this.#waiters.length > 0 || this.#hasReady(this.#now())) {
      // First events that came while this write was under way go at once, not behind the I/O
      // callbacks of this turn (a flood's pipe, other sockets) as a next-turn write would.
      this.#schedule(firstEvents);
      return;
    }
    let due = Infinity;
    for (const item of this.#pending.values()) if (item.create) due = Math.min(due, item.since + CREATE_LINGER_MS);
    for (const retry of this.#retrying.values()) due = Math.min(due, retry.due);
    for (const retry of this.#retryingSessions.values()) due = Math.min(due, retry.due);
    this.#wake(due);
  }

  /** Schedules a write at `due`, unless one is set for no later. */
  #wake(due: number): void {
    if (due === Infinity || due >= this.#timerDue) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerDue = due;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#timerDue = Infinity;
      this.#timerFiredFor = Math.max(this.#timerFiredFor, due);
      this.#schedule();
    }, Math.max(0, Math.ceil(due - performance.now())));
  }
}

/** A create still waiting for its run's first events (see CREATE_LINGER_MS). */
function lingering(item: Item, now: number): boolean {
  return item.create && item.frames.length === 0 && now - item.since < CREATE_LINGER_MS;
}

function toBatch(items: Item[], sessions: SessionRecord[]): CommitBatch {
  const batch: CommitBatch = { sessions: sessions.map((record) => ({ ...record })), creates: [], executions: [], events: [] };
  for (const { target, firstSeq, frames, record, create, front } of items) {
    const executionId = target.record.execution_id;
    if (frames.length > 0) batch.events.push({ executionId, firstSeq, frames });
    // The record counts exactly the events durable once this commit is; the store writes it only
    // after them, and not at all if they fail.
    const current = front ? unended(target.record) : { ...target.record };
    if (record) (create ? batch.creates! : batch.executions).push({ ...current, last_seq: frames.length > 0 ? firstSeq + frames.length - 1 : target.committedSeq });
  }
  return batch;
}

/**
 * The part of a pending item this commit takes: all of it, or, past the execution's cap, its first
 * frames, the rest (with the record, which must count them) staying pending for the next commit. A
 * create goes with the first frames: it must land no later than they do.
 */
function takeFront(item: Item): Item {
  const cap = Math.max(FIRST_COMMIT_EVENTS, item.target.committedSeq);
  if (item.frames.length <= cap) return item;
  const { create, since } = item;
  const front: Item = { target: item.target, firstSeq: item.firstSeq, frames: item.frames.slice(0, cap), record: create, create, since, front: true };
  item.firstSeq += cap;
  item.frames = item.frames.slice(cap);
  item.create = false;
  return front;
}

/** The record as it stood before it ended: what a create sent ahead of the run's last events says. */
function unended(record: ExecutionRecord): ExecutionRecord {
  const current = { ...record, status: record.started_at === undefined ? 'queued' as const : 'running' as const };
  delete current.ended_at;
  delete current.reason;
  return current;
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
