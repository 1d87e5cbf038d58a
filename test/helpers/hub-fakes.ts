/**
 * Fakes around the subscription hub (src/events/subscription-hub.ts) for its tests: sinks that take
 * frames one by one or in runs (paused when full, as a socket is), a feed for executions running on
 * "another node", a store that counts its catch-up reads, and frames whose seq each carries.
 */
import type { Test } from 'tap';
import { SendResult, SubscriptionHub, type EndReason, type EventSink } from '../../src/events/subscription-hub.js';
import type { LiveFeed, LogState } from '../../src/events/live-feed.js';
import { MemoryEventStore } from './memory-store.js';
import { eventsOf } from '../../protocol/batch.js';
import { decodeValue, encodeFrame } from '../../protocol/codec.js';
import type { EventsFrame } from '../../protocol/types.js';

export const utf8 = new TextEncoder();
export const text = new TextDecoder();
export const frames = (id: string, from: number, count: number) => Array.from({ length: count }, (_, i) => utf8.encode(`${id}#${from + i}`));
export const seqs = (id: string, from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `${id}#${from + i}`);

export class Sink implements EventSink {
  received: string[] = [];
  ends = 0;
  /** Why each subscription ended, in order. */
  reasons: EndReason[] = [];
  #onChange: () => void = () => {};
  send(frame: Uint8Array): SendResult {
    this.received.push(...this.read(frame));
    this.#onChange();
    return SendResult.SENT;
  }
  /** What a frame carries, as `<id>#<seq>` strings. */
  read(frame: Uint8Array): string[] {
    return [text.decode(frame)];
  }
  cork(fn: () => void): void {
    fn();
  }
  ended(_executionId: string, reason: EndReason): void {
    this.ends++;
    this.reasons.push(reason);
    this.#onChange();
  }
  until(ready: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const check = () => { if (ready()) resolve(); };
      this.#onChange = check;
      check();
    });
  }
}

/** A feed for executions that run on "another node": the test plays that node and its log's follower. */
export class RemoteFeed implements LiveFeed {
  state: LogState | null = null;
  followed: Array<[string, number]> = [];
  unfollowed: string[] = [];
  #following = new Map<string, number>();
  committedSeq(id: string): number | undefined {
    return this.#following.get(id);
  }
  async locate(): Promise<LogState | null> {
    return this.state;
  }
  follow(id: string, afterSeq: number): void {
    this.followed.push([id, afterSeq]);
    // A follower starts at what is stored: the hub reads up to there, then takes what it delivers.
    this.#following.set(id, this.state!.lastSeq);
  }
  unfollow(id: string): void {
    this.unfollowed.push(id);
    this.#following.delete(id);
  }
  /** The follower saw a new chunk: it is stored (by the other node) and delivered here. */
  async deliver(hub: SubscriptionHub, store: MemoryEventStore, id: string, firstSeq: number, count: number): Promise<void> {
    const chunk = { executionId: id, firstSeq, frames: frames(id, firstSeq, count) };
    await store.commit({ sessions: [], executions: [], events: [chunk] });
    this.state = { lastSeq: firstSeq + count - 1, finalSeq: null };
    if (this.#following.has(id)) this.#following.set(id, firstSeq + count - 1);
    hub.deliver([chunk]);
  }
}

/** A hub over `store` (opened here) and `feed`; a test that needs them as their own subclasses keeps its own references. */
export async function setup(t: Test, feed = new RemoteFeed(), store = new MemoryEventStore()) {
  await store.open();
  t.teardown(() => store.close());
  const hub = new SubscriptionHub(store, feed, (error) => t.fail(String(error)));
  return { store, feed, hub };
}

/** Counts catch-up reads: where each began, how many were under way at most, and the log end each was told. */
export class CountingStore extends MemoryEventStore {
  started: number[] = [];
  inFlight = 0;
  maxInFlight = 0;
  /** The seq each catch-up read said its log is known to reach. */
  knownEnds: Array<number | undefined> = [];
  protected override _readRun(executionId: string, afterSeq: number, limit: number, knownEnd?: number) {
    this.knownEnds.push(knownEnd);
    return super._readRun(executionId, afterSeq, limit, knownEnd);
  }
  protected override async _readEvents(executionId: string, afterSeq: number, limit: number) {
    this.started.push(afterSeq);
    this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
    try {
      return await super._readEvents(executionId, afterSeq, limit);
    } finally {
      this.inFlight--;
    }
  }
}

/** A sink that takes runs (as a socket's Connection does), full after every `room` frames. */
export class RunSink extends Sink {
  runs = 0;
  single = 0;
  constructor(readonly room: number) {
    super();
  }
  override send(frame: Uint8Array): SendResult {
    this.single++;
    return super.send(frame);
  }
  sendRun(frames: readonly Uint8Array[], from: number, to: number) {
    this.runs++;
    const end = Math.min(to, from + this.room);
    for (let index = from; index < end; index++) super.send(frames[index]!);
    return { sent: end - from, result: end - from === this.room ? SendResult.SENT_FULL : SendResult.SENT };
  }
}

/** Stored `event` frames (msgpack), as the `events` frames are built of. */
export const eventFrames = (id: string, from: number, count: number) =>
  Array.from({ length: count }, (_, i) => encodeFrame({ op: 'event', execution_id: id, seq: from + i, type: 'console', ts: 5, payload: { level: 'log', text: `line ${from + i}` } }));

/** A RunSink that asks for `events` frames: it reads the seqs each carries. */
export class BatchRunSink extends RunSink {
  batched(): boolean {
    return true;
  }
  override read(frame: Uint8Array): string[] {
    return eventsOf(decodeValue(frame) as EventsFrame).map((event) => `${event.execution_id}#${event.seq}`);
  }
}
