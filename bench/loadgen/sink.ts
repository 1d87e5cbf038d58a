/**
 * One-way driver: each connection asks for a stream, decodes every frame as a real client must, and
 * counts until the workload's end frame. Two rates come back: the steady one, which leaves out the
 * warm-up so JIT compilation and the TCP window's growth do not count (the push baseline's), and the
 * whole one, from the request to the end (a stream's or a replay's, as a client lives it). An
 * `events` frame (protocol v1.1, a workload asked with `batch`) is counted as the events it carries,
 * each checked for its seq as if it had come alone. With `segmentEvents`, the first connection also
 * reports the process's CPU per that many events: a one-shot stream's start shows
 * apart from the rest (bench/README.md, "Replay against push in its own shape").
 */
import { eventsOf } from '../../protocol/batch.js';
import { decodeValue } from '../../protocol/codec.js';
import type { EventsFrame } from '../../protocol/types.js';
import { performance } from 'node:perf_hooks';
import type WebSocket from 'ws';
import { Histogram } from '../harness/histogram.js';
import { selfCpuMeter } from '../harness/proc-stats.js';
import { connectAll } from './connect.js';
import { gate } from './gate.js';
import type { SinkJob, SinkResult, SinkSegment } from './types.js';
import { warmClient } from './warm.js';
import { sinkWorkloads, warmupConnection, type SinkConnection } from './workloads.js';

/** How long past its own time bound the server may take to send the end frame. */
const GRACE_MS = 5_000;
/** Read the clock once per this many frames: at ~1M frames/s a clock read per frame is measurable. */
const CLOCK_EVERY = 256;

/**
 * The wall clock for event ages, read once per socket read: `ws` emits every message of one read
 * synchronously, so its events share the read's time (their arrival, before the client decoded the
 * ones ahead of them), and the microtask that runs once the read's callback returns marks the clock
 * stale for the next. A `Date.now()` per event cost ~65 ns here, ~4 % of push's whole client cost
 * per frame, which push's client does not pay.
 */
class ArrivalClock {
  #ms = 0;
  #stale = true;
  readonly #expire = (): void => {
    this.#stale = true;
  };

  now(): number {
    if (this.#stale) {
      this.#ms = Date.now();
      this.#stale = false;
      queueMicrotask(this.#expire);
    }
    return this.#ms;
  }
}

/**
 * The client's CPU per stretch of `every` events, from the first one: where in a
 * one-shot stream the client's cost per event goes (its start against its steady state). One
 * `process.cpuUsage` per stretch, nothing per event but a compare.
 */
class SegmentMeter {
  readonly segments: SinkSegment[] = [];
  next: number;
  #cpu = process.cpuUsage();
  #events = 0;

  constructor(readonly every: number) {
    this.next = every;
  }

  start(): void {
    this.#cpu = process.cpuUsage();
  }

  mark(events: number): void {
    if (events === this.#events) return;
    const cpu = process.cpuUsage();
    this.segments.push({
      events: events - this.#events,
      cpuMs: (cpu.user - this.#cpu.user + cpu.system - this.#cpu.system) / 1000,
    });
    this.#cpu = cpu;
    this.#events = events;
    this.next = events + this.every;
  }
}

interface Sequenced {
  seq?: unknown;
  ts?: unknown;
}

class Connection {
  frames = 0;
  bytes = 0;
  firstAt = NaN;
  markAt = NaN;
  markFrames = 0;
  markBytes = 0;
  endAt = NaN;
  lastSeq = 0;
  seqErrors = 0;
  failure: Error | null = null;
  readonly #clock = new ArrivalClock();
  #resolve: () => void = () => {};
  readonly ended = new Promise<void>((resolve) => (this.#resolve = resolve));

  constructor(
    readonly ws: WebSocket,
    readonly workload: SinkConnection,
    readonly warmupMs: number,
    readonly ages: Histogram | null,
    readonly segmentMeter: SegmentMeter | null = null,
  ) {
    ws.on('message', this.onMessage);
    ws.on('close', () => this.end(performance.now()));
  }

  readonly onMessage = (data: Buffer): void => {
    const frame = decodeValue(data) as Sequenced & { op?: unknown };
    if (frame.op !== 'events') return void this.receive(frame, data.length);
    // The frame's bytes count with its first event.
    let bytes = data.length;
    for (const event of eventsOf(frame as unknown as EventsFrame)) {
      if (!this.receive(event, bytes)) return;
      bytes = 0;
    }
  };

  /** One frame, or one event of an `events` frame; false once the stream has ended. */
  receive(frame: Sequenced, bytes: number): boolean {
    try {
      if (this.workload.isEnd(frame)) {
        if (this.workload.counts(frame)) this.count(frame, bytes);
        this.end(performance.now());
        return false;
      }
      if (!this.workload.counts(frame)) return true;
    } catch (error) {
      this.failure = error as Error;
      this.end(performance.now());
      return false;
    }
    this.count(frame, bytes);
    return true;
  }

  count(frame: Sequenced, bytes: number): void {
    if (this.frames === 0) {
      this.firstAt = performance.now();
      this.segmentMeter?.start();
    }
    this.frames++;
    if (this.frames === this.segmentMeter?.next) this.segmentMeter.mark(this.frames);
    this.bytes += bytes;
    // Each counted frame must be the next seq: a replay or fan-out that skips or repeats one is wrong,
    // whatever its rate.
    if (typeof frame.seq === 'number') {
      if (frame.seq !== this.lastSeq + 1) this.seqErrors++;
      this.lastSeq = frame.seq;
    }
    if (this.ages && typeof frame.ts === 'number') this.ages.record(Math.max(0, this.#clock.now() - frame.ts) * 1000);
    if (this.frames % CLOCK_EVERY === 0 && Number.isNaN(this.markAt)) {
      const now = performance.now();
      if (now - this.firstAt >= this.warmupMs) {
        this.markAt = now;
        this.markFrames = this.frames;
        this.markBytes = this.bytes;
      }
    }
  }

  end(now: number): void {
    if (!Number.isNaN(this.endAt)) return;
    this.endAt = now;
    if (this.segmentMeter && this.frames > 0) this.segmentMeter.mark(this.frames);
    // A stream shorter than the warm-up is measured whole rather than not at all.
    if (Number.isNaN(this.markAt)) this.markAt = Number.isNaN(this.firstAt) ? now : this.firstAt;
    this.#resolve();
  }
}

export async function runSink(job: SinkJob): Promise<SinkResult> {
  const workload = sinkWorkloads[job.workload];
  if (!workload) throw new Error(`unknown sink workload '${job.workload}'`);
  const ages = job.eventAges ? new Histogram() : null;
  await warmClient(job.warmClientFrames ?? 0, async (ws) => {
    const warm = new Connection(ws, warmupConnection, 0, ages && new Histogram());
    await warm.ended;
    if (warm.failure) throw warm.failure;
  });
  const sockets = await connectAll(job.url, job.connections, job.token, job.connectConcurrency);
  let connections: Connection[];
  try {
    const opened = await Promise.all(sockets.map((ws, index) => workload.open(ws, job.params ?? {}, index)));
    connections = sockets.map(
      (ws, index) => new Connection(ws, opened[index]!, job.warmupMs, ages, index === 0 && job.segmentEvents ? new SegmentMeter(job.segmentEvents) : null),
    );
    if (job.gated) await gate(0);
  } catch (error) {
    for (const ws of sockets) ws.terminate();
    throw error;
  }
  const serverMs = job.warmupMs + job.durationMs;
  const clientCpu = selfCpuMeter();
  const startedAt = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    connections.forEach((c) => {
      const start = c.workload.start(job.count, serverMs);
      if (start) c.ws.send(start);
    });
    await Promise.race([
      Promise.all(connections.map((c) => c.ended)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, serverMs + GRACE_MS))),
    ]);
  } finally {
    clearTimeout(timer);
    for (const ws of sockets) ws.terminate();
  }
  const failure = connections.find((c) => c.failure)?.failure;
  if (failure) throw failure;
  let frames = 0;
  let bytes = 0;
  let framesPerSec = 0;
  let seconds = 0;
  let totalFrames = 0;
  let lastEnd = startedAt;
  let firstFrameMs = 0;
  let seqErrors = 0;
  let unfinished = 0;
  for (const c of connections) {
    if (!Number.isNaN(c.endAt)) lastEnd = Math.max(lastEnd, c.endAt);
    else unfinished++;
    c.end(performance.now()); // no-op unless the grace bound ran out
    const s = (c.endAt - c.markAt) / 1000;
    frames += c.frames - c.markFrames;
    bytes += c.bytes - c.markBytes;
    if (s > 0) framesPerSec += (c.frames - c.markFrames) / s;
    seconds = Math.max(seconds, s);
    totalFrames += c.frames;
    seqErrors += c.seqErrors;
    if (!Number.isNaN(c.firstAt)) firstFrameMs = Math.max(firstFrameMs, c.firstAt - startedAt);
  }
  return {
    driver: 'sink',
    frames,
    bytes,
    seconds,
    framesPerSec,
    totalFrames,
    totalSeconds: (lastEnd - startedAt) / 1000,
    firstFrameMs,
    seqErrors,
    unfinished,
    ages: ages ? ages.toJSON() : null,
    clientCpuPct: clientCpu(),
    ...(connections[0]?.segmentMeter ? { segments: connections[0].segmentMeter.segments } : {}),
  };
}
