/**
 * The hub's catch-up from memory (src/events/recent-frames.ts): a subscriber paused under a live
 * stream catches up from the chunks delivered since, kept while it is behind, instead of reading the
 * log back from the store; every event still once, in order, across the store → memory hand-off,
 * an end, a takeover and the kept frames' eviction.
 */
import t, { type Test } from 'tap';
import { SubscriptionHub } from '../src/events/subscription-hub.js';
import { LocalFeed } from '../src/events/live-feed.js';
import { BatchRunSink, CountingStore, eventFrames, frames, RemoteFeed, RunSink, seqs, setup, Sink, text, utf8 } from './helpers/hub-fakes.js';

/** A log live here (LocalFeed), in a CountingStore: `commit` stores a chunk of `count` more frames (made by `make`), then delivers it. */
async function liveLog(t: Test, id: string, make: (id: string, from: number, count: number) => Uint8Array[] = frames) {
  const store = new CountingStore();
  await store.open();
  t.teardown(() => store.close());
  let committed = 0;
  const hub = new SubscriptionHub(store, new LocalFeed(store, (execution) => (execution === id ? committed : undefined)), (error) => t.fail(String(error)));
  const commit = async (count: number) => {
    const chunk = { executionId: id, firstSeq: committed + 1, frames: make(id, committed + 1, count) };
    await store.commit({ sessions: [], executions: [], events: [chunk] });
    committed += count;
    hub.deliver([chunk]);
  };
  return { store, hub, commit };
}

t.test('a subscriber paused under a live stream catches up from the frames committed since, kept in memory: no store read; they go once it is live', async (t) => {
  const { store, hub, commit } = await liveLog(t, 'k');
  const sink = new RunSink(700);
  hub.attach(sink, 'k', 0, null);
  await commit(1000);
  t.equal(hub.pauses, 1, 'full after 700 of the first 1000: paused');
  await commit(1000);
  await commit(1000);
  t.ok(hub.keptBytes > 0, 'what came while it was paused is kept');
  while (sink.received.length < 3000) await hub.resume(sink);
  t.same(sink.received, seqs('k', 1, 3000), 'every event once, in order');
  t.same(store.knownEnds, [], 'none of it read from the store');
  t.equal(hub.reads, 0);
  t.equal(hub.keptBytes, 0, 'live again: nothing kept');
  await commit(10);
  t.same(sink.received.slice(3000), seqs('k', 3001, 3010), 'and live frames follow');
});

t.test('a subscriber further behind than what is kept reads the store up to it, then takes the rest from memory', async (t) => {
  const { store, hub, commit } = await liveLog(t, 'm');
  await commit(3000); // before anyone subscribed: nothing kept
  t.equal(hub.keptBytes, 0);
  const sink = new Sink();
  hub.attach(sink, 'm', 0, null); // catching up from the store from seq 1
  await commit(500); // committed while it catches up: kept
  await sink.until(() => sink.received.length === 3500);
  t.same(sink.received, seqs('m', 1, 3500), 'every event once, in order, across the hand-off from the store to memory');
  t.same(store.started, [0, 1024, 2048], 'the store read only up to what was kept');
  t.equal(hub.keptBytes, 0, 'live again: nothing kept');
});

t.test('an execution that ends while a batched subscriber is paused: `events` frames from what was kept, to the final seq, then the end; a socket closed while paused lets go of its share', async (t) => {
  const { store, hub, commit } = await liveLog(t, 'e', eventFrames);
  const batched = new BatchRunSink(1); // full after each `events` frame
  const live = new BatchRunSink(Infinity); // never full
  const closing = new RunSink(10);
  for (const sink of [batched, live, closing]) hub.attach(sink, 'e', 0, null);
  await commit(600);
  await commit(600);
  hub.finish('e', 1200);
  t.same(live.received, seqs('e', 1, 1200), 'the live one: every event');
  t.same(live.reasons, ['complete']);
  hub.detachAll(closing);
  t.ok(hub.keptBytes > 0, 'kept for the one still paused');
  while (batched.reasons.length === 0) await hub.resume(batched);
  t.same(batched.received, seqs('e', 1, 1200), 'every event once, in order, none past the final seq');
  t.same(batched.reasons, ['complete'], 'ended once, at the final seq');
  t.same(store.knownEnds, [], 'nothing read from the store');
  t.equal(hub.keptBytes, 0, 'nobody behind: nothing kept');
});

/** A feed for an execution live here until another node takes it over (`takeOver`), then followed as RemoteFeed does. */
class TakeoverFeed extends RemoteFeed {
  readonly local = new Map<string, number>();
  override committedSeq(id: string): number | undefined {
    return this.local.get(id) ?? super.committedSeq(id);
  }
}

t.test('an execution taken over by another node while a subscriber is paused: what was kept here and what the follow brings go on as one run, to the final seq', async (t) => {
  const store = new CountingStore();
  const feed = new TakeoverFeed();
  const { hub } = await setup(t, feed, store);
  const paused = new RunSink(100);
  const live = new Sink();
  feed.local.set('o', 0);
  hub.attach(paused, 'o', 0, null);
  hub.attach(live, 'o', 0, null);
  for (const firstSeq of [1, 501]) {
    const chunk = { executionId: 'o', firstSeq, frames: frames('o', firstSeq, 500) };
    await store.commit({ sessions: [], executions: [], events: [chunk] });
    feed.local.set('o', firstSeq + 499);
    hub.deliver([chunk]);
  }
  // Another node runs it now: its log goes on there, and is followed here from where it stands.
  feed.local.delete('o');
  feed.state = { lastSeq: 1000, finalSeq: null };
  hub.relocate('o');
  await new Promise((resolve) => setImmediate(resolve));
  t.same(feed.followed, [['o', 1000]], 'followed from where the live subscriber stood');
  await feed.deliver(hub, store, 'o', 1001, 500);
  await feed.deliver(hub, store, 'o', 1501, 10);
  hub.finish('o', 1510);
  t.same(live.received, seqs('o', 1, 1510));
  while (paused.reasons.length === 0) await hub.resume(paused);
  t.same(paused.received, seqs('o', 1, 1510), 'every event once, in order, across the takeover');
  t.same(paused.reasons, ['complete']);
  t.same(store.knownEnds, [], 'none of it read back from the store');
  t.equal(hub.keptBytes, 0);
});

t.test('what is kept is let go from its oldest while a subscriber is midway through it: the store where it is gone, then memory again', async (t) => {
  // Frames of 1000 bytes, each its own buffer: 20 000 of them pass the 16 MiB kept.
  const wide = (id: string, from: number, count: number) => Array.from({ length: count }, (_, i) => utf8.encode(`${id}#${from + i}`.padEnd(1000)));
  const { store, hub, commit } = await liveLog(t, 'w', wide);
  const sink = new RunSink(700);
  sink.read = (frame) => [text.decode(frame).trimEnd()];
  hub.attach(sink, 'w', 0, null);
  for (let i = 0; i < 12; i++) await commit(1000);
  await hub.resume(sink);
  t.equal(sink.received.length, 1700, 'midway through the second chunk kept (700 a run)');
  for (let i = 0; i < 8; i++) await commit(1000);
  t.ok(hub.keptBytes <= 16 * 1024 * 1024, `${hub.keptBytes} bytes kept`);
  while (sink.received.length < 20000) await hub.resume(sink);
  t.same(sink.received, seqs('w', 1, 20000), 'every event once, in order');
  t.ok(store.started.length > 0 && store.started[0]! >= 1700, `the store read from where the kept frames were gone: ${store.started.join(', ')}`);
  // 15 chunks of 1000 frames counting 1000 + 112 bytes each fit in 16 MiB: seqs 5001 on are kept.
  t.ok(Math.max(...store.started) < 5000, 'and memory again once it reached what is still kept, with no read ahead into it');
  t.equal(hub.keptBytes, 0);
});
