/**
 * Review (review6): the replay cache's read-ahead (readRun's `knownEnd`) under cache pressure. The
 * read-ahead's result is kept only in the cache; a cache smaller than what replays read ahead
 * evicts it before its reader comes to it, and the reader reads those blocks again. Here one replay
 * through a cache that holds a few blocks: with the read-ahead it should make no more store reads
 * than without it (it reads what the replay needs, once).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { CachedEventStore } from '../src/store/cached-store.js';
import type { BinChunk } from '../src/store/event-store.js';
import { LevelEventStore } from '../src/store/level-store.js';

class CountingLevelStore extends LevelEventStore {
  /** Events asked for by each store read. */
  readonly limits: number[] = [];
  protected override _readBins(executionId: string, afterSeq: number, limit: number): Promise<BinChunk> {
    this.limits.push(limit);
    return super._readBins(executionId, afterSeq, limit);
  }
}

const frameOf = (seq: number) => new TextEncoder().encode(`e${seq}`.padEnd(100, '.'));

async function stored(t: Test): Promise<string> {
  const location = mkdtempSync(path.join(os.tmpdir(), 'vmstream-review6-'));
  t.teardown(() => rmSync(location, { recursive: true, force: true }));
  const writer = new LevelEventStore(location);
  await writer.open();
  for (let first = 1; first <= 8192; first += 256) {
    await writer.commit({ sessions: [], executions: [], events: [{ executionId: 'x', firstSeq: first, frames: Array.from({ length: 256 }, (_, i) => frameOf(first + i)) }] });
  }
  await writer.close();
  return location;
}

/** Replays x's 8 192 events in pages of 1 024 through a cache of `maxBytes`, as the hub does (one page read ahead); the events each store read asked for. */
async function replay(t: Test, location: string, maxBytes: number, knownEnd: number | undefined): Promise<{ limits: number[]; events: number }> {
  const inner = new CountingLevelStore(location);
  const store = new CachedEventStore(inner, maxBytes);
  await store.open();
  let events = 0;
  let ahead = store.readRun('x', 0, 1024, knownEnd);
  for (let after = 0; after < 8192;) {
    const page = await ahead;
    events += page.frames.length;
    after += page.frames.length;
    if (after < 8192) ahead = store.readRun('x', after, 1024, knownEnd);
    // The page is sent meanwhile (the socket's write): a turn of the loop.
    await new Promise((resolve) => setImmediate(resolve));
  }
  await store.close();
  return { limits: inner.limits, events };
}

t.test('a replay through a cache smaller than its read-ahead reads no block twice', async (t) => {
  const location = await stored(t);
  // About 16 blocks of these events (one read-ahead's worth; a 32 MB cache shared by ~50 replays of such logs, or ~5 of 1 KB lines) (each a LevelDB value of 256 frames of 100 bytes).
  const maxBytes = 16 * (256 * 104 + 256);
  const without = await replay(t, location, maxBytes, undefined);
  const withKnownEnd = await replay(t, location, maxBytes, 8192);
  t.equal(without.events, 8192);
  t.equal(withKnownEnd.events, 8192);
  const sum = (limits: number[]) => limits.reduce((a, b) => a + b, 0);
  t.comment(`without knownEnd: ${without.limits.length} reads, ${sum(without.limits)} events read; with: ${withKnownEnd.limits.length} reads, ${sum(withKnownEnd.limits)} events read`);
  t.ok(sum(withKnownEnd.limits) <= sum(without.limits), 'the read-ahead reads no more events from the store than the replay did without it');
});
