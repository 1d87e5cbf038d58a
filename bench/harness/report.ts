/**
 * What a run produces: the records (latest.json), the printed tables, and the files on disk. The
 * records are the single source; the table and the chart (svg.ts) are views of them.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BaselineUse, MeasurementRecord, RoundRecord } from './bracket.js';
import type { Figure, Goal } from './types.js';

export interface BaselineRecord {
  /** `push#1`: the opening table's measurement, as the scenarios' records name it. */
  id: string;
  name: string;
  setup: string;
  shown: string[];
  figures: Record<string, Figure>;
  reference: Record<string, Figure>;
  /** CPU busy outside this run during the step, % of one core: high means the figure had company. */
  otherCpuPct: number;
  error?: string;
  /** Why it did not run on this machine (harness/types.ts SkipError). */
  skipped?: string;
}

export interface ScenarioRecord {
  name: string;
  /** What the headline figure is (`executes_per_s`). */
  headline: string;
  setup?: string;
  figure: Figure | null;
  figures: Record<string, Figure>;
  /** Keys of `figures` shown under the headline in the printed table. */
  shown: string[];
  /** The baseline figure the ratio divides by, and the measurements it is the mean of (harness/bracket.ts). */
  baseline: BaselineUse | null;
  /** figure / baseline value; null when either is missing. */
  ratio: number | null;
  /** figure / the opening table's baseline figure: the ratio as measured before brackets, for comparison. */
  tableRatio: number | null;
  /** `--rounds N`: each round's ratio; the record's figures are the median round's. One for a single run. */
  rounds: RoundRecord[];
  /** null: the issue sets no goal for this scenario; its figures are reported, not judged. */
  goal: Goal | null;
  met: boolean | null;
  otherCpuPct: number;
  error?: string;
  skipped?: string;
}

export interface RunRecord {
  date: string;
  quick: boolean;
  node: string;
  cpus: { count: number; model: string };
  frameBytes: number;
  /** The whole run, wall clock. */
  seconds: number;
  /** `--rounds`: how many times each scenario held against a baseline ran between measurements of it. */
  rounds: number;
  baselines: BaselineRecord[];
  /** The baseline measurements taken next to scenarios, in run order. */
  measurements: MeasurementRecord[];
  scenarios: ScenarioRecord[];
}

export function ratioOf(figure: number, baseline: number): number | null {
  return Number.isFinite(figure) && Number.isFinite(baseline) && baseline !== 0 ? figure / baseline : null;
}

/** A ratio goal is judged on the ratio, an absolute one on the headline itself. */
export function goalMet(ratio: number | null, figure: Figure | null, goal: Goal | null): boolean | null {
  if (goal === null) return null;
  const [value, target] = 'ratio' in goal ? [ratio, goal.ratio] : [figure?.value ?? null, goal.value];
  if (value === null || !Number.isFinite(value)) return null;
  return goal.better === 'higher' ? value >= target : value <= target;
}

export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return '—';
  if (Math.abs(value) < 1e-6) return '0'; // float noise from subtracting CPU counters
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US');
  const text = value.toPrecision(3);
  return text.includes('.') && !text.includes('e') ? text.replace(/\.?0+$/, '') : text;
}

export function formatFigure(figure: Figure | null | undefined): string {
  return figure ? `${formatNumber(figure.value)} ${figure.unit}` : '—';
}

export function formatGoal(goal: Goal | null): string {
  if (goal === null) return 'none set';
  const sign = goal.better === 'higher' ? '≥' : '≤';
  return 'ratio' in goal ? `ratio ${sign} ${goal.ratio}` : `${sign} ${formatNumber(goal.value)} ${goal.unit}`;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join(' | ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map(line)].join('\n');
}

export function baselineTable(records: BaselineRecord[]): string {
  if (records.length === 0) return '(no baseline needed by this selection)';
  const rows: string[][] = [];
  for (const b of records) {
    if (b.error || b.skipped) {
      rows.push([b.name, b.error ? 'FAILED' : 'SKIPPED', (b.error ?? b.skipped ?? '').split('\n')[0]!, '', '', '']);
      continue;
    }
    b.shown.forEach((key, i) => {
      const ref = b.reference[key];
      const ratio = ref ? ratioOf(b.figures[key]?.value ?? NaN, ref.value) : null;
      rows.push([
        i === 0 ? b.name : '',
        key,
        formatFigure(b.figures[key]),
        formatFigure(ref),
        ratio === null ? '' : ratio.toFixed(2),
        i === 0 ? b.setup : i === 1 ? `other load on the machine: ${formatNumber(b.otherCpuPct)} % of a core` : '',
      ]);
    });
  }
  return table(['baseline', 'figure', 'this run', 'shared/README', 'run/ref', 'setup'], rows);
}

/**
 * One row per scenario for its headline (held against its baseline and goal), then one per figure
 * it chose to show (throughput, percentiles, peak RSS); below the table, each one's setup and the
 * machine's other load during it.
 */
export function scenarioTable(records: ScenarioRecord[]): string {
  if (records.length === 0) return '(no scenarios selected or registered: see bench/scenarios/index.ts)';
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const s of records) {
    if (s.error || s.skipped) {
      rows.push([s.name, s.error ? 'FAILED' : 'SKIPPED', (s.error ?? s.skipped ?? '').split('\n')[0]!.slice(0, 160), '', '', '', '', '', '']);
      continue;
    }
    rows.push([
      s.name,
      s.headline,
      formatFigure(s.figure),
      s.baseline ? `${s.baseline.name} ${s.baseline.figure} ${formatFigure(s.baseline)}` : '—',
      s.baseline ? s.baseline.used.map((m) => m.id).join(' ') : '',
      s.ratio === null ? '' : s.ratio.toFixed(3),
      s.baseline?.table ? `${s.tableRatio === null ? '—' : s.tableRatio.toFixed(3)} (${s.baseline.table.id})` : '',
      formatGoal(s.goal),
      s.met === null ? '—' : s.met ? 'yes' : 'NO',
    ]);
    for (const key of s.shown) rows.push(['', key, formatFigure(s.figures[key]), '', '', '', '', '', '']);
    notes.push(`${s.name}: ${s.setup ?? ''}; other load on the machine: ${formatNumber(s.otherCpuPct)} % of a core`);
    if (s.rounds.length > 1) {
      notes.push(`  ${s.rounds.length} rounds, ratios ${s.rounds.map((r) => (r.ratio === null ? '—' : r.ratio.toFixed(3))).join(', ')}: the median one's figures above`);
    }
  }
  return [
    table(['scenario', 'figure', 'this run', 'baseline (mean of the two next to it)', 'measured', 'ratio', 'ratio to table', 'goal', 'met?'], rows),
    '',
    ...notes,
  ].join('\n');
}

/**
 * The baseline measurements taken next to the scenarios, in run order: the drift of the machine
 * over the run is read down the `value` column.
 */
export function measurementTable(records: MeasurementRecord[]): string {
  if (records.length === 0) return '(no baseline measured next to a scenario)';
  const rows = records.map((m) => [
    m.id,
    m.figure,
    m.error ? 'FAILED' : m.skipped ? 'SKIPPED' : formatFigure(m),
    m.next.join(', '),
    `${Math.round(m.endS)} s`,
    `${formatNumber(m.otherCpuPct)} %`,
  ]);
  return table(['measurement', 'figure', 'value', 'next to', 'ended at', 'other load'], rows);
}

/** Above this much other load (% of one core) a step's figures are not this stack's alone. */
const NOISY_PCT = 25;

/** Zero or one line, for spreading into the printout. */
export function noiseWarning(run: RunRecord): string[] {
  const noisy = [...run.baselines, ...run.measurements.map((m) => ({ ...m, name: m.id })), ...run.scenarios].filter((r) => r.otherCpuPct > NOISY_PCT);
  if (noisy.length === 0) return [];
  const list = noisy.map((r) => `${r.name} (${Math.round(r.otherCpuPct)} %)`).join(', ');
  return [`warning: something else used the CPU during ${list}; those figures are low, run again.`, ''];
}

/** Write-then-rename, so a reader (or a crash mid-write) never sees half a file. */
export function writeAtomic(dir: string, name: string, content: string): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, content);
  renameSync(tmp, path);
  return path;
}
