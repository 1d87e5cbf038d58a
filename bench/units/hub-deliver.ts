/**
 * Unit bench of fan-out (`SubscriptionHub.deliver`, src/events/subscription-hub.ts) without sockets:
 * frames per second handed to N fake sinks that accept everything, as a commit delivers them.
 *
 *   node dist/bench/units/hub-deliver.js [--sinks 1,16,256] [--executions 4] [--chunk 64] [--seconds 2] [--batch]
 *
 * Every sink subscribes to every execution, live from seq 0; each round delivers one chunk of
 * `chunk` frames per execution (one group commit). The figure bounds what fan-out can cost before
 * uWS's own send, which the fanout scenario measures end to end. With `--batch`, each sink count is
 * run again with sinks that asked for protocol v1.1 `events` frames (built once per chunk, shared).
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { CommittedChunk } from '../../src/events/commit-log.js';
import type { LiveFeed } from '../../src/events/live-feed.js';
import { SendResult, SubscriptionHub, type EventSink } from '../../src/events/subscription-hub.js';
import type { EventStore } from '../../src/store/event-store.js';
import { encodeFrame } from '../../protocol/codec.js';
import { BATCH_MAX_EVENTS } from '../../protocol/batch.js';
import { eventFrame } from '../harness/frames.js';

const { values } = parseArgs({
  options: {
    sinks: { type: 'string', default: '1,16,256' },
    executions: { type: 'string', default: '4' },
    chunk: { type: 'string', default: '64' },
    seconds: { type: 'string', default: '2' },
    batch: { type: 'boolean', default: false },
  },
});
const executions = Number(values.executions);
const chunkFrames = Number(values.chunk);
const seconds = Number(values.seconds);

class CountingSink implements EventSink {
  frames = 0;
  constructor(readonly batch: boolean) {}
  batched(): boolean {
    return this.batch;
  }
  send(): SendResult {
    this.frames++;
    return SendResult.SENT;
  }
  cork(fn: () => void): void {
    fn();
  }
}

/** Every execution is live here, committed up to `committed`: subscriptions go live at once. */
class BenchFeed implements LiveFeed {
  committed = 0;
  committedSeq(): number {
    return this.committed;
  }
  async locate() {
    return { lastSeq: this.committed, finalSeq: null };
  }
  follow(): void {}
  unfollow(): void {}
}

function run(sinkCount: number, batch: boolean): void {
  const feed = new BenchFeed();
  // Live subscriptions never read the store; one that tried would fail loudly here.
  const hub = new SubscriptionHub(undefined as unknown as EventStore, feed, (error) => { throw error; });
  const sinks = Array.from({ length: sinkCount }, () => new CountingSink(batch));
  const ids = Array.from({ length: executions }, (_, i) => `bench/x${i}`);
  for (const sink of sinks) for (const id of ids) hub.attach(sink, id, 0, null);
  const frames = Array.from({ length: chunkFrames }, (_, i) => encodeFrame(eventFrame(i + 1, Date.now())));
  const deadline = performance.now() + seconds * 1000;
  const t0 = performance.now();
  let seq = 0;
  while (performance.now() < deadline) {
    const chunks: CommittedChunk[] = ids.map((executionId) => ({ executionId, firstSeq: seq + 1, frames }));
    seq += chunkFrames;
    feed.committed = seq;
    hub.deliver(chunks);
  }
  const elapsed = (performance.now() - t0) / 1000;
  const delivered = sinks.reduce((sum, sink) => sum + sink.frames, 0);
  const expected = sinkCount * executions * (seq / chunkFrames) * (batch ? Math.ceil(chunkFrames / BATCH_MAX_EVENTS) : chunkFrames);
  if (delivered !== expected) throw new Error(`delivered ${delivered} frames, expected ${expected}`);
  const events = sinkCount * executions * seq;
  const shape = batch ? `${delivered} events frames` : 'event frames';
  console.log(`${sinkCount} sinks × ${executions} executions, chunks of ${chunkFrames}, ${shape}: ${Math.round(events / elapsed)} events/s to sinks (${Math.round((executions * seq) / elapsed)} committed frames/s)`);
}

for (const count of values.sinks.split(',').map(Number)) {
  run(count, false);
  if (values.batch) run(count, true);
}
