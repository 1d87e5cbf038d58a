/**
 * An EventStore with a shared cache of recently read events in front of another one. When a
 * thousand sockets resume one execution at once, each from its own seq, they read the same stored
 * chunks: here the first reader of a stretch reads it from the store and the others take it from
 * memory (or wait for that read, rather than starting their own).
 *
 * The cache holds blocks of BLOCK_EVENTS consecutive seqs (block b: seqs b·BLOCK_EVENTS + 1 to
 * (b + 1)·BLOCK_EVENTS), least recently used evicted first once their frames pass `maxBytes`. A
 * block read at the end of a log that is still growing is cached as far as it went; a reader
 * that needs more reads that block again. Stored events never change, so a block goes stale only
 * when its log is deleted: a retention sweep that deleted anything empties the cache (the store
 * does not say which executions it deleted; sweeps are minutes apart, storms seconds long), and so
 * does one run by another node sharing the store (`onRemoteExpiry`); a read that began before the
 * sweep is not cached. Everything else passes straight through.
 */
import type { ExecutionRecord, SessionRecord } from '../../protocol/types.js';
import {
  EventStore,
  type CommitBatch,
  type CommitFailure,
  type CreateResult,
  type FollowListener,
  type LogFollow,
  type Reservation,
  type ReserveOptions,
  type SessionFilter,
  type StoredEvent,
  type StoreSupports,
  type UnfinishedFilter,
} from './event-store.js';

/** Seqs per block: LevelDB's chunk size (level-store.ts), so a block is one or two entries. */
const BLOCK_EVENTS = 256;
/** Counted per cached event beside its frame's bytes: the object and its slot in the block. */
const EVENT_OVERHEAD_BYTES = 64;

const blockOf = (seq: number) => Math.floor((seq - 1) / BLOCK_EVENTS);
const firstSeqOf = (block: number) => block * BLOCK_EVENTS + 1;
const keyOf = (executionId: string, block: number) => `${executionId}\n${block}`;

interface Block {
  events: StoredEvent[];
  bytes: number;
  /** The number of the store read that filled it: one past a reader's start saw the log after it began. */
  read: number;
}

export class CachedEventStore extends EventStore {
  readonly #inner: EventStore;
  readonly #maxBytes: number;
  /** Cached blocks, least recently used first (a hit moves its block to the end). */
  readonly #blocks = new Map<string, Block>();
  /** Store reads under way, under the key of every block they will fill. */
  readonly #reads = new Map<string, Promise<StoredEvent[]>>();
  #bytes = 0;
  /** Blocks a read took from the cache, or from another reader's store read under way (metrics). */
  hits = 0;
  /** Blocks read from the store (metrics). */
  misses = 0;
  /** Store reads begun so far: each is numbered. */
  #readsBegun = 0;
  /** Bumped when the cache is emptied: a read begun before it is not cached. */
  #generation = 0;

  constructor(inner: EventStore, maxBytes: number) {
    super();
    this.#inner = inner;
    this.#maxBytes = maxBytes;
    inner.onRemoteExpiry(() => this.#clear());
  }

  get supports(): StoreSupports {
    return this.#inner.supports;
  }

  /** Bytes the cached blocks count (frames and per-event overhead); at most `maxBytes`. */
  get cachedBytes(): number {
    return this.#bytes;
  }

  protected _open(): Promise<void> {
    return this.#inner.open();
  }

  protected async _close(): Promise<void> {
    this.#clear();
    await this.#inner.close();
  }

  protected async _commit(batch: CommitBatch): Promise<CommitFailure[]> {
    return (await this.#inner.commit(batch)).failed;
  }

  protected _createExecution(record: ExecutionRecord): Promise<CreateResult> {
    return this.#inner.createExecution(record);
  }

  // The inner store's own answer: a create it can defer (LevelDB) stays deferred behind the cache.
  protected override _reserveExecution(record: ExecutionRecord, options: ReserveOptions): Promise<Reservation> {
    return this.#inner.reserveExecution(record, options);
  }

  protected async _readEvents(executionId: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    // A store read numbered past this began after this call did: what it did not find, this call need not look for.
    const since = this.#readsBegun;
    const events: StoredEvent[] = [];
    let next = afterSeq + 1;
    while (events.length < limit) {
      const block = blockOf(next);
      const offset = next - firstSeqOf(block);
      const cached = this.#hit(executionId, block);
      if (cached && offset < cached.events.length) {
        this.hits++;
        const end = Math.min(cached.events.length, offset + limit - events.length);
        for (let index = offset; index < end; index++) events.push(cached.events[index]!);
        next = firstSeqOf(block) + end;
        continue;
      }
      if (cached && cached.read > since) break;
      const under = this.#reads.get(keyOf(executionId, block));
      if (under) {
        // Someone is reading this block: its read may hold `next`, or may have begun before it was stored.
        this.hits++;
        await under;
        continue;
      }
      const wanted = Math.ceil((offset + limit - events.length) / BLOCK_EVENTS) * BLOCK_EVENTS;
      // Taken from what was read, not from the cache, which may have evicted it already.
      const read = await this.#read(executionId, block, wanted);
      for (const event of read) {
        if (event.seq < next) continue;
        if (events.length === limit) break;
        events.push(event);
        next = event.seq + 1;
      }
      if (read.length < wanted) break;
    }
    return events;
  }

  protected _lastSeq(executionId: string): Promise<number> {
    return this.#inner.lastSeq(executionId);
  }

  /** Tails come from the store itself (it says whether it has them, in `supports`). */
  protected override _follow(executionId: string, afterSeq: number, listener: FollowListener): LogFollow {
    return this.#inner.follow(executionId, afterSeq, listener);
  }

  protected _getExecution(executionId: string): Promise<ExecutionRecord | undefined> {
    return this.#inner.getExecution(executionId);
  }

  protected override _claimSession(record: SessionRecord): Promise<SessionRecord> {
    return this.#inner.claimSession(record);
  }

  protected _listSessions(filter: SessionFilter): Promise<SessionRecord[]> {
    return this.#inner.listSessions(filter);
  }

  protected _listExecutions(sessionId: string, limit: number, order: 'newest' | 'oldest'): Promise<ExecutionRecord[]> {
    return this.#inner.listExecutions(sessionId, { limit, order });
  }

  protected _listUnfinished(filter: UnfinishedFilter): Promise<ExecutionRecord[]> {
    return this.#inner.listUnfinished(filter);
  }

  override onRemoteExpiry(listener: () => void): () => void {
    return this.#inner.onRemoteExpiry(listener);
  }

  protected async _expireEndedBefore(endedBefore: number, limit: number): Promise<number> {
    const deleted = await this.#inner.expireEndedBefore(endedBefore, limit);
    if (deleted > 0) this.#clear();
    return deleted;
  }

  #hit(executionId: string, block: number): Block | undefined {
    const key = keyOf(executionId, block);
    const cached = this.#blocks.get(key);
    if (!cached) return undefined;
    this.#blocks.delete(key);
    this.#blocks.set(key, cached);
    return cached;
  }

  /**
   * Reads `count` events from the start of `block` in one store read, and caches them; readers of
   * any of the blocks it covers wait for it meanwhile, instead of reading them too.
   */
  #read(executionId: string, block: number, count: number): Promise<StoredEvent[]> {
    const blocks = count / BLOCK_EVENTS;
    this.misses += blocks;
    const generation = this.#generation;
    const number = ++this.#readsBegun;
    const read = this.#inner.readEvents(executionId, firstSeqOf(block) - 1, count).then((events) => {
      if (generation === this.#generation) this.#fill(executionId, block, events, number);
      return events;
    });
    const settled = read.finally(() => {
      for (let index = block; index < block + blocks; index++) {
        const key = keyOf(executionId, index);
        if (this.#reads.get(key) === settled) this.#reads.delete(key);
      }
    });
    for (let index = block; index < block + blocks; index++) this.#reads.set(keyOf(executionId, index), settled);
    return settled;
  }

  /** Caches what a read from the start of `block` returned, cut into blocks. */
  #fill(executionId: string, block: number, events: StoredEvent[], read: number): void {
    for (let start = 0; start < events.length; start += BLOCK_EVENTS, block++) {
      const slice = events.slice(start, start + BLOCK_EVENTS);
      // Stores return a log without gaps; anything else is not cached, and is read again when needed.
      if (slice[0]!.seq !== firstSeqOf(block) || slice[slice.length - 1]!.seq !== firstSeqOf(block) + slice.length - 1) return;
      const key = keyOf(executionId, block);
      const old = this.#blocks.get(key);
      // A read that began earlier may end later, with less: the longer (or as long and later) block stays.
      if (old && (old.events.length > slice.length || (old.events.length === slice.length && old.read > read))) continue;
      if (old) this.#bytes -= old.bytes;
      this.#blocks.delete(key);
      const entry = { events: slice, bytes: bytesOf(slice), read };
      this.#blocks.set(key, entry);
      this.#bytes += entry.bytes;
    }
    this.#evict();
  }

  #evict(): void {
    for (const [key, entry] of this.#blocks) {
      if (this.#bytes <= this.#maxBytes) return;
      this.#blocks.delete(key);
      this.#bytes -= entry.bytes;
    }
  }

  #clear(): void {
    this.#blocks.clear();
    this.#bytes = 0;
    this.#generation++;
  }
}

function bytesOf(events: StoredEvent[]): number {
  let bytes = 0;
  for (const event of events) bytes += event.frame.length + EVENT_OVERHEAD_BYTES;
  return bytes;
}
