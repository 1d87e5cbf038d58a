/**
 * One baseline or scenario run under a time bound, with a measure of how much of the machine
 * something else was using meanwhile: on a shared 2-core machine that is the first thing to check
 * when a figure looks off, and a step with both its processes well under a core usually had company.
 */
import { performance } from 'node:perf_hooks';
import { cpuSeconds, machineBusySeconds, orphanableCpuSeconds } from './proc-stats.js';
import type { Procs } from './procs.js';

export interface StepOutcome<T> {
  value?: T;
  error?: Error;
  /** Busy CPU outside this run's own process tree during the step, in % of one core. */
  otherCpuPct: number;
}

export async function runStep<T>(procs: Procs, name: string, ms: number, step: () => Promise<T>): Promise<StepOutcome<T>> {
  const machine0 = machineBusySeconds();
  // Our own CPU plus that of children already reaped; `stopAll` below reaps the rest before we read.
  const own0 = cpuSeconds('self', true) + orphanableCpuSeconds();
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const expiry = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      // Killing the children fails whatever the step is waiting on, so it settles too.
      void procs.stopAll();
      reject(new Error(`${name} took longer than ${ms} ms`));
    }, ms);
  });
  const outcome: StepOutcome<T> = { otherCpuPct: NaN };
  let orphaned = 0;
  try {
    outcome.value = await Promise.race([step(), expiry]);
  } catch (error) {
    outcome.error = error as Error;
  } finally {
    clearTimeout(timer);
    // Grandchildren (sandbox processes) are reaped by init once their server stops: read theirs first.
    orphaned = orphanableCpuSeconds();
    // Whatever a step forgot to stop must not load the machine during the next one.
    await procs.stopAll();
  }
  const seconds = (performance.now() - t0) / 1000;
  const other = machineBusySeconds() - machine0 - (cpuSeconds('self', true) + orphaned - own0);
  outcome.otherCpuPct = Math.max(0, (other / seconds) * 100);
  return outcome;
}
