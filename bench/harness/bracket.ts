/**
 * Each ratio's baseline measured next to its scenario. This shared 2-core machine's speed drifts by
 * ±40 % over minutes, and a full run takes several: a baseline measured once at the start would let
 * a ratio mix the scenario with the drift between the two. So the baseline figure a scenario is held
 * against is measured again just before it and just after it, and the ratio divides by the mean of
 * the two (linear drift over the scenario cancels). A measurement taken after one scenario is the
 * next one's "before" when nothing ran in between and it holds the figure that one needs, so a row
 * of scenarios on one baseline costs one measurement each, plus one.
 *
 * The opening table's measurement of every baseline stays as it was (the machine's ceilings against
 * shared/README, and the figures scenarios read for their secondary ratios); each scenario's record
 * names the measurements its ratio used and keeps the opening table's figure beside them.
 */
import { performance } from 'node:perf_hooks';
import type { StepOutcome } from './step.js';
import { ratioOf } from './report.js';
import type { Baseline, BaselineName, BaselineResult, Figure, Scenario, ScenarioResult } from './types.js';

/** One measurement of a baseline, opening table or bracket: what a ratio names as the one it used. */
export interface MeasurementRef {
  /** `push#2`: the baseline, and its how-manieth measurement in this run (#1: the opening table's). */
  id: string;
  value: number;
}

/** A measurement taken next to scenarios (the opening table's are BaselineRecords). */
export interface MeasurementRecord {
  id: string;
  baseline: BaselineName;
  /** The figure it was taken for, and its value. */
  figure: string;
  value: number;
  unit: string;
  /** Every figure it measured (echo: only the variant `figure` belongs to). */
  figures: Record<string, Figure>;
  /** `after stream`, `before replay`: the scenarios it was next to. */
  next: string[];
  /** When it ended, in seconds from the start of the run. */
  endS: number;
  /** CPU busy outside this run during it, % of one core. */
  otherCpuPct: number;
  error?: string;
  skipped?: string;
}

/** The baseline of a scenario's ratio: which measurements it used, and the opening table's beside them. */
export interface BaselineUse {
  name: string;
  figure: string;
  /** What the ratio divides by: the mean of `used`. */
  value: number;
  unit: string;
  /** The measurements just before and just after the scenario (one, if the other failed). */
  used: MeasurementRef[];
  /** The opening table's measurement of the same figure, minutes away from the scenario. */
  table: MeasurementRef | null;
}

interface Taken {
  id: string;
  baseline: BaselineName;
  result: BaselineResult;
  /** The record to note further uses on; null for the opening table's. */
  record: MeasurementRecord | null;
}

/** One round of a scenario held against its baseline (`--rounds N`: N of them, the median reported). */
export interface RoundRecord {
  ratio: number | null;
  figure: Figure | null;
  /** The mean of `used`: what `ratio` divides by. */
  baseline: number;
  used: MeasurementRef[];
}

export type MeasureStep = (baseline: Baseline, figure: string) => Promise<StepOutcome<BaselineResult>>;
/** Runs the scenario's step, given its baseline's figures measured just before it. */
export type RunScenario = (before: BaselineResult | undefined) => Promise<StepOutcome<ScenarioResult>>;
type TableMeasurement = { id: string; result: BaselineResult };

export interface Bracketed {
  /** The scenario's step: the median round's, or the failed one's. */
  outcome: StepOutcome<ScenarioResult>;
  use: BaselineUse | null;
  /** Every round, in order; empty for a scenario held against no baseline. */
  rounds: RoundRecord[];
}

export class Brackets {
  readonly records: MeasurementRecord[] = [];
  readonly #counts = new Map<BaselineName, number>();
  readonly #t0: number;
  /** The step that ran last, if it was a measurement that succeeded. */
  #last: Taken | null = null;

  constructor(
    private readonly measureStep: MeasureStep,
    /** Called with each failed or skipped measurement. */
    private readonly onFailure: (record: MeasurementRecord, error: Error | undefined) => void,
    t0 = performance.now(),
  ) {
    this.#t0 = t0;
  }

  /** An opening-table measurement, in the order taken: returns its id. */
  tabled(name: BaselineName, result: BaselineResult | undefined): string {
    const id = this.#nextId(name);
    this.#last = result ? { id, baseline: name, result, record: null } : null;
    return id;
  }

  /**
   * Runs `scenario` (through `run`, given the baseline figures measured just before it) between two
   * measurements of the baseline figure it is held against, `rounds` times in a row (A B A B … A, each
   * measurement shared by the rounds either side of it). `table` is the opening table's result of that
   * baseline: without it (failed, skipped, or no baseline) the scenario runs once, nothing around it.
   */
  async around(
    scenario: Scenario,
    baseline: Baseline | undefined,
    table: TableMeasurement | undefined,
    rounds: number,
    run: RunScenario,
  ): Promise<Bracketed> {
    const against = scenario.against;
    if (!against || !baseline || !table) {
      this.#last = null;
      return { outcome: await run(undefined), use: null, rounds: [] };
    }
    const done: { outcome: StepOutcome<ScenarioResult>; use: BaselineUse; ratio: number | null }[] = [];
    for (let round = 1; round <= rounds; round++) {
      const label = rounds > 1 ? `${scenario.name} (round ${round}/${rounds})` : scenario.name;
      const { outcome, use } = await this.#once(against, baseline, table, label, run);
      done.push({ outcome, use, ratio: outcome.value ? ratioOf(outcome.value.figure.value, use.value) : null });
      if (!outcome.value) break; // a failed round is the scenario's failure: no more rounds of it
    }
    const records = done.map(({ outcome, use, ratio }) => ({ ratio, figure: outcome.value?.figure ?? null, baseline: use.value, used: use.used }));
    // The round with the median ratio (the lower one of the middle two for an even count), reported whole.
    const order = done.map((_, i) => i).sort((a, b) => (done[a]!.ratio ?? Infinity) - (done[b]!.ratio ?? Infinity));
    const chosen = done.some((d) => !d.outcome.value) ? done.length - 1 : order[Math.floor((order.length - 1) / 2)]!;
    return { outcome: done[chosen]!.outcome, use: done[chosen]!.use, rounds: records };
  }

  /** One round: the scenario between a measurement before it and one after it. */
  async #once(
    against: NonNullable<Scenario['against']>,
    baseline: Baseline,
    table: TableMeasurement,
    label: string,
    run: RunScenario,
  ): Promise<{ outcome: StepOutcome<ScenarioResult>; use: BaselineUse }> {
    const before = this.#adjacent(against.baseline, against.figure, `before ${label}`)
      ?? (await this.#measure(baseline, against.figure, `before ${label}`));
    this.#last = null;
    const outcome = await run(before?.result);
    const after = await this.#measure(baseline, against.figure, `after ${label}`);
    const tableFigure = table.result.figures[against.figure];
    const used = [before, after].flatMap((m) => {
      const figure = m?.result.figures[against.figure];
      return m && figure && Number.isFinite(figure.value) ? [{ id: m.id, value: figure.value }] : [];
    });
    const tableRef = tableFigure ? { id: table.id, value: tableFigure.value } : null;
    const unit = tableFigure?.unit ?? '';
    // Both bracket measurements failed: the opening table's figure, named as such, rather than no ratio.
    const chosen = used.length > 0 ? used : tableRef ? [tableRef] : [];
    const mean = chosen.length > 0 ? chosen.reduce((sum, m) => sum + m.value, 0) / chosen.length : NaN;
    return { outcome, use: { name: against.baseline, figure: against.figure, value: mean, unit, used: chosen, table: tableRef } };
  }

  /** The last step's measurement, if it holds `figure` of `name`: nothing ran between it and the scenario. */
  #adjacent(name: BaselineName, figure: string, purpose: string): Taken | null {
    const last = this.#last;
    if (!last || last.baseline !== name || !Number.isFinite(last.result.figures[figure]?.value)) return null;
    last.record?.next.push(purpose);
    return last;
  }

  async #measure(baseline: Baseline, figure: string, purpose: string): Promise<Taken | null> {
    const id = this.#nextId(baseline.name);
    const outcome = await this.measureStep(baseline, figure);
    const measured = outcome.value?.figures[figure];
    const record: MeasurementRecord = {
      id,
      baseline: baseline.name,
      figure,
      value: measured?.value ?? NaN,
      unit: measured?.unit ?? '',
      figures: outcome.value?.figures ?? {},
      next: [purpose],
      endS: (performance.now() - this.#t0) / 1000,
      otherCpuPct: outcome.otherCpuPct,
    };
    this.records.push(record);
    if (!outcome.value) this.onFailure(record, outcome.error);
    this.#last = outcome.value ? { id, baseline: baseline.name, result: outcome.value, record } : null;
    return this.#last;
  }

  #nextId(name: BaselineName): string {
    const n = (this.#counts.get(name) ?? 0) + 1;
    this.#counts.set(name, n);
    return `${name}#${n}`;
  }
}

/**
 * The baselines a scenario's step sees: the run's, with the figures of its own baseline replaced by
 * those measured just before it (its secondary ratios, computed inside the scenario, cannot wait for
 * the measurement after it).
 */
export function withBefore(
  measured: ReadonlyMap<BaselineName, BaselineResult>,
  name: BaselineName | undefined,
  before: BaselineResult | undefined,
): ReadonlyMap<BaselineName, BaselineResult> {
  const run = name ? measured.get(name) : undefined;
  if (!name || !run || !before) return measured;
  return new Map(measured).set(name, { ...run, figures: { ...run.figures, ...before.figures } });
}
