import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { CachedEventStore } from '../src/store/cached-store.js';
import type { BinChunk, FollowListener, LogFollow, StoredEvent } from '../src/store/event-store.js';
import { LevelEventStore } from '../src/store/level-store.js';
import { MemoryEventStore } from './helpers/memory-store.js';
import { runStoreSuite } from './store/suite.js';

// The read cache server.ts puts in front of the configured store: with it, the store still honours
// the contract (a small cache, so that eviction happens too). Sharing a location means sharing the
// backing store's, each instance with its own cache, as two servers would.
const backing = new WeakMap<CachedEventStore, MemoryEventStore>();
runStoreSuite(t, 'CachedEventStore', async (sameLocationAs) => {
  const inner = new MemoryEventStore(sameLocationAs ? backing.get(sameLocationAs as CachedEventStore)!.location : undefined);
  const store = new CachedEventStore(inner, 64 * 1024);
  backing.set(store, inner);
  return store;
});

t.test('a reservation is the backing store\'s: a create it defers stays deferred behind the cache', async (t) => {
  const store = new CachedEventStore(new MemoryEventStore(undefined, { reserve: true }), 64 * 1024);
  await store.open();
  t.teardown(() => store.close());
  const record = { execution_id: 'r', session_id: 's', number: 1, kind: 'repl' as const, status: 'queued' as const, created_at: 1, last_seq: 0, timeout_ms: 1000, code: '1' };
  t.same(await store.reserveExecution(record), { created: true, record, written: false }, 'decided, not written');
  t.equal(await store.getExecution('r'), undefined, 'nothing stored yet');
  t.equal((await store.reserveExecution({ ...record, session_id: 'other' })).created, false, 'the id is taken');
  t.same((await store.commit({ sessions: [], creates: [record], executions: [], events: [] })).failed, [], 'written by a commit');
  t.same(await store.getExecution('r'), record, 'stored');
});

/** A memory store that says it can follow, and records the follows it is asked for. */
class FollowableStore extends MemoryEventStore {
  override readonly supports = { ...new MemoryEventStore().supports, follow: true };
  readonly follows: Array<{ executionId: string; afterSeq: number; listener: FollowListener }> = [];
  /** When set, each read's answer waits for it (the events it found are those stored when it began). */
  gate: Promise<void> | null = null;
  protected override _follow(executionId: string, afterSeq: number, listener: FollowListener): LogFollow {
    this.follows.push({ executionId, afterSeq, listener });
    return { stop: () => {} };
  }
  protected override async _readEvents(executionId: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    const events = await super._readEvents(executionId, afterSeq, limit);
    await this.gate;
    return events;
  }
}

const frameOf = (seq: number) => new TextEncoder().encode(`e${seq}`);
const seqs = (events: StoredEvent[]) => events.map((event) => event.seq);
const from = (first: number, last: number) => Array.from({ length: last - first + 1 }, (_, i) => first + i);

t.test('on a store that can follow: its supports, its follows, and no stale end of a log another node writes', async (t) => {
  // Two instances over one location: the writer as the node that runs the execution, the cached one as a node that follows it.
  const writer = new MemoryEventStore();
  const inner = new FollowableStore(writer.location);
  const cached = new CachedEventStore(inner, 64 * 1024);
  await writer.open();
  await cached.open();
  t.teardown(() => Promise.all([writer.close(), cached.close()]));
  const append = async (first: number, last: number) => {
    const { failed } = await writer.commit({ sessions: [], executions: [], events: [{ executionId: 'x', firstSeq: first, frames: from(first, last).map(frameOf) }] });
    t.same(failed, [], `${first}–${last} stored by the other node`);
  };

  t.equal(cached.supports.follow, true, 'supports are the backing store\'s');
  const listener: FollowListener = { chunk: () => {}, error: () => {} };
  cached.follow('x', 7, listener);
  t.same(inner.follows, [{ executionId: 'x', afterSeq: 7, listener }], 'a follow goes to the backing store as asked');

  await append(1, 180);
  t.same(seqs(await cached.readEvents('x', 0, 1024)), from(1, 180), 'read while it grows: a block cached as far as it went');
  await append(181, 300);
  t.same(seqs(await cached.readEvents('x', 150, 1024)), from(151, 300), 'a reader past the cached end reads the store again');

  // A read under way from before the other node's next append: a reader that needs what it could
  // not see waits for it (one read of the block at a time), then reads the store again.
  let open!: () => void;
  inner.gate = new Promise((resolve) => (open = resolve));
  const before = cached.readEvents('x', 300, 1024);
  await append(301, 400);
  const after = cached.readEvents('x', 300, 1024);
  inner.gate = null;
  open();
  t.same(seqs(await before), [], 'the read under way ends where the log stood when it began');
  t.same(seqs(await after), from(301, 400), 'the later reader gets what was appended meanwhile');
  t.same(seqs(await cached.readEvents('x', 0, 1024)), from(1, 400), 'and the whole log reads through');
});

t.test('readers of a cached block share its views: a storm of readers holds references, not a view each', async (t) => {
  const inner = new MemoryEventStore();
  const store = new CachedEventStore(inner, 1024 * 1024);
  await store.open();
  t.teardown(() => store.close());
  const { failed } = await store.commit({ sessions: [], executions: [], events: [{ executionId: 'x', firstSeq: 1, frames: from(1, 600).map(frameOf) }] });
  t.same(failed, [], 'stored');
  await store.readRun('x', 0, 600); // a miss: fills the cache
  const hits = store.hits;
  const readers = await Promise.all(Array.from({ length: 100 }, (_, index) => store.readRun('x', index, 400)));
  t.equal(store.hits - hits, 100 * 2, 'every reader was served from the cache (two blocks each)');
  // The first reader of a block makes views of its own (a replay reads each block once); the block's
  // later readers share one set.
  const first = readers[1]!;
  t.ok(readers.slice(1).every((run) => run.frames.every((frame, index) => frame === first.frames[index + run.firstSeq - first.firstSeq] || run.firstSeq + index > first.firstSeq + first.frames.length - 1)),
    'the same seq is the same view object for every reader after the first');
  t.same(new TextDecoder().decode(readers[42]!.frames[0]), 'e43', 'and the right frame');
});

/** LevelDB, counting its reads. */
class CountingLevelStore extends LevelEventStore {
  reads = 0;
  /** The number of events each store read asked for. */
  readonly limits: number[] = [];
  /** Where each store read began (its afterSeq). */
  readonly starts: number[] = [];
  protected override _readBins(executionId: string, afterSeq: number, limit: number): Promise<BinChunk> {
    this.reads++;
    this.limits.push(limit);
    this.starts.push(afterSeq);
    return super._readBins(executionId, afterSeq, limit);
  }
}

/** A LevelDB location holding execution `x`'s `events` events, stored in chunks of `chunk`; its location. */
async function storedLog(t: Test, events: number, chunk: number, frame: (seq: number) => Uint8Array): Promise<string> {
  const location = mkdtempSync(path.join(os.tmpdir(), 'vmstream-cached-'));
  t.teardown(() => rmSync(location, { recursive: true, force: true }));
  const writer = new LevelEventStore(location);
  await writer.open();
  for (let first = 1; first <= events; first += chunk) {
    await writer.commit({ sessions: [], executions: [], events: [{ executionId: 'x', firstSeq: first, frames: from(first, first + chunk - 1).map(frame) }] });
  }
  await writer.close();
  return location;
}

/** A cache of `maxBytes` over the LevelDB at `location`, its reads counted. */
async function cacheOver(t: Test, location: string, maxBytes: number): Promise<{ inner: CountingLevelStore; store: CachedEventStore }> {
  const inner = new CountingLevelStore(location);
  const store = new CachedEventStore(inner, maxBytes);
  await store.open();
  t.teardown(() => store.close());
  return { inner, store };
}

/** A cache over LevelDB holding execution `x`'s 5 120 events, stored in chunks of 160 (cut across the cache's blocks of 256). */
async function cachedLog(t: Test): Promise<{ inner: CountingLevelStore; store: CachedEventStore }> {
  return cacheOver(t, await storedLog(t, 5120, 160, frameOf), 32 * 1024 * 1024);
}

t.test('a replay through the cache from LevelDB: few store reads, the bytes LevelDB returned kept as they are, counted once', async (t) => {
  const { inner, store } = await cachedLog(t);
  const pages: Uint8Array[][] = [];
  for (let afterSeq = 0; afterSeq < 5120; afterSeq += 1024) pages.push((await store.readRun('x', afterSeq, 1024)).frames);
  const frames = pages.flat();
  t.same(frames.map((frame) => new TextDecoder().decode(frame)), from(1, 5120).map((seq) => `e${seq}`), 'every event, in order');
  t.equal(inner.reads, 2, 'two store reads for five pages: the first page, then sixteen blocks at once');
  const again = await store.readRun('x', 100, 1024);
  t.equal(inner.reads, 2, 'read again from the cache');
  t.ok(again.frames.every((frame, index) => frame.buffer === frames[100 + index]!.buffer), 'the frames LevelDB returned, not copies');
  // Each of the 32 values LevelDB returned counted once (160 frames of 5 to 7 bytes), though most are kept by two blocks.
  t.ok(store.cachedBytes <= 32 * 160 * 8 + 20 * 256, `counted once: ${store.cachedBytes} bytes`);
});

t.test('a reader of small pages past a cached block reads what it asks for, not sixteen blocks', async (t) => {
  const { inner, store } = await cachedLog(t);
  await store.readRun('x', 0, 256);
  const page = await store.readRun('x', 256, 10);
  t.same(page.frames.map((frame) => new TextDecoder().decode(frame)), from(257, 266).map((seq) => `e${seq}`), 'the ten events asked for');
  t.same(inner.limits, [256, 256], 'one block each (an HTTP page of 10 is not a replay going through the log)');
});

t.test('a reader that says where its log reaches (a replay) has the blocks after its page read at once, not when it asks for them', async (t) => {
  const { inner, store } = await cachedLog(t);
  const first = await store.readRun('x', 0, 1024, 5120);
  t.equal(first.frames.length, 1024, 'the first page');
  // Before: the sixteen blocks began only when the next page was asked for (and found block 4 missing).
  t.same(inner.starts, [0, 1024], 'the page, and the blocks after it already being read');
  t.same(inner.limits, [1024, 4096], 'sixteen blocks at once');
  const pages: Uint8Array[][] = [first.frames];
  for (let afterSeq = 1024; afterSeq < 5120; afterSeq += 1024) pages.push((await store.readRun('x', afterSeq, 1024, 5120)).frames);
  t.same(pages.flat().map((frame) => new TextDecoder().decode(frame)), from(1, 5120).map((seq) => `e${seq}`), 'every event, in order');
  t.equal(inner.reads, 2, 'no more store reads than before: the rest came from what was read ahead');
});

t.test('a read ahead stops at the seq the log is known to reach, and small pages never read ahead', async (t) => {
  const { inner, store } = await cachedLog(t);
  await store.readRun('x', 0, 1024, 2000);
  t.same(inner.limits, [1024, 1024], 'blocks 4 to 7 only: seq 2000 is in block 7');
  await store.readRun('x', 1024, 1024, 2000);
  t.same(inner.limits, [1024, 1024], 'the next page came from it, and nothing past seq 2000 was read');
  const small = await cachedLog(t);
  await small.store.readRun('x', 0, 10, 5120);
  t.same(small.inner.limits, [256], 'a reader of 10 events reads its one block, nothing ahead');
});

/** Replays x's `events` events in pages of 1 024 through `store`, as the hub does (one page read ahead, each sent meanwhile); how many it got. */
async function replay(store: CachedEventStore, events: number, knownEnd: number | undefined): Promise<number> {
  let got = 0;
  let ahead = store.readRun('x', 0, 1024, knownEnd);
  for (let after = 0; after < events;) {
    const page = await ahead;
    got += page.frames.length;
    after += page.frames.length;
    if (after < events) ahead = store.readRun('x', after, 1024, knownEnd);
    // The page is sent meanwhile (the socket's write): a turn of the loop.
    await new Promise((resolve) => setImmediate(resolve));
  }
  return got;
}

t.test('under cache pressure a read ahead reads no block twice: no more events read from the store than without it', async (t) => {
  // 8 192 events of 100 bytes in chunks of 256 (a LevelDB value a block), through a cache of about
  // 16 such blocks (a 32 MB cache shared by ~50 replays of such logs, or ~5 of 1 KB lines): less
  // than one replay's page, 16-block read and 8-block window. Before, the cache evicted the nearest
  // read-ahead blocks first and the replay read 12 288 events, against 9 216 without the read ahead.
  const location = await storedLog(t, 8192, 256, (seq) => new TextEncoder().encode(`e${seq}`.padEnd(100, '.')));
  const maxBytes = 16 * (256 * 104 + 256);
  const sum = (limits: number[]) => limits.reduce((a, b) => a + b, 0);
  const without = await cacheOver(t, location, maxBytes);
  t.equal(await replay(without.store, 8192, undefined), 8192, 'without knownEnd: every event');
  await without.store.close(); // LevelDB's lock: one store open on the location at a time
  const ahead = await cacheOver(t, location, maxBytes);
  t.equal(await replay(ahead.store, 8192, 8192), 8192, 'with knownEnd: every event');
  t.comment(`without knownEnd: ${without.inner.reads} reads, ${sum(without.inner.limits)} events read; with: ${ahead.inner.reads} reads, ${sum(ahead.inner.limits)} events read`);
  t.ok(sum(ahead.inner.limits) <= sum(without.inner.limits), 'the read ahead reads no more events from the store than the replay did without it');
  t.ok(ahead.inner.limits.every((limit) => limit * 104 <= maxBytes / 2), 'no store read of more than about half the cache');
});
