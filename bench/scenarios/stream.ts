/**
 * stream: one execution that logs 200 000 lines, delivered to the socket that ran it. Every event is
 * made durable (group commit to LevelDB) before it is sent, so the rate is the whole pipeline: the
 * worker's console shim, the batch to the main thread, encoding, the commit, the send. Held against
 * the push baseline: the rate a bare uWS server can feed the same client one-way.
 *
 * The server is warmed first by a smaller stream in another session (JIT, LevelDB's memtable), so the
 * figure is a running server's rather than a cold start's; each measured stream is timed whole, from
 * `execute` sent to `done` received. A full run measures three such streams in a row, between the
 * same two measurements of push, and reports the median one whole: one 0.5 s stream read 0.40–0.58 ×
 * push within minutes on this machine (bench/README.md), enough to swing the verdict alone.
 *
 * Beside the headline (against push's steady rate), each stream is also held against push in its
 * own shape (one-shot.ts: as many frames one-shot to a client warmed alike, just before and just
 * after it), as replay's headline is: `over_push_same_frames`, the median of the three.
 */
import type { Ctx, Figure, Scenario } from '../harness/types.js';
import type { Vmstream } from '../harness/vmstream.js';
import { startVmstream } from '../harness/vmstream.js';
import type { SinkResult } from '../loadgen/types.js';
import { median, medianBy, spreadFigures } from '../harness/median.js';
import { check, cpuPer, latencyFigures, pct, serverCpuFigures, serverRss, type ServerCpu, warmFrames } from './common.js';
import { overPush, pushSameFrames } from './one-shot.js';

/** Room for 200 000 lines (+ value, done) and their ~18 MB of frames: the defaults stop at 100 000 and 16 MiB. */
export const STREAM_ENV = {
  VMSTREAM_MAX_EVENTS: '10000000',
  VMSTREAM_MAX_OUTPUT_BYTES: String(1024 * 1024 * 1024),
};

/** Measured streams of `lines` each, the median one reported (its rate the headline, min and max beside it). */
const MEASURED_STREAMS = { quick: 1, full: 3 };
/** Lines of the run whose first event is timed beside a one-line run's. */
const FIRST_EVENT_LONG_LINES = 100_000;
/** Runs of each length whose first event is timed as a user sees it: the figure is their median (one run swung 4–70 ms on a busy machine). */
const USER_FIRST_EVENT_ROUNDS = { quick: 1, full: 3 };
/** One-line executes the user's client runs first, in a session of its own (loadgen/workloads.ts, warmExecutes). */
const USER_WARM_EXECUTES = { quick: 5, full: 100 };

export function loopCode(lines: number): string {
  return `for (let i = 0; i < ${lines}; i++) console.log(i)`;
}

/** Events of a `loopCode` execution: its lines, its `value` (undefined) and its `done`. */
export function eventsOf(lines: number): number {
  return lines + 2;
}

/**
 * Runs `lines` console lines to the load generator's socket and checks every event arrived, in
 * order. The job is gated (unless `gated: false`) so the server's CPU is metered from the moment
 * `execute` goes out, not during the client's warm-up or set-up.
 */
export async function streamOnce(
  ctx: Ctx,
  server: Vmstream,
  lines: number,
  options: { executionId?: string; warmClient?: boolean; batch?: boolean; warmExecutes?: number; gated?: boolean } = {},
): Promise<{ r: SinkResult; cpu: ServerCpu }> {
  let meter: () => ServerCpu = () => ({ process: NaN, main: NaN });
  const r = await ctx.loadgen(
    {
      driver: 'sink',
      workload: 'stream',
      params: { code: loopCode(lines), ...(options.executionId ? { executionId: options.executionId } : {}), ...(options.batch ? { batch: true } : {}), ...(options.warmExecutes ? { warmExecutes: options.warmExecutes } : {}) },
      url: server.url,
      token: server.token,
      connections: 1,
      count: lines,
      warmupMs: 300,
      durationMs: 120_000,
      gated: options.gated ?? true,
      eventAges: true,
      warmClientFrames: options.warmClient ? warmFrames(ctx) : 0,
    },
    1,
    { onReady: () => void (meter = server.cpuMeter()) },
  );
  const cpu = meter();
  check(r.unfinished === 0, `the stream did not reach its done within the time bound (${r.totalFrames} events)`);
  check(r.totalFrames === eventsOf(lines), `expected ${eventsOf(lines)} events, got ${r.totalFrames}`);
  check(r.seqErrors === 0, `${r.seqErrors} events out of seq order`);
  return { r, cpu };
}

/**
 * The first event of a 1-line and of a long run as a user of a running server sees it: a client that
 * has been at work (its send and decode compiled), a session created for the run, and `execute` sent
 * the moment the session's reply comes, with no gate between them (a user does not pause, and the
 * session's context may still be in the making). The median of rounds, the two lengths alternating.
 */
async function userFirstEvents(ctx: Ctx, server: Vmstream): Promise<{ short: number; long: number }> {
  const mode = ctx.quick ? 'quick' : 'full';
  const options = { warmExecutes: USER_WARM_EXECUTES[mode], gated: false };
  const short: number[] = [];
  const long: number[] = [];
  for (let round = 0; round < USER_FIRST_EVENT_ROUNDS[mode]; round++) {
    short.push((await streamOnce(ctx, server, 1, options)).r.firstFrameMs);
    long.push((await streamOnce(ctx, server, FIRST_EVENT_LONG_LINES, options)).r.firstFrameMs);
  }
  return { short: median(short), long: median(long) };
}

export function streamFigures(r: SinkResult): Record<string, Figure> {
  return {
    events: { value: r.totalFrames, unit: 'events' },
    seconds: { value: r.totalSeconds, unit: 's' },
    steady_events_per_s: { value: r.framesPerSec, unit: 'events/s' },
    first_event_ms: { value: r.firstFrameMs, unit: 'ms' },
    mb_per_s: { value: r.bytes / r.seconds / 1e6, unit: 'MB/s' },
    ...(r.ages ? latencyFigures(r.ages, 'event_age_') : {}),
    client_cpu_pct: pct(r.clientCpuPct),
  };
}

export const stream: Scenario = {
  name: 'stream',
  headline: 'events_per_s',
  against: { baseline: 'push', figure: 'frames_per_s' },
  goal: { ratio: 0.5, better: 'higher' },
  // Quick: besides its streams, two 100 000-line runs and the user first events' load generators
  // (~9 s alone, past 30 s with two other test files beside it on two cores).
  stepTimeoutMs: { quick: 60_000, full: 180_000 },
  async run(ctx) {
    const mode = ctx.quick ? 'quick' : 'full';
    const lines = ctx.quick ? 10_000 : 200_000;
    const server = await startVmstream(ctx, { name: 'stream', env: STREAM_ENV });
    try {
      await streamOnce(ctx, server, ctx.quick ? 2_000 : 20_000);
      // Push one-shot, stream, push one-shot, …: each push is the stream after's "before".
      const measured: { r: SinkResult; cpu: ServerCpu }[] = [];
      const overPushes: number[] = [];
      let pushed = await pushSameFrames(ctx, eventsOf(lines));
      for (let run = 0; run < MEASURED_STREAMS[mode]; run++) {
        const streamed = await streamOnce(ctx, server, lines, { warmClient: true });
        const pushedAfter = await pushSameFrames(ctx, eventsOf(lines));
        measured.push(streamed);
        overPushes.push(overPush(pushed, pushedAfter, streamed.r));
        pushed = pushedAfter;
      }
      const rateOf = ({ r }: { r: SinkResult }) => r.totalFrames / r.totalSeconds;
      const { r, cpu: serverCpu } = medianBy(measured, rateOf);
      // The same stream to a client that asked for protocol v1.1 `events` frames.
      const { r: batched } = await streamOnce(ctx, server, lines, { warmClient: true, batch: true });
      // The goal: the first line as fast whatever follows it (a long run's first commit used to wait for thousands more).
      const short = await streamOnce(ctx, server, 1);
      const long = await streamOnce(ctx, server, FIRST_EVENT_LONG_LINES);
      const user = await userFirstEvents(ctx, server);
      return {
        figure: { value: r.totalFrames / r.totalSeconds, unit: 'events/s' },
        figures: {
          ...streamFigures(r),
          measured_streams: { value: measured.length, unit: 'streams' },
          ...spreadFigures('events_per_s', measured.map(rateOf), 'events/s'),
          over_push_same_frames: { value: median(overPushes), unit: '×' },
          ...spreadFigures('over_push_same_frames', overPushes, '×'),
          first_event_1_line_ms: { value: short.r.firstFrameMs, unit: 'ms' },
          first_event_100k_lines_ms: { value: long.r.firstFrameMs, unit: 'ms' },
          user_first_event_1_line_ms: { value: user.short, unit: 'ms' },
          user_first_event_100k_lines_ms: { value: user.long, unit: 'ms' },
          ...serverCpuFigures(serverCpu),
          ...cpuPer(serverCpu, r.totalFrames / r.totalSeconds, 'event'),
          ...serverRss(server),
          batched_events_per_s: { value: batched.totalFrames / batched.totalSeconds, unit: 'events/s' },
          batched_first_event_ms: { value: batched.firstFrameMs, unit: 'ms' },
        },
        shown: ['events_per_s_lowest', 'events_per_s_highest', 'over_push_same_frames', 'over_push_same_frames_lowest', 'over_push_same_frames_highest', 'seconds', 'steady_events_per_s', 'batched_events_per_s', 'first_event_ms', 'first_event_1_line_ms', 'first_event_100k_lines_ms', 'user_first_event_1_line_ms', 'user_first_event_100k_lines_ms', 'event_age_p50_ms', 'event_age_p99_ms', 'event_age_p999_ms', 'server_cpu_pct', 'server_main_thread_cpu_pct', 'server_cpu_us_per_event', 'server_main_thread_us_per_event', 'client_cpu_pct', 'server_peak_rss_mb'],
        setup: `1 execution, ${lines} console.log lines (+ value, done), after a ${ctx.quick ? 2_000 : 20_000}-line warm-up, ${MEASURED_STREAMS[mode]} of them in a row, the median one reported (its events/s the headline; _lowest / _highest over them beside it), each between two push one-shots of as many frames (over_push_same_frames: push's mean time over the stream's, the median of the streams', as replay's headline); then the same to a client asking for batched events frames (batched_*); then the first event of a 1-line and of a ${FIRST_EVENT_LONG_LINES}-line run, each by a fresh load generator after a gate (first_event_*), and as a user sees it (user_first_event_*: a client warmed by ${USER_WARM_EXECUTES[mode]} executes, execute sent as the new session's reply comes, median of ${USER_FIRST_EVENT_ROUNDS[mode]} runs of each); event ages timed once per socket read (every event of a read arrived with it)`,
      };
    } finally {
      await server.stop();
    }
  },
};
