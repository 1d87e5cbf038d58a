/**
 * The interactive comparison of issue 15, measured the same way for a Jupyter kernel and a vmstream
 * session: trivial executes one at a time (p50 / p99, until each is complete), one execute printing
 * `lines` lines (lines per second, counted until it is complete), and the memory `instances` of them
 * hold once each has run the trivial code (the resident set of the server and all its descendants,
 * read at rest before and after). The printing execute runs `printRuns` times and the median one is
 * reported: one 0.7 s run of either side swung its ratio by a third from one full bench to the next.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Histogram } from './histogram.js';
import { medianBy, spreadFigures } from './median.js';
import { cpuSeconds, treeCpuSeconds, treeRssBytes } from './proc-stats.js';
import type { Figure } from './types.js';

export interface Executed {
  ms: number;
  lines: number;
  messages: number;
}

/** One kernel or session: runs code and says when it completed and what it printed. */
export interface Interpreter {
  /**
   * Resolves when the execute is complete, with its time, the stdout lines it printed and the
   * messages (frames) that carried them; throws unless it ended ok.
   */
  execute(code: string): Promise<Executed>;
}

export interface InteractiveJob {
  /** A new kernel or session, ready to run. */
  open(): Promise<Interpreter>;
  /** The server process whose tree holds them all. */
  pid: number;
  trivial: string;
  /** Code printing `n` lines, one a line. */
  print(n: number): string;
  executes: number;
  lines: number;
  /** Printing executes, one after another: the median one's time and CPU are reported. */
  printRuns: number;
  instances: number;
  settleMs: number;
}

export async function measureInteractive(job: InteractiveJob): Promise<Record<string, Figure>> {
  await sleep(job.settleMs);
  const before = treeRssBytes(job.pid);
  const first = await job.open();
  for (let i = 0; i < Math.min(10, job.executes); i++) await first.execute(job.trivial);
  const hist = new Histogram();
  for (let i = 0; i < job.executes; i++) hist.record((await first.execute(job.trivial)).ms * 1000);
  const runs: Awaited<ReturnType<typeof cpuDuring<Executed>>>[] = [];
  for (let i = 0; i < job.printRuns; i++) {
    runs.push(await cpuDuring(job.pid, () => first.execute(job.print(job.lines))));
    if (runs.at(-1)!.result.lines !== job.lines) throw new Error(`printed ${runs.at(-1)!.result.lines} lines of ${job.lines}`);
  }
  const { result: printed, cpu } = medianBy(runs, (run) => run.result.ms);
  for (let i = 1; i < job.instances; i++) await (await job.open()).execute(job.trivial);
  await sleep(job.settleMs);
  const after = treeRssBytes(job.pid);
  const ms = hist.percentilesMs();
  return {
    execute_p50_ms: { value: ms.p50, unit: 'ms' },
    execute_p99_ms: { value: ms.p99, unit: 'ms' },
    lines_per_s: { value: job.lines / (printed.ms / 1000), unit: 'lines/s' },
    lines_seconds: { value: printed.ms / 1000, unit: 's' },
    // The stdout messages (or frames) that carried them: ipykernel sends ~0.2 s of stdout per message.
    lines_messages: { value: printed.messages, unit: 'messages' },
    print_runs: { value: runs.length, unit: 'runs' },
    ...spreadFigures('lines_per_s', runs.map((run) => job.lines / (run.result.ms / 1000)), 'lines/s'),
    ...cpuPerLine(cpu, job.lines),
    mb_per_instance: { value: (after - before) / job.instances / (1024 * 1024), unit: 'MB' },
    instances: { value: job.instances, unit: '' },
    tree_rss_mb: { value: after / (1024 * 1024), unit: 'MB' },
  };
}

/** CPU seconds of a server while `fn` runs: its whole tree (kernels, sandbox processes) and its main thread alone. */
export async function cpuDuring<T>(pid: number, fn: () => Promise<T>): Promise<{ result: T; cpu: { tree: number; main: number } }> {
  const tree0 = treeCpuSeconds(pid);
  const main0 = cpuSeconds(pid, false, pid);
  const result = await fn();
  return { result, cpu: { tree: treeCpuSeconds(pid) - tree0, main: cpuSeconds(pid, false, pid) - main0 } };
}

/** CPU per printed line, in µs: unlike lines/s, this barely moves when a neighbour takes a core. */
export function cpuPerLine(cpu: { tree: number; main: number }, lines: number, prefix = ''): Record<string, Figure> {
  return {
    [`${prefix}server_cpu_us_per_line`]: { value: (cpu.tree / lines) * 1e6, unit: 'µs' },
    [`${prefix}server_main_thread_us_per_line`]: { value: (cpu.main / lines) * 1e6, unit: 'µs' },
  };
}
