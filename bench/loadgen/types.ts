/**
 * Jobs the harness hands a load-generator process over IPC, and the results it sends back. Plain data
 * on both sides: workloads are named, not passed, since functions cannot cross a process boundary.
 *
 * A job marked `gated` (and every idle and storm job) stops at each step and says so with
 * {type:'ready', step}; the harness acts on the server (reads its memory, opens a gate execution) and
 * answers {type:'go', step}. That is how a scenario makes a measured moment line up across processes.
 */
import type { HistogramJson } from '../harness/histogram.js';

/** Workload parameters (session counts, code, execution ids): plain values only. */
export type WorkloadParams = Record<string, string | number | boolean>;

interface JobBase {
  url: string;
  /** Sent as `Authorization: Bearer <token>` on every connection (vmstream); none for the bare server. */
  token?: string;
  /** How many connections may be opening at once (default 1: one at a time, as before). */
  connectConcurrency?: number;
}

/** Request/response traffic: each connection keeps `window` requests in flight. */
export interface RttJob extends JobBase {
  driver: 'rtt';
  workload: string;
  params?: WorkloadParams;
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
export interface SinkJob extends JobBase {
  driver: 'sink';
  workload: string;
  params?: WorkloadParams;
  connections: number;
  /** Frames to ask for per connection, and the time the server may take, warm-up included. */
  count: number;
  warmupMs: number;
  durationMs: number;
  /** Stop after the workload's setup (subscriptions made) until the harness says go. */
  gated?: boolean;
  /** Record each event's age on arrival (now − its `ts`), the staleness a client sees. */
  eventAges?: boolean;
  /**
   * Frames this process decodes from an in-process server before it connects (loadgen/warm.ts), so
   * a short stream is not measured through a cold JIT. 0 or absent: none (push has its own warm-up).
   */
  warmClientFrames?: number;
  /**
   * Report the client's CPU per this many counted events (`segments`), the whole
   * process's CPU (one connection per process is what reads it right).
   */
  segmentEvents?: number;
}

/** One stretch of `events` counted events: the client process's CPU in it. */
export interface SinkSegment {
  events: number;
  cpuMs: number;
}

export interface SinkResult {
  driver: 'sink';
  /** Frames received after warm-up. */
  frames: number;
  bytes: number;
  seconds: number;
  /** Sum over connections of each one's post-warm-up rate. */
  framesPerSec: number;
  /** Every counted frame, warm-up included, over all connections. */
  totalFrames: number;
  /** From the start request (or `go`) to the last connection's end frame. */
  totalSeconds: number;
  /** From the start request to the first counted frame, the slowest connection's. */
  firstFrameMs: number;
  /** Events whose seq was not the one after the previous (gap or repeat): 0 on a correct server. */
  seqErrors: number;
  /** Connections that did not see their end frame within the time bound. */
  unfinished: number;
  /** Event ages in µs (with `eventAges`), at ms resolution since `ts` is epoch ms. */
  ages: HistogramJson | null;
  clientCpuPct: number;
  /** With `segmentEvents`: the first connection's stream, from its first counted event, in stretches. */
  segments?: SinkSegment[];
}

/**
 * Idle connections and sessions, opened in `steps` equal parts with a ready/go stop after each, so
 * the harness reads the server's memory at known counts; closed after the last go.
 */
export interface IdleJob extends JobBase {
  driver: 'idle';
  connections: number;
  /** Sessions to create, spread over the connections; each runs `code` once when given. */
  sessions: number;
  code?: string;
  steps: number;
}

export interface IdleResult {
  driver: 'idle';
  connections: number;
  sessions: number;
  executions: number;
  openSeconds: number;
  clientCpuPct: number;
}

/**
 * Reconnect storm: `clients` sockets subscribe at the head of a live execution; on go, all drop at
 * once and reconnect at once, client i resuming with after_seq = floor(i × lastSeq / clients); each
 * is caught up when it has seq lastSeq.
 */
export interface StormJob extends JobBase {
  driver: 'storm';
  /** As SinkJob's: a warm receive path before the storm. */
  warmClientFrames?: number;
  clients: number;
  /** When the storm is shared among processes: the index of this one's first client, and all clients. */
  firstClient?: number;
  totalClients?: number;
  executionId: string;
  lastSeq: number;
  timeoutMs: number;
  /**
   * How a client asks for its gap: `subscribe` (vmstream, resuming after_seq), or `push` (the bare
   * uWS server of the push baseline sends it the gap's count of frames: the storm's shape, with a
   * server that costs nothing). Subscribe when absent.
   */
  ask?: 'subscribe' | 'push';
}

export interface StormResult {
  driver: 'storm';
  clients: number;
  caughtUp: number;
  /** From the drop to the last client caught up. */
  seconds: number;
  /** Per client, drop to caught up, in µs. */
  hist: HistogramJson;
  frames: number;
  /** Connection attempts that failed and were retried (refused, reset, timed out). */
  retries: number;
  seqErrors: number;
  clientCpuPct: number;
}

export type LoadJob = RttJob | SinkJob | IdleJob | StormJob;
export type LoadResult = RttResult | SinkResult | IdleResult | StormResult;
export type ResultFor<J extends LoadJob> = J extends RttJob
  ? RttResult
  : J extends SinkJob
    ? SinkResult
    : J extends IdleJob
      ? IdleResult
      : StormResult;

/** Child → harness at a gate; harness → child to go on. `info` is whatever the step has to say. */
export interface ReadyMessage {
  type: 'ready';
  step: number;
  info?: Record<string, number>;
  [key: string]: unknown;
}
export interface GoMessage {
  type: 'go';
  step: number;
  [key: string]: unknown;
}
