/**
 * replay: a stored 200 000-line execution read back after a restart. The server that ran it is
 * stopped, a new one starts over the same data folder, and a client subscribes with `after_seq: 0`:
 * every event comes from LevelDB (256 frames per entry), through the subscription's catch-up pages,
 * to the socket. Held against push (the one-way ceiling of the socket); beside it, the ratio to the
 * storage baseline's raw iterator (one frame per entry there, so not a bound on chunked reads).
 *
 * The first subscribe after the restart is the headline (cold: fresh process, LevelDB's caches
 * empty); a second one on the same server is reported as the warm figure.
 */
import { performance } from 'node:perf_hooks';
import type { Ctx, Scenario } from '../harness/types.js';
import type { Vmstream } from '../harness/vmstream.js';
import { startVmstream } from '../harness/vmstream.js';
import type { SinkResult } from '../loadgen/types.js';
import { check, cpuPer, pct, serverCpuFigures, serverRss, type ServerCpu, warmFrames } from './common.js';
import { eventsOf, STREAM_ENV, streamOnce } from './stream.js';

const EXECUTION_ID = 'bench-replay';

/** One subscribe from seq 0 to done, the server's CPU metered from the gate (set-up and warm-up left out). */
async function replayOnce(ctx: Ctx, server: Vmstream, lines: number, batch = false): Promise<{ r: SinkResult; cpu: ServerCpu }> {
  let meter: () => ServerCpu = () => ({ process: NaN, main: NaN });
  const r = await ctx.loadgen(
    {
      driver: 'sink',
      workload: 'replay',
      params: { executionId: EXECUTION_ID, ...(batch ? { batch: true } : {}) },
      url: server.url,
      token: server.token,
      connections: 1,
      count: 0,
      warmupMs: 300,
      durationMs: 120_000,
      gated: true,
      warmClientFrames: warmFrames(ctx),
    },
    1,
    { onReady: () => void (meter = server.cpuMeter()) },
  );
  const cpu = meter();
  check(r.unfinished === 0, `the replay did not reach done within the time bound (${r.totalFrames} events)`);
  check(r.totalFrames === eventsOf(lines), `expected ${eventsOf(lines)} events, got ${r.totalFrames}`);
  check(r.seqErrors === 0, `${r.seqErrors} events out of seq order`);
  return { r, cpu };
}

export const replay: Scenario = {
  name: 'replay',
  headline: 'events_per_s',
  against: { baseline: 'push', figure: 'frames_per_s' },
  alsoNeeds: ['storage'],
  // Issue 15: ≥ 0.9 × push with event frames; batched_ratio_to_push (events frames) beside it, goal ≥ 2.
  goal: { ratio: 0.9, better: 'higher' },
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
    const t0 = performance.now();
    const server = await startVmstream(ctx, { name: 'replay', env: STREAM_ENV, dataDir: first.dataDir });
    const restartMs = performance.now() - t0;
    try {
      const { r: cold, cpu: serverCpu } = await replayOnce(ctx, server, lines);
      const { r: warm } = await replayOnce(ctx, server, lines);
      const rate = cold.totalFrames / cold.totalSeconds;
      const iterator = ctx.baselines.get('storage')?.figures.entries_per_s?.value ?? NaN;
      const push = ctx.baselines.get('push')?.figures.frames_per_s?.value ?? NaN;
      const batchedRate = batched.totalFrames / batched.totalSeconds;
      return {
        figure: { value: rate, unit: 'events/s' },
        figures: {
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
          ...serverRss(server),
        },
        shown: ['ratio_to_storage_iterator', 'seconds', 'first_event_ms', 'warm_events_per_s', 'batched_events_per_s', 'batched_ratio_to_push', 'restart_ms', 'server_cpu_pct', 'server_main_thread_cpu_pct', 'server_cpu_us_per_event', 'client_cpu_pct', 'server_peak_rss_mb'],
        setup: `subscribe after_seq 0 to a stored ${lines}-line execution, first after a restart (cold), then again (warm); batched_*: cold, on another restart, asking for events frames`,
      };
    } finally {
      await server.stop();
    }
  },
};
