/**
 * Request/response driver: `connections` sockets, each with a fixed window of requests in flight;
 * every answer frees its slot, which is refilled at once. Throughput is the answers that arrive inside
 * the measured window divided by its length; latency is send-to-answer time of those answers.
 */
import { decodeValue } from '../../protocol/codec.js';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type WebSocket from 'ws';
import { Histogram } from '../harness/histogram.js';
import { selfCpuMeter } from '../harness/proc-stats.js';
import { connectAll } from './connect.js';
import type { RttJob, RttResult } from './types.js';
import { rttWorkloads, type RttConnection } from './workloads.js';

/** How long in-flight requests may take to come back once issuing stops. */
const DRAIN_MS = 3_000;

class Run {
  readonly hist = new Histogram();
  ops = 0;
  measureStart = Infinity;
  stopAt = Infinity;
  pending: number;
  /** The first frame a workload refused (an error reply, a failed execution): the run fails with it. */
  failure: Error | null = null;
  finish: () => void = () => {};

  constructor(readonly job: RttJob, connections: number) {
    this.pending = connections;
  }

  fail(error: Error): void {
    this.failure ??= error;
    this.finish();
  }

  connectionDone(): void {
    if (--this.pending === 0) this.finish();
  }
}

/**
 * Request ids are per connection: id % window is the slot holding its send time, and a slot's next
 * id is its last plus window, so ids stay unique and answers may come back in any order.
 */
class Connection {
  readonly sentAt: Float64Array;
  /** ws's TCP socket (undocumented `_socket`, stable through ws 8), when write coalescing is on. */
  readonly socket: Socket | null;
  corked = false;
  inFlight = 0;
  done = false;

  constructor(readonly ws: WebSocket, readonly run: Run, readonly workload: RttConnection) {
    this.sentAt = new Float64Array(run.job.window).fill(NaN);
    this.socket = run.job.coalesceWrites ? ((ws as unknown as { _socket?: Socket })._socket ?? null) : null;
    // Silently measuring without coalescing would move the ceiling threefold: fail instead.
    if (run.job.coalesceWrites && !this.socket) throw new Error('coalesceWrites: this ws version has no _socket');
    ws.on('message', this.onMessage);
    ws.on('close', this.onClose);
  }

  start(): void {
    for (let id = 0; id < this.run.job.window; id++) this.send(id);
  }

  send(id: number): void {
    this.sentAt[id % this.run.job.window] = performance.now();
    this.inFlight++;
    // ws writes every send to the socket at once, one syscall per frame. Corking until the next tick
    // lets every answer parsed from one TCP read refill its slot in a single write: ~3x the round
    // trips on this machine, so the ceiling measures the server rather than a naive client.
    if (this.socket && !this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(uncork, this);
    }
    this.ws.send(this.workload.request(id));
  }

  readonly onMessage = (data: Buffer): void => {
    const now = performance.now();
    const run = this.run;
    let id: number;
    try {
      id = this.workload.completes(decodeValue(data));
    } catch (error) {
      run.fail(error as Error);
      return;
    }
    if (id < 0) return;
    const slot = id % run.job.window;
    const sent = this.sentAt[slot];
    if (Number.isNaN(sent)) return; // an answer to nothing we sent: ignore rather than count twice
    this.sentAt[slot] = NaN;
    this.inFlight--;
    if (now >= run.measureStart && now < run.stopAt) {
      run.hist.record((now - sent) * 1000);
      if (++run.ops >= run.job.maxOps) run.stopAt = now;
    }
    if (now < run.stopAt) this.send(id + run.job.window);
    else if (this.inFlight === 0) this.end();
  };

  readonly onClose = (): void => this.end();

  end(): void {
    if (this.done) return;
    this.done = true;
    this.run.connectionDone();
  }
}

function uncork(connection: Connection): void {
  connection.corked = false;
  connection.socket?.uncork();
}

export async function runRtt(job: RttJob): Promise<RttResult> {
  const workload = rttWorkloads[job.workload];
  if (!workload) throw new Error(`unknown rtt workload '${job.workload}'`);
  const sockets = await connectAll(job.url, job.connections, job.token, job.connectConcurrency);
  let opened: RttConnection[];
  try {
    opened = await Promise.all(sockets.map((ws, index) => workload.open(ws, job.params ?? {}, index)));
  } catch (error) {
    for (const ws of sockets) ws.terminate();
    throw error;
  }
  const run = new Run(job, sockets.length);
  const connections = sockets.map((ws, index) => new Connection(ws, run, opened[index]!));
  const clientCpu = selfCpuMeter();
  const t0 = performance.now();
  run.measureStart = t0 + job.warmupMs;
  run.stopAt = run.measureStart + job.durationMs;
  let drainTimer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve) => {
      run.finish = resolve;
      // A server that stops answering must not hang the run: give up DRAIN_MS after the window.
      drainTimer = setTimeout(resolve, job.warmupMs + job.durationMs + DRAIN_MS);
      for (const connection of connections) connection.start();
    });
  } finally {
    clearTimeout(drainTimer);
    for (const ws of sockets) ws.terminate();
  }
  if (run.failure) throw run.failure;
  const seconds = (Math.min(run.stopAt, performance.now()) - run.measureStart) / 1000;
  return {
    driver: 'rtt',
    ops: run.ops,
    seconds,
    opsPerSec: seconds > 0 ? run.ops / seconds : 0,
    unanswered: connections.reduce((sum, c) => sum + c.inFlight, 0),
    hist: run.hist.toJSON(),
    clientCpuPct: clientCpu(),
  };
}
