/**
 * Unit bench of cold replay without sockets: a stored execution read back by a subscription's
 * catch-up (`SubscriptionHub.attach` after its end, src/events/subscription-hub.ts) through the
 * replay cache (src/store/cached-store.ts) from LevelDB reopened for each round (its caches empty,
 * as after a restart), to a sink that accepts everything, as the `replay` scenario's server does
 * before uWS's send.
 *
 *   node dist/bench/units/hub-replay.js [--events 200000] [--rounds 3] [--cache-bytes 33554432] [--sink count|connection] [--warm]
 *
 * Each round replays once with single `event` frames and once with `events` frames (v1.1), and
 * prints the wall time and the process's CPU per event (all threads: LevelDB reads on libuv's pool
 * count). CPU per event is the figure that survives a busy machine; wall time shows what pipelining
 * the reads buys only on a quiet one.
 *
 * `--sink connection` sends to a real socket Connection (src/transport/connection.ts: its outbox,
 * the send budget, the corked write) over a socket that takes every frame and holds none: the
 * server's work up to uWS's `send`. `--warm` reads through one cache for every round (the first
 * round cold, the next from the cache), so what is left is the hub and the sink's per-event work.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { LocalFeed } from '../../src/events/live-feed.js';
import { SendResult, SubscriptionHub, type EndReason, type EventSink } from '../../src/events/subscription-hub.js';
import { CachedEventStore } from '../../src/store/cached-store.js';
import { LevelEventStore } from '../../src/store/level-store.js';
import { DEFAULTS } from '../../src/config.js';
import type { ExecutionService } from '../../src/sessions/service.js';
import { Connection, type SocketPort } from '../../src/transport/connection.js';
import { SendBudget } from '../../src/transport/send-budget.js';
import { encodeFrame } from '../../protocol/codec.js';
import type { ExecutionRecord } from '../../protocol/types.js';
import { eventFrame, EXECUTION_ID } from '../harness/frames.js';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    rounds: { type: 'string', default: '3' },
    'cache-bytes': { type: 'string', default: String(32 * 1024 * 1024) },
    sink: { type: 'string', default: 'count' },
    warm: { type: 'boolean', default: false },
  },
});
if (values.sink !== 'count' && values.sink !== 'connection') throw new Error('--sink is count or connection');
const events = Number(values.events);
const rounds = Number(values.rounds);
const cacheBytes = Number(values['cache-bytes']);
/** What the server commits at once when a run prints fast (level-store.ts cuts it to 256 per entry). */
const COMMIT_EVENTS = 4096;

/** Counts what it is sent; ends the round when the subscription ends. */
class CountingSink implements EventSink {
  frames = 0;
  bytes = 0;
  readonly done: Promise<void>;
  #end!: () => void;
  constructor(readonly batch: boolean) {
    this.done = new Promise((resolve) => (this.#end = resolve));
  }
  batched(): boolean {
    return this.batch;
  }
  send(frame: Uint8Array): SendResult {
    this.frames++;
    this.bytes += frame.length;
    return SendResult.SENT;
  }
  cork(fn: () => void): void {
    fn();
  }
  ended(): void {
    this.#end();
  }
}

/** A socket that takes every frame at once (nothing buffered): what a Connection does before uWS's `send`. */
class TakingSocket implements SocketPort {
  frames = 0;
  send(): number {
    this.frames++;
    return 0;
  }
  bufferedAmount(): number {
    return 0;
  }
  cork(fn: () => void): void {
    fn();
  }
  end(): void {}
}

/** A Connection over a TakingSocket, asking for `events` frames or not; its subscription's end ends the round once the turn's write is out. */
class CountingConnection extends Connection {
  readonly done: Promise<void>;
  #end!: () => void;
  constructor(readonly socket: TakingSocket, hub: SubscriptionHub, readonly batch: boolean) {
    const service = { resume: (sink: Connection) => hub.resume(sink), detachAll: (sink: Connection) => hub.detachAll(sink) } as unknown as ExecutionService;
    super(socket, service, 'bench', { backpressureBytes: DEFAULTS.backpressureBytes, budget: new SendBudget(DEFAULTS.sendBudgetBytes), maxFramesPerSecond: Infinity, onInternalError: (error) => { throw error; } });
    this.done = new Promise((resolve) => (this.#end = resolve));
  }
  override batched(): boolean {
    return this.batch;
  }
  override ended(executionId: string, reason: EndReason): void {
    super.ended(executionId, reason);
    setImmediate(this.#end);
  }
  get frames(): number {
    return this.socket.frames;
  }
}

async function write(location: string): Promise<void> {
  const store = new LevelEventStore(location);
  await store.open();
  const now = Date.now();
  const record = { execution_id: EXECUTION_ID, session_id: 'bench', number: 1, status: 'running', created_at: now, last_seq: 0 } as unknown as ExecutionRecord;
  await store.createExecution(record);
  for (let first = 1; first <= events; first += COMMIT_EVENTS) {
    const count = Math.min(COMMIT_EVENTS, events - first + 1);
    const frames = Array.from({ length: count }, (_, i) => encodeFrame(eventFrame(first + i, now)));
    const ended = first + count > events ? { ...record, status: 'ok', ended_at: now, last_seq: events } : undefined;
    await store.commit({ sessions: [], executions: ended ? [ended as ExecutionRecord] : [], events: [{ executionId: EXECUTION_ID, firstSeq: first, frames }] });
  }
  await store.close();
}

async function replayOnce(location: string, batch: boolean, warmStore: CachedEventStore | null): Promise<void> {
  const store = warmStore ?? new CachedEventStore(new LevelEventStore(location), cacheBytes);
  if (!warmStore) await store.open();
  const hub = new SubscriptionHub(store, new LocalFeed(store, () => undefined), (error) => { throw error; });
  const sink = values.sink === 'connection' ? new CountingConnection(new TakingSocket(), hub, batch) : new CountingSink(batch);
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  hub.attach(sink, EXECUTION_ID, 0, events);
  await sink.done;
  const seconds = (performance.now() - t0) / 1000;
  const used = process.cpuUsage(cpu);
  if (!warmStore) await store.close();
  if (!batch && sink.frames !== events) throw new Error(`sent ${sink.frames} frames, expected ${events}`);
  const usPerEvent = (used.user + used.system) / events;
  const shape = batch ? `events frames (${sink.frames})` : 'event frames';
  console.log(`${shape.padEnd(22)} ${Math.round(events / seconds).toLocaleString('en-US').padStart(11)} events/s wall, ${usPerEvent.toFixed(3)} µs CPU/event, reads ${hub.reads}`);
}

const location = mkdtempSync(path.join(tmpdir(), 'vmstream-hub-replay-'));
try {
  await write(location);
  // Warm: one cache for every round, so only the first reads LevelDB.
  const warmStore = values.warm ? new CachedEventStore(new LevelEventStore(location), cacheBytes) : null;
  await warmStore?.open();
  console.log(`${events} stored events, replayed ${warmStore ? 'through one cache (the first round cold)' : 'cold (LevelDB reopened)'} ${rounds} × 2, interleaved, to a ${values.sink === 'connection' ? 'socket Connection' : 'counting sink'}`);
  try {
    for (let round = 0; round < rounds; round++) {
      await replayOnce(location, false, warmStore);
      await replayOnce(location, true, warmStore);
    }
  } finally {
    await warmStore?.close();
  }
} finally {
  rmSync(location, { recursive: true, force: true });
}
