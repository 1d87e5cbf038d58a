/**
 * The shared cache of read events (src/store/cached-store.ts) in front of the in-memory store, in
 * process: readers of one execution share store reads, the cache stays within its bytes, a growing
 * log is read past what was cached, and a retention sweep leaves nothing of what it deleted behind.
 */
import t, { type Test } from 'tap';
import type { ExecutionRecord } from '../protocol/types.js';
import { CachedEventStore } from '../src/store/cached-store.js';
import type { StoredEvent } from '../src/store/event-store.js';
import { MemoryEventStore } from './helpers/memory-store.js';

const utf8 = new TextEncoder();
const text = new TextDecoder();
const frame = (id: string, seq: number) => utf8.encode(`${id}#${seq}`.padEnd(100, '.'));
const seqsOf = (events: StoredEvent[]) => events.map((event) => event.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** The backing store, counting the reads that reach it; `gate`, when set, holds each read's answer until it resolves. */
class CountingStore extends MemoryEventStore {
  reads = 0;
  gate: Promise<void> | null = null;
  protected override async _readEvents(executionId: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    this.reads++;
    const events = await super._readEvents(executionId, afterSeq, limit);
    await this.gate;
    return events;
  }
}

async function setup(t: Test, maxBytes = 1024 * 1024) {
  const inner = new CountingStore();
  const cache = new CachedEventStore(inner, maxBytes);
  await cache.open();
  t.teardown(() => cache.close());
  const append = async (id: string, from: number, to: number) => {
    const frames = range(from, to).map((seq) => frame(id, seq));
    const { failed } = await cache.commit({ sessions: [], executions: [], events: [{ executionId: id, firstSeq: from, frames }] });
    t.same(failed, [], `${id} ${from}–${to} stored`);
  };
  return { inner, cache, append };
}

t.test('readers of one execution share the store reads; what they get is the log, each from its own seq', async (t) => {
  const { inner, cache, append } = await setup(t);
  await append('x', 1, 2000);
  const cursors = range(0, 99).map((i) => i * 20);
  const pages = await Promise.all(cursors.map((after) => cache.readEvents('x', after, 1024)));
  pages.forEach((page, i) => {
    const after = cursors[i]!;
    t.same(seqsOf(page), range(after + 1, Math.min(2000, after + 1024)), `reader from ${after}`);
  });
  t.equal(text.decode(pages[3]![0]!.frame).slice(0, 6), 'x#61..', 'frames are the stored ones');
  t.ok(inner.reads <= 3, `100 readers, ${inner.reads} store reads`);
  const before = inner.reads;
  t.same(seqsOf(await cache.readEvents('x', 1500, 100)), range(1501, 1600), 'a later reader');
  t.equal(inner.reads, before, 'is served from memory');
});

t.test('the cache stays within its bytes, and readers still get everything when it cannot hold a block', async (t) => {
  const { inner, cache, append } = await setup(t, 20_000);
  for (const id of ['a', 'b', 'c']) await append(id, 1, 600);
  for (const id of ['a', 'b', 'c']) {
    t.same(seqsOf(await cache.readEvents(id, 0, 1024)), range(1, 600), `${id} read whole`);
    t.ok(cache.cachedBytes <= 20_000, `${cache.cachedBytes} bytes cached`);
  }
  const tiny = new CachedEventStore(inner, 1000);
  await tiny.open();
  t.same(seqsOf(await tiny.readEvents('a', 10, 1024)), range(11, 600), 'a cache smaller than one block still reads');
  t.equal(tiny.cachedBytes, 0, 'and keeps nothing');
});

t.test('a log that grows is read past the part of it that was cached', async (t) => {
  const { cache, append } = await setup(t);
  await append('live', 1, 300);
  t.same(seqsOf(await cache.readEvents('live', 0, 1024)), range(1, 300));
  await append('live', 301, 700);
  t.same(seqsOf(await cache.readEvents('live', 250, 1024)), range(251, 700), 'the new events follow the cached ones');
  t.same(seqsOf(await cache.readEvents('live', 700, 1024)), [], 'and the end of the log is its end');
});

t.test('a retention sweep that deleted an execution leaves none of its events in the cache', async (t) => {
  const { inner, cache, append } = await setup(t);
  const record: ExecutionRecord = { execution_id: 'old', session_id: 's', number: 1, kind: 'repl', status: 'running', created_at: 1, last_seq: 0, timeout_ms: 1000, code: '1' };
  await cache.createExecution(record);
  await append('old', 1, 300);
  await cache.commit({ sessions: [], executions: [{ ...record, status: 'ok', ended_at: 2, last_seq: 300 }], events: [] });
  t.same(seqsOf(await cache.readEvents('old', 0, 1024)), range(1, 300), 'read, and cached');

  // A read that began before the sweep and ends after it.
  let open!: () => void;
  inner.gate = new Promise((resolve) => (open = resolve));
  const late = cache.readEvents('old', 256, 1024);
  t.equal(await cache.expireEndedBefore(10, 100), 1, 'the sweep deleted it');
  open();
  t.same(seqsOf(await late), range(257, 300), 'the read under way ends with what it read');
  inner.gate = null;
  t.same(await cache.readEvents('old', 0, 1024), [], 'nothing of it is served afterwards');

  // Its id used again: the new log, not the old one.
  await cache.createExecution(record);
  await append('old', 1, 5);
  t.same(seqsOf(await cache.readEvents('old', 0, 1024)), range(1, 5), 'a new execution with the same id reads its own events');
});
