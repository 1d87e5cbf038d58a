/**
 * One-way driver: each connection asks for a stream, decodes every frame as a real client must, and
 * counts until the workload's end frame. The rate leaves out the warm-up, so JIT compilation and the
 * TCP window's growth do not count against the steady state.
 */
import { performance } from 'node:perf_hooks';
import type WebSocket from 'ws';
import { packr } from '../harness/frames.js';
import { selfCpuMeter } from '../harness/proc-stats.js';
import { connectAll } from './connect.js';
import type { SinkJob, SinkResult } from './types.js';
import { sinkWorkloads, type SinkWorkload } from './workloads.js';

/** How long past its own time bound the server may take to send the end frame. */
const GRACE_MS = 5_000;
/** Read the clock once per this many frames: at ~1M frames/s a clock read per frame is measurable. */
const CLOCK_EVERY = 256;

class Connection {
  frames = 0;
  bytes = 0;
  firstAt = NaN;
  markAt = NaN;
  markFrames = 0;
  markBytes = 0;
  endAt = NaN;
  #resolve: () => void = () => {};
  readonly ended = new Promise<void>((resolve) => (this.#resolve = resolve));

  constructor(readonly ws: WebSocket, readonly workload: SinkWorkload, readonly warmupMs: number) {
    ws.on('message', this.onMessage);
    ws.on('close', () => this.end(performance.now()));
  }

  readonly onMessage = (data: Buffer): void => {
    const frame = packr.unpack(data);
    if (this.workload.isEnd(frame)) return this.end(performance.now());
    if (this.frames === 0) this.firstAt = performance.now();
    this.frames++;
    this.bytes += data.length;
    if (this.frames % CLOCK_EVERY === 0 && Number.isNaN(this.markAt)) {
      const now = performance.now();
      if (now - this.firstAt >= this.warmupMs) {
        this.markAt = now;
        this.markFrames = this.frames;
        this.markBytes = this.bytes;
      }
    }
  };

  end(now: number): void {
    if (!Number.isNaN(this.endAt)) return;
    this.endAt = now;
    // A stream shorter than the warm-up is measured whole rather than not at all.
    if (Number.isNaN(this.markAt)) this.markAt = Number.isNaN(this.firstAt) ? now : this.firstAt;
    this.#resolve();
  }
}

export async function runSink(job: SinkJob): Promise<SinkResult> {
  const workload = sinkWorkloads[job.workload];
  if (!workload) throw new Error(`unknown sink workload '${job.workload}'`);
  const sockets = await connectAll(job.url, job.connections);
  const connections = sockets.map((ws) => new Connection(ws, workload, job.warmupMs));
  const serverMs = job.warmupMs + job.durationMs;
  const clientCpu = selfCpuMeter();
  let timer: NodeJS.Timeout | undefined;
  try {
    const start = workload.start(job.count, serverMs);
    for (const ws of sockets) ws.send(start);
    await Promise.race([
      Promise.all(connections.map((c) => c.ended)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, serverMs + GRACE_MS))),
    ]);
  } finally {
    clearTimeout(timer);
    for (const ws of sockets) ws.terminate();
  }
  let frames = 0;
  let bytes = 0;
  let framesPerSec = 0;
  let seconds = 0;
  for (const c of connections) {
    c.end(performance.now()); // no-op unless the grace bound ran out
    const s = (c.endAt - c.markAt) / 1000;
    frames += c.frames - c.markFrames;
    bytes += c.bytes - c.markBytes;
    if (s > 0) framesPerSec += (c.frames - c.markFrames) / s;
    seconds = Math.max(seconds, s);
  }
  return { driver: 'sink', frames, bytes, seconds, framesPerSec, clientCpuPct: clientCpu() };
}
