/** Medians and spreads of repeated runs, for scenarios and baselines alike. */
import type { Figure } from './types.js';

/** The middle value (the upper one of the middle two for an even count). */
export function median(values: readonly number[]): number {
  return medianBy(values, (value) => value);
}

/**
 * The item whose `key` is the middle one (the upper of the middle two for an even count): a run
 * reported whole, its figures all from one measurement rather than medians taken apart.
 */
export function medianBy<T>(items: readonly T[], key: (item: T) => number): T {
  const sorted = [...items].sort((a, b) => key(a) - key(b));
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** The lowest and highest of a figure over repeated runs, under `<name>_lowest` / `<name>_highest`. */
export function spreadFigures(name: string, values: readonly number[], unit: string): Record<string, Figure> {
  return {
    [`${name}_lowest`]: { value: Math.min(...values), unit },
    [`${name}_highest`]: { value: Math.max(...values), unit },
  };
}
