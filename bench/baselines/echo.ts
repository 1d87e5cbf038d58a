/**
 * Echo: the round-trip ceiling for request/response scenarios (execute → done, latency). The bare
 * server does only what every answer costs (decode, encode, send), so no server can answer faster
 * through the same client on the same machine.
 *
 * Measured four times: with the load generator's write coalescing (the headline: the stack's
 * ceiling), with plain `ws` sends, one syscall per frame (what shared/README's ~100k rt/s was), since
 * a scenario driven by a client that cannot coalesce is fairly held against the second; the same
 * plain client with 16 in flight per connection (`plain_ws_16_`: the pair of execute-trivial-plain,
 * issue 15); and with one connection and one request in flight (`single_`): the unloaded round trip,
 * the fair floor for the latency scenario, which loaded percentiles (queueing behind 511 other
 * requests) are not.
 */
import { Histogram } from '../harness/histogram.js';
import type { Child } from '../harness/procs.js';
import type { Baseline, Ctx, Figure } from '../harness/types.js';
import { rssFigure } from '../harness/proc-stats.js';
import { startBareServer } from './bare-server.js';

const CONNECTIONS = 8;
const WINDOW = 64;
/** In flight per connection of the plain pair (execute-trivial-plain drives vmstream the same way). */
export const PLAIN_PAIR_WINDOW = 16;

interface Variant {
  connections: number;
  window: number;
  coalesceWrites: boolean;
  /** The headline's variant gets the longer window. */
  long: boolean;
}

const VARIANTS: Record<string, Variant> = {
  '': { connections: CONNECTIONS, window: WINDOW, coalesceWrites: true, long: true },
  plain_ws_: { connections: CONNECTIONS, window: WINDOW, coalesceWrites: false, long: false },
  plain_ws_16_: { connections: CONNECTIONS, window: PLAIN_PAIR_WINDOW, coalesceWrites: false, long: false },
  single_: { connections: 1, window: 1, coalesceWrites: true, long: false },
};

async function measure(ctx: Ctx, server: Child, url: string, prefix: string): Promise<Record<string, Figure>> {
  const variant = VARIANTS[prefix]!;
  const serverBusy = server.cpuMeter();
  const result = await ctx.loadgen({
    driver: 'rtt',
    workload: 'echo',
    url,
    connections: variant.connections,
    window: variant.window,
    warmupMs: ctx.quick ? 200 : variant.long ? 2_000 : 1_000,
    durationMs: ctx.quick ? 700 : variant.long ? 5_000 : 3_000,
    maxOps: ctx.quick ? 500_000 : 5_000_000,
    coalesceWrites: variant.coalesceWrites,
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

/** The variants named by `prefixes`, in order, on one bare server. */
async function measureVariants(ctx: Ctx, prefixes: string[]): Promise<Record<string, Figure>> {
  const { server, url } = await startBareServer(ctx);
  try {
    const figures: Record<string, Figure> = {};
    for (const prefix of prefixes) Object.assign(figures, await measure(ctx, server, url, prefix));
    figures.server_peak_rss_mb = rssFigure(server.peakRssBytes());
    return figures;
  } finally {
    await server.stop();
  }
}

/** The variant a figure belongs to: the longest prefix of its key (`plain_ws_16_` over `plain_ws_`). */
function variantOf(figure: string): string {
  return Object.keys(VARIANTS).filter((prefix) => figure.startsWith(prefix)).sort((a, b) => b.length - a.length)[0]!;
}

export const echo: Baseline = {
  name: 'echo',
  reference: { plain_ws_rt_per_s: { value: 100_000, unit: 'rt/s' } },
  async run(ctx) {
    const figures = await measureVariants(ctx, Object.keys(VARIANTS));
    return {
      shown: [
        'rt_per_s', 'p50_ms', 'p99_ms', 'p999_ms', 'server_cpu_pct', 'client_cpu_pct', 'plain_ws_rt_per_s', 'plain_ws_p99_ms', 'plain_ws_16_rt_per_s', 'plain_ws_16_p50_ms',
        'single_rt_per_s', 'single_p50_ms', 'single_p99_ms', 'single_p999_ms', 'server_peak_rss_mb',
      ],
      setup: `${CONNECTIONS} conns × ${WINDOW} in flight, ${figures.seconds!.value.toFixed(1)} s (+ plain ws ${figures.plain_ws_seconds!.value.toFixed(1)} s, + plain ws ${CONNECTIONS} × ${PLAIN_PAIR_WINDOW} ${figures.plain_ws_16_seconds!.value.toFixed(1)} s, + 1 conn × 1 in flight ${figures.single_seconds!.value.toFixed(1)} s)`,
      figures,
    };
  },
  // A scenario is held against one variant: measuring the other three beside it would cost ~15 s a time.
  async measureFor(ctx, figure) {
    const prefix = variantOf(figure);
    const variant = VARIANTS[prefix]!;
    const figures = await measureVariants(ctx, [prefix]);
    return {
      shown: [figure],
      setup: `${variant.connections} conns × ${variant.window} in flight${variant.coalesceWrites ? '' : ', plain ws'}, ${figures[`${prefix}seconds`]!.value.toFixed(1)} s`,
      figures,
    };
  },
};
