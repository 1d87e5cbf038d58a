/**
 * latency: one connection, one session, one `execute {code: "1 + 1"}` in flight at a time, from
 * sending `execute` to receiving `done`. Held against the echo round trip measured the same way (one
 * connection, one request in flight): both are then unloaded round trips, so the ratio is what
 * vmstream adds to one request, not queueing.
 */
import type { Scenario } from '../harness/types.js';
import { startVmstream } from '../harness/vmstream.js';
import { check, cpuPer, latencyFigures, pct, serverCpuFigures, serverRss } from './common.js';

export const latency: Scenario = {
  name: 'latency',
  headline: 'p50_ms',
  against: { baseline: 'echo', figure: 'single_p50_ms' },
  goal: { ratio: 2, better: 'lower' }, // issue 15's goal (p99 ≤ 4 ×, its p99_ratio_to_echo, beside it)
  async run(ctx) {
    const server = await startVmstream(ctx, { name: 'latency' });
    try {
      const serverBusy = server.cpuMeter();
      const r = await ctx.loadgen({
        driver: 'rtt',
        workload: 'execute',
        params: { sessions: 1, code: '1 + 1' },
        url: server.url,
        token: server.token,
        connections: 1,
        window: 1,
        warmupMs: ctx.quick ? 200 : 1_000,
        durationMs: ctx.quick ? 700 : 5_000,
        maxOps: ctx.quick ? 100_000 : 1_000_000,
        coalesceWrites: true,
      });
      const serverCpu = serverBusy();
      check(r.ops > 0, 'no execute completed');
      const figures = latencyFigures(r.hist);
      const p99 = figures.p99_ms!.value;
      const echoP99 = ctx.baselines.get('echo')?.figures.single_p99_ms?.value ?? NaN;
      return {
        figure: figures.p50_ms!,
        figures: {
          ...figures,
          p99_ratio_to_echo: { value: p99 / echoP99, unit: '×' },
          executes_per_s: { value: r.opsPerSec, unit: 'exec/s' },
          executes: { value: r.ops, unit: 'exec' },
          ...serverCpuFigures(serverCpu),
          ...cpuPer(serverCpu, r.opsPerSec, 'execute'),
          client_cpu_pct: pct(r.clientCpuPct),
          ...serverRss(server),
        },
        shown: ['p99_ms', 'p99_ratio_to_echo', 'p999_ms', 'executes_per_s', 'server_cpu_pct', 'server_main_thread_cpu_pct', 'server_cpu_us_per_execute', 'server_peak_rss_mb'],
        setup: `1 conn × 1 in flight, 1 session, ${r.ops} executes in ${r.seconds.toFixed(1)} s`,
      };
    } finally {
      await server.stop();
    }
  },
};
