/**
 * Protocol v1.1 `events` frames, in process: the encoder (protocol/batch.ts) against msgpack's own
 * encoding of the same frame, its bounds, and the hub (src/events/subscription-hub.ts) handing a
 * batched subscriber every event once, in order, across stored and live, paused and resumed.
 * test/subscribe-batch.test.ts holds a real server's batched streams to the same guarantees.
 */
import t from 'tap';
import fc from 'fast-check';
import { BATCH_MAX_BYTES, BATCH_MAX_EVENTS, batchEnd, encodeEvents, eventsOf } from '../protocol/batch.js';
import { decodeValue, encodeFrame } from '../protocol/codec.js';
import type { EventFrame, EventsFrame } from '../protocol/types.js';
import { SendResult, SubscriptionHub, type EventSink } from '../src/events/subscription-hub.js';
import type { LiveFeed, LogState } from '../src/events/live-feed.js';
import { MemoryEventStore } from './helpers/memory-store.js';

const eventFrame = (executionId: string, seq: number, text: string): EventFrame => ({
  op: 'event', execution_id: executionId, seq, type: 'console', ts: 1_700_000_000_000 + seq, payload: { level: 'log', text },
});
const encoded = (executionId: string, seq: number, text = `line ${seq}`) => encodeFrame(eventFrame(executionId, seq, text));

t.test('an events frame holds the events of its frames, built from their bytes without decoding', async (t) => {
  fc.assert(fc.property(
    fc.stringMatching(/^[A-Za-z0-9_.:-]{1,128}$/),
    fc.array(fc.string({ maxLength: 300 }), { minLength: 1, maxLength: 40 }),
    fc.integer({ min: 1, max: 2 ** 40 }),
    (id, texts, first) => {
      const events = texts.map((text, i) => eventFrame(id, first + i, text));
      const built = encodeEvents(events.map((event) => encodeFrame(event)), 0, events.length);
      const frame = decodeValue(built) as EventsFrame;
      if (frame.op !== 'events' || frame.execution_id !== id) throw new Error(`head: ${frame.op} ${frame.execution_id}`);
      t.same(eventsOf(frame), events);
      // The fast path writes each item as a fixmap where msgpackr (the slow path) writes a map16.
      const reference = encodeFrame({ op: 'events', execution_id: id, events: frame.events });
      if (built.length >= reference.length) throw new Error('built by decoding, not from the bytes');
    },
  ), { numRuns: 200 });
});

t.test('frames of another layout are decoded and re-encoded: same events frame', async (t) => {
  const other = [1, 2, 3].map((seq) => encodeFrame({ seq, op: 'event', type: 'console', execution_id: 'x', ts: 5, payload: { level: 'log', text: `t${seq}` } }));
  const frame = decodeValue(encodeEvents(other, 0, 3)) as EventsFrame;
  t.equal(frame.op, 'events');
  t.equal(frame.execution_id, 'x');
  t.same(frame.events.map((e) => e.seq), [1, 2, 3]);
  t.same(frame.events[2], { seq: 3, type: 'console', ts: 5, payload: { level: 'log', text: 't3' } });
});

t.test('bounds: at most 256 events and 64 KiB a frame, at least one event', async (t) => {
  const small = Array.from({ length: 1000 }, (_, i) => encoded('x', i + 1));
  t.equal(batchEnd(small, 0), BATCH_MAX_EVENTS);
  t.equal(batchEnd(small, 900), 1000, 'the tail of a run');
  const big = Array.from({ length: 10 }, (_, i) => encoded('x', i + 1, 'b'.repeat(20_000)));
  t.equal(batchEnd(big, 0), 3, 'three 20 KB events fit in 64 KiB, four do not');
  const huge = [encoded('x', 1, 'h'.repeat(100_000)), encoded('x', 2)];
  t.equal(batchEnd(huge, 0), 1, 'an event past the byte bound goes alone');
  const frame = encodeEvents(big, 0, 3);
  t.ok(frame.length <= BATCH_MAX_BYTES + 64, `${frame.length} bytes`);
});

/** A sink that records what it is sent and, when told to, reports its buffer full. */
class BatchSink implements EventSink {
  readonly seqs: number[] = [];
  readonly sizes: Array<{ events: number; bytes: number }> = [];
  singles = 0;
  ends = 0;
  full: () => boolean = () => false;
  #onChange = () => {};
  constructor(readonly batch: boolean) {}
  send(bytes: Uint8Array): SendResult {
    const frame = decodeValue(bytes) as EventFrame | EventsFrame;
    if (frame.op === 'events') {
      this.sizes.push({ events: frame.events.length, bytes: bytes.length });
      for (const event of frame.events) this.seqs.push(event.seq);
    } else {
      this.singles++;
      this.seqs.push(frame.seq);
    }
    this.#onChange();
    return this.full() ? SendResult.SENT_FULL : SendResult.SENT;
  }
  cork(fn: () => void): void {
    fn();
  }
  batched(): boolean {
    return this.batch;
  }
  ended(): void {
    this.ends++;
    this.#onChange();
  }
  until(ready: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      this.#onChange = () => { if (ready()) resolve(); };
      this.#onChange();
    });
  }
}

/** The execution is live here, committed up to `committed`. */
class TestFeed implements LiveFeed {
  committed = 0;
  final: number | null = null;
  committedSeq(): number | undefined {
    return this.committed;
  }
  async locate(): Promise<LogState | null> {
    return { lastSeq: this.committed, finalSeq: this.final };
  }
  follow(): void {}
  unfollow(): void {}
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

t.test('property: stored then live, paused and resumed, batched or not: after_seq + 1 … final, each once, frames in bounds', async (t) => {
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 1, max: 1500 }),
    fc.double({ min: 0, max: 1, noNaN: true }),
    fc.double({ min: 0, max: 1, noNaN: true }),
    fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 30 }),
    fc.array(fc.boolean(), { minLength: 1, maxLength: 16 }),
    fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 16 }),
    async (total, storedShare, afterShare, chunkSizes, fullPattern, waits) => {
      const store = new MemoryEventStore();
      await store.open();
      const feed = new TestFeed();
      const hub = new SubscriptionHub(store, feed, (error) => { throw error; });
      const id = 'x';
      const commit = async (firstSeq: number, count: number) => {
        const chunk = { executionId: id, firstSeq, frames: Array.from({ length: count }, (_, i) => encoded(id, firstSeq + i, 'p'.repeat((firstSeq + i) % 700))) };
        await store.commit({ sessions: [], executions: [], events: [chunk] });
        feed.committed = firstSeq + count - 1;
        hub.deliver([chunk]);
      };
      const stored = Math.floor(total * storedShare);
      for (let seq = 1; seq <= stored; seq += 500) await commit(seq, Math.min(500, stored - seq + 1));
      const afterSeq = Math.floor(stored * afterShare);
      let sends = 0;
      const sinks = [new BatchSink(true), new BatchSink(false), new BatchSink(true)];
      // The last sink fills up now and then: it pauses, and catches up from the store when resumed.
      sinks[2]!.full = () => fullPattern[sends++ % fullPattern.length]!;
      for (const sink of sinks) hub.attach(sink, id, afterSeq, null);
      let seq = stored + 1;
      for (let i = 0; seq <= total; i++) {
        const count = Math.min(chunkSizes[i % chunkSizes.length]!, total - seq + 1);
        await commit(seq, count);
        seq += count;
        for (let wait = 0; wait < waits[i % waits.length]!; wait++) await tick();
        hub.resume(sinks[2]!);
      }
      hub.finish(id, total);
      sinks[2]!.full = () => false;
      hub.resume(sinks[2]!);
      for (const sink of sinks) await sink.until(() => sink.ends === 1);
      const expected = Array.from({ length: total - afterSeq }, (_, i) => afterSeq + 1 + i);
      for (const sink of sinks) {
        if (JSON.stringify(sink.seqs) !== JSON.stringify(expected)) throw new Error(`batch ${sink.batch}: got ${sink.seqs.length} seqs, want ${expected.length}; first ${sink.seqs.slice(0, 5)}`);
        if (sink.ends !== 1) throw new Error('ended more than once');
        if (sink.batch && sink.singles > 0) throw new Error('a batched sink got single frames');
        if (!sink.batch && sink.sizes.length > 0) throw new Error('a plain sink got events frames');
        for (const { events, bytes } of sink.sizes) {
          if (events < 1 || events > BATCH_MAX_EVENTS || (events > 1 && bytes > BATCH_MAX_BYTES + 64)) throw new Error(`frame of ${events} events, ${bytes} bytes`);
        }
      }
      await store.close();
    },
  ), { numRuns: 60 });
  t.pass('every run held');
});

t.test('subscribers at the same cursor share the events frames a chunk makes', async (t) => {
  const store = new MemoryEventStore();
  await store.open();
  t.teardown(() => store.close());
  const feed = new TestFeed();
  const hub = new SubscriptionHub(store, feed, (error) => t.fail(String(error)));
  const sent: Uint8Array[][] = [[], []];
  const sinks = sent.map((list): EventSink => ({ send: (frame) => (list.push(frame), SendResult.SENT), cork: (fn) => fn(), batched: () => true }));
  for (const sink of sinks) hub.attach(sink, 'x', 0, null);
  await new Promise<void>((resolve) => setImmediate(resolve));
  const chunk = { executionId: 'x', firstSeq: 1, frames: Array.from({ length: 600 }, (_, i) => encoded('x', i + 1)) };
  feed.committed = 600;
  hub.deliver([chunk]);
  t.equal(sent[0]!.length, 3, '600 events: 256 + 256 + 88');
  t.ok(sent[0]!.every((frame, i) => frame === sent[1]![i]), 'the same bytes, built once');
});
