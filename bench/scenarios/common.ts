/** Figures every scenario reports the same way. */
import { Histogram, type HistogramJson } from '../harness/histogram.js';
import { rssFigure } from '../harness/proc-stats.js';
import type { Figure } from '../harness/types.js';
import type { Vmstream } from '../harness/vmstream.js';

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

export function pct(value: number): Figure {
  return { value, unit: '%' };
}

/** Fails the scenario when a correctness check a rate depends on did not hold. */
export function check(condition: boolean, message: string): void {
  if (!condition) throw new Error(message);
}
