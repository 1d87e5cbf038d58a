/**
 * Echo: the round-trip ceiling for request/response scenarios (execute → done, latency). The bare
 * server does only what every answer costs (decode, encode, send), so no server can answer faster
 * through the same client on the same machine.
 *
 * Measured twice: with the load generator's write coalescing (the headline: the stack's ceiling) and
 * with plain `ws` sends, one syscall per frame (what shared/README's ~100k rt/s was), since a
 * scenario driven by a client that cannot coalesce is fairly held against the second.
 */
import { Histogram } from '../harness/histogram.js';
import type { Child } from '../harness/procs.js';
import type { Baseline, Ctx, Figure } from '../harness/types.js';
import { rssFigure } from '../harness/proc-stats.js';
import { startBareServer } from './bare-server.js';

const CONNECTIONS = 8;
const WINDOW = 64;

async function measure(ctx: Ctx, server: Child, url: string, coalesceWrites: boolean, prefix: string): Promise<Record<string, Figure>> {
  const serverBusy = server.cpuMeter();
  const result = await ctx.loadgen({
    driver: 'rtt',
    workload: 'echo',
    url,
    connections: CONNECTIONS,
    window: WINDOW,
    warmupMs: ctx.quick ? 200 : coalesceWrites ? 2_000 : 1_000,
    durationMs: ctx.quick ? 700 : coalesceWrites ? 5_000 : 3_000,
    maxOps: ctx.quick ? 500_000 : 5_000_000,
    coalesceWrites,
  });
  const serverCpu = serverBusy();
  const ms = Histogram.from(result.hist).percentilesMs();
  return {
    [`${prefix}rt_per_s`]: { value: result.opsPerSec, unit: 'rt/s' },
    [`${prefix}round_trips`]: { value: result.ops, unit: 'rt' },
    [`${prefix}seconds`]: { value: result.seconds, unit: 's' },
    [`${prefix}p50_ms`]: { value: ms.p50, unit: 'ms' },
    [`${prefix}p99_ms`]: { value: ms.p99, unit: 'ms' },
    [`${prefix}p999_ms`]: { value: ms.p999, unit: 'ms' },
    [`${prefix}max_ms`]: { value: ms.max, unit: 'ms' },
    [`${prefix}unanswered`]: { value: result.unanswered, unit: 'req' },
    [`${prefix}server_cpu_pct`]: { value: serverCpu, unit: '%' },
    [`${prefix}client_cpu_pct`]: { value: result.clientCpuPct, unit: '%' },
  };
}

export const echo: Baseline = {
  name: 'echo',
  reference: { plain_ws_rt_per_s: { value: 100_000, unit: 'rt/s' } },
  async run(ctx) {
    const { server, url } = await startBareServer(ctx);
    try {
      const figures: Record<string, Figure> = {
        ...(await measure(ctx, server, url, true, '')),
        ...(await measure(ctx, server, url, false, 'plain_ws_')),
        server_peak_rss_mb: rssFigure(server.peakRssBytes()),
      };
      return {
        shown: ['rt_per_s', 'p50_ms', 'p99_ms', 'p999_ms', 'server_cpu_pct', 'client_cpu_pct', 'plain_ws_rt_per_s', 'plain_ws_p99_ms', 'server_peak_rss_mb'],
        setup: `${CONNECTIONS} conns × ${WINDOW} in flight, ${figures.seconds.value.toFixed(1)} s (+ plain ws ${figures.plain_ws_seconds.value.toFixed(1)} s)`,
        figures,
      };
    } finally {
      await server.stop();
    }
  },
};
