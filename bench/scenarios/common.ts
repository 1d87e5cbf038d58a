/** Figures every scenario reports the same way. */
import { Histogram, type HistogramJson } from '../harness/histogram.js';
import { rssFigure } from '../harness/proc-stats.js';
import type { Ctx, Figure } from '../harness/types.js';
import type { Vmstream } from '../harness/vmstream.js';

/**
 * Frames a load generator decodes from its own in-process server before a one-shot stream
 * (loadgen/warm.ts): a cold client would otherwise set the figure of a 0.3 s replay.
 */
export function warmFrames(ctx: Ctx): number {
  return ctx.quick ? 20_000 : 300_000;
}

/** p50/p99/p999/max of a histogram in ms, under `prefix`. */
export function latencyFigures(hist: HistogramJson, prefix = ''): Record<string, Figure> {
  const ms = Histogram.from(hist).percentilesMs();
  return {
    [`${prefix}p50_ms`]: { value: ms.p50, unit: 'ms' },
    [`${prefix}p99_ms`]: { value: ms.p99, unit: 'ms' },
    [`${prefix}p999_ms`]: { value: ms.p999, unit: 'ms' },
    [`${prefix}max_ms`]: { value: ms.max, unit: 'ms' },
  };
}

export function serverRss(server: Vmstream): Record<string, Figure> {
  return { server_peak_rss_mb: rssFigure(server.peakRssBytes()) };
}

export type ServerCpu = ReturnType<ReturnType<Vmstream['cpuMeter']>>;

/** The server's CPU: the whole process (workers, LevelDB's pool, GC threads) and its event loop alone. */
export function serverCpuFigures(cpu: ServerCpu): Record<string, Figure> {
  return { server_cpu_pct: pct(cpu.process), server_main_thread_cpu_pct: pct(cpu.main) };
}

/**
 * The server's CPU time per unit of work, in µs: all threads, and the event loop's thread alone.
 * Unlike a rate, this barely moves when a neighbour takes a core, so it is the figure to compare
 * across runs on a shared machine (and it says how far any goal is: 2 cores ÷ cost = ceiling).
 */
export function cpuPer(cpu: ServerCpu, perSecond: number, what: string): Record<string, Figure> {
  return {
    [`server_cpu_us_per_${what}`]: { value: (cpu.process / 100 / perSecond) * 1e6, unit: 'µs' },
    [`server_main_thread_us_per_${what}`]: { value: (cpu.main / 100 / perSecond) * 1e6, unit: 'µs' },
  };
}

export function pct(value: number): Figure {
  return { value, unit: '%' };
}

/** Fails the scenario when a correctness check a rate depends on did not hold. */
export function check(condition: boolean, message: string): void {
  if (!condition) throw new Error(message);
}
