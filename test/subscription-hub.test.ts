/**
 * The subscription hub (src/events/subscription-hub.ts) fed by a LiveFeed, in process: an
 * execution running elsewhere (another node) is followed, not taken for ended, and a subscriber
 * joining in the middle of it gets every event once, in order, stored ones first and then the ones
 * the feed delivers, with no gap at the hand-off.
 */
import t, { type Test } from 'tap';
import { SendResult, SubscriptionHub } from '../src/events/subscription-hub.js';
import { StoreError } from '../src/store/event-store.js';
import { LocalFeed } from '../src/events/live-feed.js';
import { MemoryEventStore } from './helpers/memory-store.js';
import { encodeFrame } from '../protocol/codec.js';
import { BatchRunSink, CountingStore, eventFrames, frames, RemoteFeed, RunSink, seqs, setup, Sink, text } from './helpers/hub-fakes.js';

t.test('an execution running elsewhere is followed, not ended; stored then live, no gap, no duplicate', async (t) => {
  const { store, feed, hub } = await setup(t);
  await feed.deliver(hub, store, 'x', 1, 1500);
  const sink = new Sink();
  hub.attach(sink, 'x', 200, null);
  // Chunks keep arriving while the subscriber reads the stored ones.
  for (let seq = 1501; seq < 1600; seq += 11) await feed.deliver(hub, store, 'x', seq, 11);
  await sink.until(() => sink.received.length === 1399);
  t.same(feed.followed, [['x', 200]], 'followed once, from the subscriber\'s cursor');
  t.same(sink.received, seqs('x', 201, 1599), 'every event after the cursor, once, in order');
  await feed.deliver(hub, store, 'x', 1600, 1);
  hub.finish('x', 1600);
  await sink.until(() => sink.ends === 1);
  t.same(sink.received.slice(-1), ['x#1600'], 'the last one too');
  t.equal(sink.ends, 1, 'ended once, after the final seq');
  t.same(sink.reasons, ['complete'], 'ended complete');
  t.same(feed.unfollowed, ['x'], 'the follow stops with its last subscriber');
});

t.test('an execution that ended elsewhere: read to its final seq, never followed', async (t) => {
  const { store, feed, hub } = await setup(t);
  await feed.deliver(hub, store, 'y', 1, 30);
  feed.state = { lastSeq: 30, finalSeq: 30 };
  const sink = new Sink();
  hub.attach(sink, 'y', 10, null);
  await sink.until(() => sink.ends === 1);
  t.same(sink.received, seqs('y', 11, 30));
  t.same(feed.followed, [], 'not followed');
});

t.test('an unknown execution ends its subscription at once', async (t) => {
  const { feed, hub } = await setup(t);
  feed.state = null;
  const sink = new Sink();
  hub.attach(sink, 'nobody', 0, null);
  await sink.until(() => sink.ends === 1);
  t.same(sink.received, []);
  t.same(sink.reasons, ['deleted'], 'as a log that is gone (its subscribe found it: it was deleted since)');
});

t.test('LocalFeed: live here, ended, or never ended (its log, not its record, says where it ends; without a `done` it never will)', async (t) => {
  const store = new MemoryEventStore();
  await store.open();
  t.teardown(() => store.close());
  const live = new Map<string, number>([['running', 7]]);
  const feed = new LocalFeed(store, (id) => live.get(id));
  const base = { session_id: 's', number: 1, kind: 'repl' as const, created_at: 1, timeout_ms: 1000, code: '1' };
  // Never ended: its last event a `done` (its record's end not written), or not (the store refused the rest).
  for (const [id, last] of [['left', 'done'], ['refused', 'console']] as const) {
    const events = Array.from({ length: 5 }, (_, i) => encodeFrame({ op: 'event', execution_id: id, seq: i + 1, type: i === 4 ? last : 'console', ts: 0, payload: {} as never }));
    await store.createExecution({ ...base, execution_id: id, status: 'running', last_seq: 0 });
    await store.commit({ sessions: [], executions: [{ ...base, execution_id: id, status: 'running', last_seq: 2 }], events: [{ executionId: id, firstSeq: 1, frames: events }] });
  }
  await store.createExecution({ ...base, execution_id: 'ended', status: 'queued', last_seq: 0 });
  await store.commit({ sessions: [], executions: [{ ...base, execution_id: 'ended', status: 'ok', last_seq: 3, ended_at: 2 }], events: [{ executionId: 'ended', firstSeq: 1, frames: frames('ended', 1, 3) }] });
  t.same(await feed.locate('running'), { lastSeq: 7, finalSeq: null }, 'live here: running, at its committed seq');
  t.equal(feed.committedSeq('running'), 7);
  t.same(await feed.locate('ended'), { lastSeq: 3, finalSeq: 3 }, 'ended: where its record says');
  t.same(await feed.locate('left'), { lastSeq: 5, finalSeq: 5 }, 'never ended, its log ends with a `done`: there, past its record\'s last_seq');
  t.same(await feed.locate('refused'), { lastSeq: 5, finalSeq: null, refused: true }, 'never ended, and no `done`: refused, it never gets one');
  t.equal(await feed.locate('nobody'), null, 'unknown');
  t.equal(feed.committedSeq('ended'), undefined, 'nothing but live executions has a committed seq');
});

t.test('a log that ends without a `done` (the store refused the rest): what was stored, then ended as refused, never followed', async (t) => {
  const { store, feed, hub } = await setup(t);
  await store.commit({ sessions: [], executions: [], events: [{ executionId: 'r', firstSeq: 1, frames: frames('r', 1, 3) }] });
  feed.state = { lastSeq: 3, finalSeq: null, refused: true };
  const sink = new Sink();
  hub.attach(sink, 'r', 1, null);
  await sink.until(() => sink.ends === 1);
  t.same(sink.received, seqs('r', 2, 3), 'from its cursor to the log\'s end');
  t.same(sink.reasons, ['refused']);
  t.same(feed.followed, [], 'not followed: nothing more will come');
});

t.test('a catch-up reads the next page while it sends the current one, one page ahead at most', async (t) => {
  const store = new CountingStore();
  await store.open();
  t.teardown(() => store.close());
  const feed = new RemoteFeed();
  const hub = new SubscriptionHub(store, feed, (error) => t.fail(String(error)));
  await feed.deliver(hub, store, 'z', 1, 3000);
  feed.state = { lastSeq: 3000, finalSeq: 3000 };
  const readsBegunAt: number[] = [];
  const sink = new Sink();
  const send = sink.send.bind(sink);
  sink.send = (frame) => {
    // When each page's first event goes out, how many reads have begun.
    if (sink.received.length % 1024 === 0) readsBegunAt.push(store.started.length);
    return send(frame);
  };
  hub.attach(sink, 'z', 0, null);
  await sink.until(() => sink.ends === 1);
  t.same(sink.received, seqs('z', 1, 3000), 'every event once, in order');
  t.same(store.started, [0, 1024, 2048], 'each page read once, from where the one before ended');
  t.same(readsBegunAt, [2, 3, 3], 'the next page was being read while each page was sent');
  t.equal(store.maxInFlight, 1, 'one read at a time: never more than one page ahead of what is sent');
  t.same(store.knownEnds, [3000, 3000, 3000], 'each read told the store where the log reaches (the replay cache reads ahead to it)');
});

t.test('a catch-up lets the turn end after its first page: the socket writes it before the rest of a log read from memory is queued', async (t) => {
  const { store, feed, hub } = await setup(t);
  await feed.deliver(hub, store, 'f', 1, 3000);
  feed.state = { lastSeq: 3000, finalSeq: 3000 };
  const sink = new Sink();
  hub.attach(sink, 'f', 0, null);
  // A socket's outbox writes at setImmediate, queued with the `subscribed` reply before the attach:
  // what the sink holds when this turn's immediates run is what its first write carries.
  await new Promise((resolve) => setImmediate(resolve));
  t.same(sink.received, seqs('f', 1, 1024), 'the first page, and nothing more, by the end of the turn');
  await sink.until(() => sink.ends === 1);
  t.same(sink.received, seqs('f', 1, 3000), 'then the rest: every event once, in order');
  t.same(sink.reasons, ['complete']);
});

t.test('a log with a gap (a store should never have one): sent up to the gap, read again a few times, reported, then ended', async (t) => {
  const store = new CountingStore();
  await store.open();
  t.teardown(() => store.close());
  const feed = new RemoteFeed();
  const errors: string[] = [];
  const hub = new SubscriptionHub(store, feed, (error) => errors.push(String(error)));
  // Seqs 1–3 and 6–8: 4 and 5 are missing.
  await store.commit({ sessions: [], executions: [], events: [{ executionId: 'g', firstSeq: 1, frames: frames('g', 1, 3) }, { executionId: 'g', firstSeq: 6, frames: frames('g', 6, 3) }] });
  feed.state = { lastSeq: 8, finalSeq: 8 };
  const sink = new Sink();
  hub.attach(sink, 'g', 0, null);
  await sink.until(() => sink.ends === 1);
  t.same(sink.received, seqs('g', 1, 3), 'the events before the gap, nothing after it');
  t.same(store.started, [0, ...Array(9).fill(3)], 'one read to the gap, then the gap read again (bounded), no spin');
  t.equal(errors.length, 9, 'each read that found nothing short of the log\'s end is reported');
  t.match(errors[0], /after seq 3 found nothing, but its log reaches seq 8/);
  t.same(sink.reasons, ['gap'], 'the sink hears it ended at a gap, not at its done');
});

/** Finds nothing after `emptyAfter` the first `misses` times it is asked (a read that did not see the log's end yet). */
class LaggingStore extends CountingStore {
  constructor(readonly emptyAfter: number, public misses: number) {
    super();
  }
  protected override async _readEvents(executionId: string, afterSeq: number, limit: number) {
    const events = await super._readEvents(executionId, afterSeq, limit);
    if (afterSeq !== this.emptyAfter || this.misses === 0) return events;
    this.misses--;
    return [];
  }
}

/**
 * Replays `count` stored events of `id` from `store` to a new sink, until its subscription ends.
 * `finalKnown`: the subscriber is told the final seq at attach (as for an execution that ended);
 * `deleted`: the log is gone (retention) by the time the hub asks where it is.
 */
async function replayed(t: Test, store: CountingStore, id: string, count: number, { finalKnown = false, deleted = false } = {}) {
  await store.open();
  t.teardown(() => store.close());
  const feed = new RemoteFeed();
  const errors: string[] = [];
  const hub = new SubscriptionHub(store, feed, (error) => errors.push(String(error)));
  await feed.deliver(hub, store, id, 1, count);
  feed.state = deleted ? null : { lastSeq: count, finalSeq: count };
  const sink = new Sink();
  hub.attach(sink, id, 0, finalKnown ? count : null);
  await sink.until(() => sink.ends === 1);
  return { hub, feed, sink, errors };
}

t.test('a catch-up read that finds nothing short of the known end is read again: the subscription does not end silently at a page boundary', async (t) => {
  // The CI failure: seqs 1-1024 replayed, the next page read found nothing, and the subscription ended
  // without the `done` at 1025: the client waited for it forever.
  const store = new LaggingStore(1024, 2);
  const { sink, errors } = await replayed(t, store, 'p', 1025, { finalKnown: true });
  t.same(sink.received, seqs('p', 1, 1025), 'every event, the last page\'s too, once, in order');
  t.same(store.started, [0, 1024, 1024, 1024], 'the empty page read again until it held the rest');
  t.equal(errors.length, 2, 'each empty read reported');
});

t.test('a log deleted under a catch-up (retention): the empty read ends the subscription at once', async (t) => {
  const store = new LaggingStore(1024, Infinity);
  const { sink, errors } = await replayed(t, store, 'd', 1100, { finalKnown: true, deleted: true });
  t.same(sink.received, seqs('d', 1, 1024), 'what was read before it went');
  t.same(store.started, [0, 1024], 'not read again');
  t.same(errors, [], 'a deletion is no error');
  t.same(sink.reasons, ['deleted'], 'the sink hears its log was deleted');
});

/** Fails its reads after `failAfter` with `code`, the first `failures` times it is asked. */
class FailingStore extends CountingStore {
  constructor(readonly failAfter: number, readonly code: 'STORE_UNAVAILABLE' | 'STORE_BAD_ARGUMENT', public failures: number) {
    super();
  }
  protected override async _readEvents(executionId: string, afterSeq: number, limit: number) {
    if (afterSeq === this.failAfter && this.failures > 0) {
      this.failures--;
      throw new StoreError(this.code, `read of ${executionId} after ${afterSeq} failed`);
    }
    return super._readEvents(executionId, afterSeq, limit);
  }
}

t.test('a read that fails (not unavailable) ends the subscription as unreadable, after what was sent, reported once', async (t) => {
  const { sink, errors } = await replayed(t, new FailingStore(1024, 'STORE_BAD_ARGUMENT', Infinity), 'f', 1100);
  t.same(sink.received, seqs('f', 1, 1024), 'the page before the failure, nothing after it');
  t.same(sink.reasons, ['unreadable'], 'the sink hears its log could not be read');
  t.equal(errors.length, 1, 'the failure is reported');
  t.match(errors[0], /read of f after 1024 failed/);
});

t.test('a store that did not answer is asked again: the subscription ends complete; a detach ends it detached', async (t) => {
  const { hub, feed, sink, errors } = await replayed(t, new FailingStore(1024, 'STORE_UNAVAILABLE', 1), 'u', 1100);
  t.same(sink.received, seqs('u', 1, 1100), 'every event once, in order, across the retried read');
  t.same(sink.reasons, ['complete']);
  t.equal(errors.length, 1, 'the unanswered read is reported');
  feed.state = { lastSeq: 1100, finalSeq: null };
  hub.attach(sink, 'u', 1100, null);
  t.ok(hub.detach(sink, 'u'));
  t.same(sink.reasons, ['complete', 'detached'], 'an unsubscribe is a detach');
});

/**
 * Replays a stored log of 2600 events (`framesOf`) to `sink` from after seq 5, resuming it each time
 * it stopped, as a drain would (the next turn finds it paused or ended), until its subscription
 * ended (or it paused `most` times); checks that it got every event after the cursor once, in order.
 */
async function replayedAfter5(t: Test, sink: Sink, id: string, most: number, framesOf: (id: string, from: number, count: number) => Uint8Array[] = frames): Promise<SubscriptionHub> {
  const { store, feed, hub } = await setup(t);
  await store.commit({ sessions: [], executions: [], events: [{ executionId: id, firstSeq: 1, frames: framesOf(id, 1, 2600) }] });
  feed.state = { lastSeq: 2600, finalSeq: 2600 };
  hub.attach(sink, id, 5, null);
  while (sink.ends === 0 && hub.pauses < most) {
    await new Promise((resolve) => setImmediate(resolve));
    await hub.resume(sink);
  }
  t.same(sink.received, seqs(id, 6, 2600), 'every event after the cursor once, in order');
  return hub;
}

t.test('a sink that takes runs gets each page in one call: paused where it is full, resumed, ended after the final seq', async (t) => {
  const sink = new RunSink(700);
  const hub = await replayedAfter5(t, sink, 'r', 10);
  t.equal(sink.single, 0, 'nothing sent one by one');
  t.equal(hub.pauses, 3, 'paused each time the sink was full (700 of 2595)');
  t.equal(sink.ends, 1, 'ended once, after the final seq');
});

/** A sink without `sendRun` (as an event stream): full after every `room` frames it took, and it drops `drop` the first time. */
class FillingSink extends Sink {
  calls = 0;
  #taken = 0;
  constructor(readonly room: number, public drop: string | null) {
    super();
  }
  override send(frame: Uint8Array): SendResult {
    this.calls++;
    if (text.decode(frame) === this.drop) {
      this.drop = null;
      return SendResult.DROPPED;
    }
    super.send(frame);
    return ++this.#taken % this.room === 0 ? SendResult.SENT_FULL : SendResult.SENT;
  }
}

t.test('a sink without sendRun gets its runs one frame at a time: stopped at the first not SENT, a dropped frame sent again, ended after the final seq', async (t) => {
  const sink = new FillingSink(700, 'o#1000');
  const hub = await replayedAfter5(t, sink, 'o', 10);
  t.equal(sink.calls, 2595 + 1, 'nothing sent past a frame that was not SENT: each sent once, the dropped one twice');
  t.equal(hub.pauses, 4, 'paused each time the sink was full (700 of 2595) and once for the drop');
  t.same(sink.reasons, ['complete'], 'ended once, after the final seq');
});

t.test('a sink without sendRun that ends its subscription from inside send (an event stream at `done`) is sent nothing more', async (t) => {
  const { store, feed, hub } = await setup(t);
  await feed.deliver(hub, store, 'e', 1, 50);
  const sink = new Sink();
  const send = sink.send.bind(sink);
  sink.send = (frame) => {
    const result = send(frame);
    if (text.decode(frame) === 'e#20') hub.detach(sink, 'e');
    return result;
  };
  hub.attach(sink, 'e', 0, null);
  await sink.until(() => sink.ends === 1);
  t.same(sink.received, seqs('e', 1, 20), 'up to the frame whose send ended it');
  t.same(sink.reasons, ['detached']);
});

t.test('`events` frames (v1.1) go through the sink\'s sendRun too, one run per batch: paused where it is full, resumed from the cursor', async (t) => {
  // Full after each batch: every batch but the last pauses it.
  const sink = new BatchRunSink(1);
  const hub = await replayedAfter5(t, sink, 'b', 20, eventFrames);
  t.equal(sink.single, 0, 'nothing sent through send');
  t.equal(sink.runs, hub.pauses + 1, 'one run per batch, a pause after each but the last');
  t.ok(sink.runs >= Math.ceil(2595 / 256), `${sink.runs} batches`);
  t.same(sink.reasons, ['complete'], 'ended once, after the final seq');
});
