/**
 * replay: a stored 200 000-line execution read back after a restart. The server that ran it is
 * stopped, a new one starts over the same data folder, and a client subscribes with `after_seq: 0`:
 * every event comes from LevelDB (256 frames per entry), through the subscription's catch-up pages,
 * to the socket. The first subscribe after the restart is measured (cold: fresh process, LevelDB's
 * caches empty) from the request to the `done`; a second one on the same server is the warm figure.
 *
 * The headline holds it against push in the same shape: the push baseline's bare server pushing as
 * many frames, one-shot, to a load generator warmed as the replay's, timed from the request to the
 * end frame, just before and just after the cold replay (their mean time). A full run takes three
 * such rounds, each cold replay on a restart of its own (P R P R P R P, each push shared by the
 * rounds either side), and reports the median round whole: push's one-shot time moved by up to 50 %
 * between two readings a replay apart, so one 0.3 s round could decide the verdict alone.
 *
 * Push's own figure is a steady rate, measured after a second of warm-up in which its client
 * decodes ~1M frames; a one-shot client pays its start in the measured time (its first 50 000
 * events cost ~1 µs more each than the rest, push's and replay's alike: bench/README.md, "Replay
 * against push in its own shape"). The ratio to push's steady rate (`ratio_to_push`, the headline
 * until then) stays beside it, and so does the ratio to the storage baseline's raw iterator (one
 * frame per entry there, so not a bound on chunked reads).
 */
import { performance } from 'node:perf_hooks';
import type { Ctx, Figure, Scenario } from '../harness/types.js';
import type { Vmstream } from '../harness/vmstream.js';
import { startVmstream } from '../harness/vmstream.js';
import type { SinkResult, SinkSegment } from '../loadgen/types.js';
import { medianBy, spreadFigures } from '../harness/median.js';
import { check, cpuPer, pct, serverCpuFigures, serverRss, type ServerCpu } from './common.js';
import { oneShotJob, overPush, pushSameFrames } from './one-shot.js';
import { eventsOf, STREAM_ENV, streamOnce } from './stream.js';

const EXECUTION_ID = 'bench-replay';
/** The goal: a replay at 0.9 × push (here push for as many frames, its own, in the same shape). */
const OVER_PUSH_GOAL = 0.9;

/** One subscribe from seq 0 to done, the server's CPU metered from the gate (set-up and warm-up left out). */
async function replayOnce(ctx: Ctx, server: Vmstream, lines: number, batch = false): Promise<{ r: SinkResult; cpu: ServerCpu }> {
  let meter: () => ServerCpu = () => ({ process: NaN, main: NaN });
  const r = await ctx.loadgen(
    oneShotJob(ctx, { workload: 'replay', params: { executionId: EXECUTION_ID, ...(batch ? { batch: true } : {}) }, url: server.url, token: server.token }),
    1,
    { onReady: () => void (meter = server.cpuMeter()) },
  );
  const cpu = meter();
  check(r.unfinished === 0, `the replay did not reach done within the time bound (${r.totalFrames} events)`);
  check(r.totalFrames === eventsOf(lines), `expected ${eventsOf(lines)} events, got ${r.totalFrames}`);
  check(r.seqErrors === 0, `${r.seqErrors} events out of seq order`);
  return { r, cpu };
}

function usPerEvent(segments: SinkSegment[]): Figure {
  const events = segments.reduce((sum, s) => sum + s.events, 0);
  return { value: events > 0 ? (segments.reduce((sum, s) => sum + s.cpuMs, 0) * 1000) / events : NaN, unit: 'µs' };
}

/** The client's CPU per event over whole streams, over their first startEvents and over the rest. */
function clientCpuPerEvent(runs: SinkResult[], prefix: string): Record<string, Figure> {
  const starts = runs.flatMap((r) => r.segments?.slice(0, 1) ?? []);
  const rests = runs.flatMap((r) => r.segments?.slice(1) ?? []);
  return {
    [`${prefix}client_cpu_us_per_event`]: usPerEvent([...starts, ...rests]),
    [`${prefix}client_start_us_per_event`]: usPerEvent(starts),
    [`${prefix}client_rest_us_per_event`]: usPerEvent(rests),
  };
}

/** Cold replays, each on a restart and between two one-shot pushes: the median round's ratio is the headline. */
const COLD_ROUNDS = { quick: 1, full: 3 };

/** One cold replay held against push's one-shot time for as many frames, measured just before and just after it. */
interface ColdRound {
  cold: SinkResult;
  serverCpu: ServerCpu;
  server: Vmstream;
  /** Read before the server is stopped (/proc forgets a reaped process): after its cold replay. */
  peakRss: Record<string, Figure>;
  restartMs: number;
  pushedBefore: SinkResult;
  pushedAfter: SinkResult;
  /** Push's mean time over the replay's: the round's `over_push_same_frames`. */
  overPush: number;
}

/** A server restarted over `dataDir`, its first (cold) replay, then push again; the server is left running. */
async function coldRound(ctx: Ctx, dataDir: string, lines: number, pushedBefore: SinkResult): Promise<ColdRound> {
  const t0 = performance.now();
  const server = await startVmstream(ctx, { name: 'replay', env: STREAM_ENV, dataDir });
  const restartMs = performance.now() - t0;
  try {
    const { r: cold, cpu: serverCpu } = await replayOnce(ctx, server, lines);
    const peakRss = serverRss(server);
    const pushedAfter = await pushSameFrames(ctx, eventsOf(lines));
    return { cold, serverCpu, server, peakRss, restartMs, pushedBefore, pushedAfter, overPush: overPush(pushedBefore, pushedAfter, cold) };
  } catch (error) {
    await server.stop();
    throw error;
  }
}

export const replay: Scenario = {
  name: 'replay',
  headline: 'over_push_same_frames',
  alsoNeeds: ['push', 'storage'],
  // Issue 15: ≥ 0.9 × push with event frames; batched_ratio_to_push (events frames) beside it, goal ≥ 2.
  goal: { value: OVER_PUSH_GOAL, unit: '×', better: 'higher' },
  // A full run: five server starts (the write, the batched replay, three cold rounds) and four push
  // one-shots (each two load-generator processes, the untimed push and the measured one); the quick
  // step passed the default 30 s on a loaded machine.
  stepTimeoutMs: { quick: 90_000, full: 240_000 },
  async run(ctx) {
    const lines = ctx.quick ? 10_000 : 200_000;
    const first = await startVmstream(ctx, { name: 'replay-write', env: STREAM_ENV });
    try {
      await streamOnce(ctx, first, lines, { executionId: EXECUTION_ID });
    } finally {
      await first.stop();
    }
    // Protocol v1.1 `events` frames, cold too: a server of its own over the same folder.
    const batchServer = await startVmstream(ctx, { name: 'replay-batch', env: STREAM_ENV, dataDir: first.dataDir });
    let batched: SinkResult;
    try {
      ({ r: batched } = await replayOnce(ctx, batchServer, lines, true));
    } finally {
      await batchServer.stop();
    }
    // Push, cold replay, push, cold replay, … push: each push is the round after's "before".
    const coldRounds = COLD_ROUNDS[ctx.quick ? 'quick' : 'full'];
    const rounds: ColdRound[] = [];
    let pushed = await pushSameFrames(ctx, eventsOf(lines));
    try {
      for (let round = 0; round < coldRounds; round++) {
        const done = await coldRound(ctx, first.dataDir, lines, pushed);
        rounds.push(done);
        pushed = done.pushedAfter;
        // The last round's server stays up for the warm replay.
        if (round < coldRounds - 1) await done.server.stop();
      }
      const { r: warm } = await replayOnce(ctx, rounds.at(-1)!.server, lines);
      const { cold, serverCpu, peakRss, restartMs, pushedBefore, pushedAfter, overPush: ratio } = medianBy(rounds, (round) => round.overPush);
      const pushSeconds = (pushedBefore.totalSeconds + pushedAfter.totalSeconds) / 2;
      const rate = cold.totalFrames / cold.totalSeconds;
      const iterator = ctx.baselines.get('storage')?.figures.entries_per_s?.value ?? NaN;
      const push = ctx.baselines.get('push')?.figures.frames_per_s?.value ?? NaN;
      const batchedRate = batched.totalFrames / batched.totalSeconds;
      return {
        figure: { value: ratio, unit: '×' },
        figures: {
          cold_rounds: { value: rounds.length, unit: 'rounds' },
          ...spreadFigures('over_push_same_frames', rounds.map((round) => round.overPush), '×'),
          events_per_s: { value: rate, unit: 'events/s' },
          ratio_to_push: { value: rate / push, unit: '×' },
          push_same_frames_events_per_s: { value: cold.totalFrames / pushSeconds, unit: 'frames/s' },
          push_same_frames_before_s: { value: pushedBefore.totalSeconds, unit: 's' },
          push_same_frames_after_s: { value: pushedAfter.totalSeconds, unit: 's' },
          ratio_to_storage_iterator: { value: rate / iterator, unit: '×' },
          events: { value: cold.totalFrames, unit: 'events' },
          seconds: { value: cold.totalSeconds, unit: 's' },
          first_event_ms: { value: cold.firstFrameMs, unit: 'ms' },
          steady_events_per_s: { value: cold.framesPerSec, unit: 'events/s' },
          warm_events_per_s: { value: warm.totalFrames / warm.totalSeconds, unit: 'events/s' },
          batched_events_per_s: { value: batchedRate, unit: 'events/s' },
          batched_ratio_to_push: { value: batchedRate / push, unit: '×' },
          restart_ms: { value: restartMs, unit: 'ms' },
          ...serverCpuFigures(serverCpu),
          ...cpuPer(serverCpu, rate, 'event'),
          client_cpu_pct: pct(cold.clientCpuPct),
          ...clientCpuPerEvent([cold], ''),
          ...clientCpuPerEvent([pushedBefore, pushedAfter], 'push_same_frames_'),
          ...peakRss,
        },
        shown: ['over_push_same_frames_lowest', 'over_push_same_frames_highest', 'events_per_s', 'ratio_to_push', 'push_same_frames_events_per_s', 'ratio_to_storage_iterator', 'seconds', 'first_event_ms', 'warm_events_per_s', 'batched_events_per_s', 'batched_ratio_to_push', 'restart_ms', 'server_cpu_pct', 'server_main_thread_cpu_pct', 'server_cpu_us_per_event', 'client_cpu_pct', 'client_start_us_per_event', 'client_rest_us_per_event', 'push_same_frames_client_start_us_per_event', 'push_same_frames_client_rest_us_per_event', 'server_peak_rss_mb'],
        setup: `subscribe after_seq 0 to a stored ${lines}-line execution after a restart (cold), ${rounds.length} time(s), each on a restart of its own, alternating with push one-shots (P R P R … P), and once more on the last restart (warm); headline: the median round's push time for as many frames (${eventsOf(lines)}, push's own) one-shot over its cold replay's (bare server, client warmed alike, the push just before and just after it, their mean), _lowest / _highest over the rounds beside it; the other figures are the median round's; ratio_to_push: over push's steady rate; batched_*: cold, on another restart, asking for events frames`,
      };
    } finally {
      await Promise.all(rounds.map((round) => round.server.stop()));
    }
  },
};

/**
 * The same scenario with its rate as the headline, for a store held against its own baseline
 * (replay-jetstream against the bare NATS client's reads): the events/s, not a ratio to push.
 */
export const replayRate: Scenario = {
  ...replay,
  headline: 'events_per_s',
  against: { baseline: 'push', figure: 'frames_per_s' },
  goal: undefined,
  async run(ctx) {
    const result = await replay.run(ctx);
    // onJetStream puts its own ratio_to_push first.
    const shown = (result.shown ?? []).filter((key) => key !== 'events_per_s' && key !== 'ratio_to_push');
    return { ...result, figure: result.figures!.events_per_s!, figures: { over_push_same_frames: result.figure, ...result.figures }, shown: ['over_push_same_frames', ...shown] };
  },
};
