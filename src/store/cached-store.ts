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
  storedEventsOf,
  type BinChunk,
  type CommitBatch,
  type CommitFailure,
  type CreateResult,
  type EventChunk,
  type FollowListener,
  type LogFollow,
  type Reservation,
  type ReserveOptions,
  type SessionFilter,
  type StoredEvent,
  type StoreSupports,
  type UnfinishedFilter,
} from './event-store.js';
import { readRuns, runsOver, type BinRun } from './frame-chunk.js';

/** Seqs per block: LevelDB's chunk size (level-store.ts), so a block is one or two entries. */
const BLOCK_EVENTS = 256;
/** Counted per cached block beside the bytes it keeps: the block, its runs, its key, its map entry. */
const BLOCK_OVERHEAD_BYTES = 256;
/**
 * Blocks whose views are kept after a hit, shared by the next readers of the block. A reconnect
 * storm's 10 000 readers hit the same few blocks: views made per reader were 10 000 × two pages
 * × 1 024 objects held while the readers wait for the send budget (2.4 GB of server memory in the
 * bench, against 0.2 GB shared). Few, so the kept views are not the GC's burden a view per cached
 * event was.
 */
const VIEWED_BLOCKS = 64;
/**
 * Blocks one store read takes when the block before it is cached: a reader going through a log in
 * order (a replay) makes a quarter of the LevelDB iterators and reads it would in pages of 1 024
 * events (their opening, closing and the hand-offs to LevelDB's thread were ~8 % of a cold replay's
 * main thread). Read as bins, no view made: the next pages make theirs as they are read.
 */
const STREAMING_READ_BLOCKS = 16;
/**
 * How far past the page it just served a reader that says where its log reaches (a replay) looks
 * for blocks neither cached nor being read, to read them at once (STREAMING_READ_BLOCKS of them,
 * not past that seq). Without it a replay's 16-block read began only when the hub's one-page
 * read-ahead reached a missing block, and the hub waited for it every four pages.
 */
const READ_AHEAD_BLOCKS = 8;
/**
 * The share of the cache that store reads under way may fill before a read ahead is shrunk or
 * skipped. What is read ahead is kept only in the cache, and filled nearest block first, so least
 * recently used: past about half of it, the cache evicted the nearest read-ahead blocks before
 * their reader came, and the replay read them again (a 16-block cache: 12 288 events read for a
 * replay of 8 192, against 9 216 without the read ahead).
 */
const READ_AHEAD_SHARE = 0.5;

const blockOf = (seq: number) => Math.floor((seq - 1) / BLOCK_EVENTS);
const firstSeqOf = (block: number) => block * BLOCK_EVENTS + 1;
const keyOf = (executionId: string, block: number) => `${executionId}\n${block}`;

interface Block {
  /**
   * Its frames (seqs from the block's first on) as runs of bins (frame-chunk.ts), read back as
   * views on a hit: a view per cached event was an object per event the GC had to keep moving
   * (issue 15: scavenges that kept ~90 % of what they scanned, a fifth of a cold replay's thread).
   * Mostly slices of the values the store returned, so a read caches its frames without copying
   * them; the bytes a block keeps are those values whole (`#kept`).
   */
  runs: BinRun[];
  /** Frames of its first run before the block's first seq (a stored chunk cut across two blocks). */
  skip: number;
  count: number;
  /** Reads that took it from the cache: its views are kept from the second on. */
  hits: number;
  /** The number of the store read that filled it: one past a reader's start saw the log after it began. */
  read: number;
}

export class CachedEventStore extends EventStore {
  readonly #inner: EventStore;
  readonly #maxBytes: number;
  /** Cached blocks, least recently used first (a hit moves its block to the end). */
  readonly #blocks = new Map<string, Block>();
  /** The views of the blocks hit last, oldest first (VIEWED_BLOCKS at most). */
  readonly #views = new Map<Block, Uint8Array[]>();
  /**
   * The buffers the cached blocks' runs are slices of, and how many runs keep each: a buffer counts
   * its whole length once, however many blocks keep part of it (a stored chunk of 256 frames is
   * most often cut across two blocks), and until the last of them is gone.
   */
  readonly #kept = new Map<ArrayBufferLike, number>();
  /** Store reads under way, under the key of every block they will fill. */
  readonly #reads = new Map<string, Promise<BinChunk>>();
  /** Blocks the store reads under way will fill: what they will add to the cache. */
  #reading = 0;
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

  /** Bytes the cached blocks keep (the buffers their frames lie in, and per-block overhead); at most `maxBytes`. */
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
    return storedEventsOf(await this._readRun(executionId, afterSeq, limit));
  }

  protected override async _readRun(executionId: string, afterSeq: number, limit: number, knownEnd?: number): Promise<EventChunk> {
    // A store read numbered past this began after this call did: what it did not find, this call need not look for.
    const since = this.#readsBegun;
    const frames: Uint8Array[] = [];
    let next = afterSeq + 1;
    while (frames.length < limit) {
      const block = blockOf(next);
      const offset = next - firstSeqOf(block);
      const cached = this.#hit(executionId, block);
      if (cached && offset < cached.count) {
        this.hits++;
        const end = Math.min(cached.count, offset + limit - frames.length);
        this.#take(cached, offset, end, frames);
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
      // A reader of small pages (an HTTP page of 10) is not taken for a replay going through the log.
      const streaming = limit >= BLOCK_EVENTS && this.#blocks.has(keyOf(executionId, block - 1));
      const wanted = Math.max(Math.ceil((offset + limit - frames.length) / BLOCK_EVENTS), streaming ? STREAMING_READ_BLOCKS : 0) * BLOCK_EVENTS;
      // Taken from what was read, not from the cache, which may have evicted it already: views of
      // what this reader takes only (the rest waits in the cache as bins, for its next pages).
      const read = await this.#read(executionId, block, wanted);
      const start = next - read.firstSeq;
      const taken = runsOver(read.runs, start, Math.min(read.count, start + limit - frames.length));
      readRuns(taken.runs, taken.skip, Math.min(read.count - start, limit - frames.length), frames);
      next = afterSeq + 1 + frames.length;
      if (read.count < wanted) break;
    }
    if (knownEnd !== undefined && limit >= BLOCK_EVENTS) this.#readAhead(executionId, afterSeq + 1 + frames.length, knownEnd);
    return { executionId, firstSeq: afterSeq + 1, frames };
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
   * Appends views of the block's frames `from` to `to` to `out`: the views its other readers of the
   * moment share, or, for its first reader (a replay going through a log reads each block once),
   * views of its own of what it takes, young garbage once sent. Kept at once, 64 blocks' worth of a
   * cold replay's views outlived every scavenge (three to ten times the GC); from a block's second
   * read on (a storm's second reader, or one reader's next small page) they are kept, and shared.
   */
  #take(block: Block, from: number, to: number, out: Uint8Array[]): void {
    let views = this.#views.get(block);
    if (views) {
      // Hit last: moved to the end, so the blocks a storm keeps reading keep their views.
      this.#views.delete(block);
      this.#views.set(block, views);
    } else if (++block.hits < 2) {
      readRuns(block.runs, block.skip + from, to - from, out);
      return;
    } else {
      views = [];
      readRuns(block.runs, block.skip, block.count, views);
      this.#views.set(block, views);
      if (this.#views.size > VIEWED_BLOCKS) this.#views.delete(this.#views.keys().next().value!);
    }
    for (let index = from; index < to; index++) out.push(views[index]!);
  }

  /**
   * Starts reading the first block within READ_AHEAD_BLOCKS from seq `next` that is neither cached
   * whole nor being read, and the blocks after it, up to STREAMING_READ_BLOCKS, not past seq `end`
   * (stored: the log is known to reach it) and as many as the cache has room for (#aheadRoom).
   * Nobody awaits it: a reader that comes to those blocks waits for it as for any read under way,
   * and a failure is that reader's to see. Every block of the window is looked at, nearest first:
   * under pressure the cache evicts the nearest of a read ahead's blocks first.
   */
  #readAhead(executionId: string, next: number, end: number): void {
    const last = blockOf(end);
    const far = Math.min(last, blockOf(next) + READ_AHEAD_BLOCKS - 1);
    for (let block = blockOf(next); block <= far; block++) {
      if (this.#covered(executionId, block, end)) continue;
      const blocks = Math.min(STREAMING_READ_BLOCKS, last - block + 1, this.#aheadRoom(executionId, blockOf(next - 1)));
      if (blocks > 0) this.#read(executionId, block, blocks * BLOCK_EVENTS).catch(() => {});
      return;
    }
  }

  /**
   * Blocks a read ahead may read: with the reads under way, no more than READ_AHEAD_SHARE of the
   * cache, each counted as `served` (the block of the page just served, still cached: one evicted
   * already is pressure enough to read nothing ahead) by the bytes per event its runs hold.
   */
  #aheadRoom(executionId: string, served: number): number {
    const block = this.#blocks.get(keyOf(executionId, served));
    if (!block) return 0;
    let bytes = 0;
    let events = 0;
    for (const run of block.runs) {
      bytes += run.bytes.byteLength;
      events += run.count;
    }
    const blockBytes = BLOCK_OVERHEAD_BYTES + (bytes / events) * BLOCK_EVENTS;
    return Math.floor((this.#maxBytes * READ_AHEAD_SHARE) / blockBytes) - this.#reading;
  }

  /** Whether `block` is being read, or cached up to its last seq or `end`, whichever comes first. */
  #covered(executionId: string, block: number, end: number): boolean {
    const key = keyOf(executionId, block);
    const cached = this.#blocks.get(key);
    return this.#reads.has(key) || (cached !== undefined && firstSeqOf(block) + cached.count > Math.min(end, firstSeqOf(block) + BLOCK_EVENTS - 1));
  }

  /**
   * Reads `count` events from the start of `block` in one store read, and caches them; readers of
   * any of the blocks it covers wait for it meanwhile, instead of reading them too.
   */
  #read(executionId: string, block: number, count: number): Promise<BinChunk> {
    const blocks = count / BLOCK_EVENTS;
    this.misses += blocks;
    this.#reading += blocks;
    const generation = this.#generation;
    const number = ++this.#readsBegun;
    const read = this.#inner.readBins(executionId, firstSeqOf(block) - 1, count).then((run) => {
      if (generation === this.#generation) this.#fill(executionId, block, run, number);
      return run;
    });
    const settled = read.finally(() => {
      this.#reading -= blocks;
      for (let index = block; index < block + blocks; index++) {
        const key = keyOf(executionId, index);
        if (this.#reads.get(key) === settled) this.#reads.delete(key);
      }
    });
    for (let index = block; index < block + blocks; index++) this.#reads.set(keyOf(executionId, index), settled);
    return settled;
  }

  /** Caches what a read from the start of `block` returned (a run: no gap), cut into blocks. */
  #fill(executionId: string, block: number, { count: stored, runs }: BinChunk, read: number): void {
    for (let start = 0; start < stored; start += BLOCK_EVENTS, block++) {
      const count = Math.min(BLOCK_EVENTS, stored - start);
      const key = keyOf(executionId, block);
      const old = this.#blocks.get(key);
      // A read that began earlier may end later, with less: the longer (or as long and later) block stays.
      if (old && (old.count > count || (old.count === count && old.read > read))) continue;
      if (old) this.#forget(old);
      this.#blocks.delete(key);
      const entry = { ...runsOver(runs, start, start + count), count, read, hits: 0 };
      this.#blocks.set(key, entry);
      this.#keep(entry);
    }
    this.#evict();
  }

  #evict(): void {
    for (const [key, entry] of this.#blocks) {
      if (this.#bytes <= this.#maxBytes) return;
      this.#blocks.delete(key);
      this.#forget(entry);
    }
  }

  #keep(block: Block): void {
    this.#bytes += BLOCK_OVERHEAD_BYTES;
    for (const { bytes } of block.runs) {
      const runs = this.#kept.get(bytes.buffer) ?? 0;
      if (runs === 0) this.#bytes += bytes.buffer.byteLength;
      this.#kept.set(bytes.buffer, runs + 1);
    }
  }

  #forget(block: Block): void {
    this.#bytes -= BLOCK_OVERHEAD_BYTES;
    for (const { bytes } of block.runs) {
      const runs = this.#kept.get(bytes.buffer)!;
      if (runs > 1) this.#kept.set(bytes.buffer, runs - 1);
      else {
        this.#kept.delete(bytes.buffer);
        this.#bytes -= bytes.buffer.byteLength;
      }
    }
    this.#views.delete(block);
  }

  #clear(): void {
    this.#blocks.clear();
    this.#kept.clear();
    this.#views.clear();
    this.#bytes = 0;
    this.#generation++;
  }
}
