/**
 * Jobs the harness hands a load-generator process over IPC, and the results it sends back. Plain data
 * on both sides: workloads are named, not passed, since functions cannot cross a process boundary.
 */
import type { HistogramJson } from '../harness/histogram.js';

/** Request/response traffic: each connection keeps `window` requests in flight. */
export interface RttJob {
  driver: 'rtt';
  workload: string;
  url: string;
  connections: number;
  window: number;
  warmupMs: number;
  durationMs: number;
  /** Stop issuing after this many measured round trips, whatever the time. */
  maxOps: number;
  /**
   * Cork the socket until the next tick, so the requests one read of answers frees leave in one
   * write (as a well-built client does); false sends each frame with its own syscall, as plain `ws`.
   */
  coalesceWrites: boolean;
}

export interface RttResult {
  driver: 'rtt';
  /** Round trips completed inside the measured window. */
  ops: number;
  seconds: number;
  opsPerSec: number;
  /** Requests still unanswered when the drain bound ran out (0 on a healthy run). */
  unanswered: number;
  hist: HistogramJson;
  /** The load generator's own CPU share over the run, in % of one core (harness/proc-stats.ts). */
  clientCpuPct: number;
}

/** One-way traffic: each connection asks for a stream and counts frames until the workload's end. */
export interface SinkJob {
  driver: 'sink';
  workload: string;
  url: string;
  connections: number;
  /** Frames to ask for per connection, and the time the server may take, warm-up included. */
  count: number;
  warmupMs: number;
  durationMs: number;
}

export interface SinkResult {
  driver: 'sink';
  /** Frames received after warm-up. */
  frames: number;
  bytes: number;
  seconds: number;
  framesPerSec: number;
  clientCpuPct: number;
}

export type LoadJob = RttJob | SinkJob;
export type LoadResult = RttResult | SinkResult;
export type ResultFor<J extends LoadJob> = J extends RttJob ? RttResult : SinkResult;
