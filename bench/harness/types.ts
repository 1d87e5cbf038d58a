/**
 * The harness's contract with baselines and scenarios. A scenario is a module exporting a Scenario;
 * registering it is one line in bench/scenarios/index.ts.
 */
import type { Procs } from './procs.js';
import type { LoadJob, ResultFor } from '../loadgen/types.js';
import type { LoadgenHooks } from './loadgen.js';

export interface Figure {
  value: number;
  unit: string;
}

export type BaselineName = 'echo' | 'push' | 'storage' | 'jetstream' | 'ipykernel';

export interface BaselineResult {
  /** Every figure measured, keyed (`rt_per_s`, `p99_ms`, `server_peak_rss_mb`…); scenarios pick one. */
  figures: Record<string, Figure>;
  /** Keys of the figures the printed table shows, first the one most scenarios are held against. */
  shown: string[];
  /** What the run was, in a few words (sizes, connections), for the table and the JSON. */
  setup: string;
}

export interface Baseline {
  name: BaselineName;
  /**
   * Figures shared/README measured on a machine like this, by key, for orientation only: what a
   * scenario is held against is always the baseline measured in the same run.
   */
  reference: Record<string, Figure>;
  /** A longer time bound than the run's default (30 s quick, 180 s full): Jupyter starts Python kernels. */
  stepTimeoutMs?: { quick: number; full: number };
  run(ctx: Ctx): Promise<BaselineResult>;
  /**
   * Measures only what `figure` needs, for the measurements that bracket a scenario held against it
   * (harness/bracket.ts): echo measures one of its four client variants. Absent: `run` again.
   */
  measureFor?(ctx: Ctx, figure: string): Promise<BaselineResult>;
}

/** A goal on the ratio figure / baseline figure: most scenarios are held against the bare stack. */
export interface RatioGoal {
  /** The ratio figure / baseline figure the scenario should reach. */
  ratio: number;
  /** 'higher': ratio ≥ goal is met (throughput); 'lower': ratio ≤ goal is met (latency, memory). */
  better: 'higher' | 'lower';
}

/**
 * A goal on the headline itself, in its own unit (e.g. ≤ 8 KiB per idle socket): for budgets that
 * no baseline sets. Still measured against the same machine's run, never across runs.
 */
export interface AbsoluteGoal {
  value: number;
  unit: string;
  better: 'higher' | 'lower';
}

export type Goal = RatioGoal | AbsoluteGoal;

export interface ScenarioResult {
  /** The headline, held against the baseline figure named in `against`; same unit. */
  figure: Figure;
  /** Anything else worth keeping (percentiles, peak RSS, counts); lands in latest.json. */
  figures?: Record<string, Figure>;
  /** Keys of `figures` the printed table shows under the headline, in order. */
  shown?: string[];
  setup?: string;
}

export interface Scenario {
  name: string;
  /** The headline's name in the table (`executes_per_s`); `figure` when absent. */
  headline?: string;
  /** The baseline figure this scenario's headline is divided by; none for a headline with an absolute goal only. */
  against?: { baseline: BaselineName; figure: string };
  /** Other baselines whose figures the scenario reads from `ctx.baselines` (replay: storage). */
  alsoNeeds?: BaselineName[];
  /** Absent when the issue sets none: the figure is reported, not judged. */
  goal?: Goal;
  /** A longer time bound than the run's default (30 s quick, 180 s full): a cluster boots three servers. */
  stepTimeoutMs?: { quick: number; full: number };
  run(ctx: Ctx): Promise<ScenarioResult>;
}

/**
 * Thrown by a baseline or scenario that cannot run on this machine (a program it compares against is
 * not installed): the run says so with the reason and goes on; it is not a failure of the bench.
 * test/bench-smoke.test.ts fails on it, since `npm test` installs what the bench needs.
 */
export class SkipError extends Error {}

export interface Ctx {
  /** Tiny sizes and short windows: a smoke run, not a measurement. */
  readonly quick: boolean;
  /**
   * Baselines measured earlier in this run, by name: what the selected scenarios need, at least. In a
   * scenario's step, the figures of its baseline are those measured just before it (harness/bracket.ts).
   */
  readonly baselines: ReadonlyMap<BaselineName, BaselineResult>;
  /** Start servers and other children here: the harness stops them all, whatever happens. */
  readonly procs: Procs;
  /** A directory of this run's own, removed at the end. */
  readonly tmpDir: string;
  /**
   * VMSTREAM_* settings every vmstream server of this step gets, under the scenario's own: how one
   * scenario runs again on another store (scenarios/stores.ts).
   */
  readonly serverEnv?: Readonly<Record<string, string>>;
  /** Runs a job in `processes` load-generator processes (connections split among them), merged. */
  loadgen<J extends LoadJob>(job: J, processes?: number, hooks?: LoadgenHooks): Promise<ResultFor<J>>;
  log(line: string): void;
  /**
   * `--profile DIR`: every vmstream server a scenario starts runs under `node --cpu-prof` and writes
   * its profile here (a profile costs the server ~10 %: never read figures from such a run).
   */
  readonly profileDir: string | null;
}
