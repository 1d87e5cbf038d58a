/**
 * What a run produces: the records (latest.json), the printed tables, and the files on disk. The
 * records are the single source; the table and the chart (svg.ts) are views of them.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Figure, Goal } from './types.js';

export interface BaselineRecord {
  name: string;
  setup: string;
  shown: string[];
  figures: Record<string, Figure>;
  reference: Record<string, Figure>;
  /** CPU busy outside this run during the step, % of one core: high means the figure had company. */
  otherCpuPct: number;
  error?: string;
}

export interface ScenarioRecord {
  name: string;
  setup?: string;
  figure: Figure | null;
  figures: Record<string, Figure>;
  baseline: { name: string; figure: string; value: number; unit: string } | null;
  /** figure / baseline value; null when either is missing. */
  ratio: number | null;
  goal: Goal;
  met: boolean | null;
  otherCpuPct: number;
  error?: string;
}

export interface RunRecord {
  date: string;
  quick: boolean;
  node: string;
  cpus: { count: number; model: string };
  frameBytes: number;
  baselines: BaselineRecord[];
  scenarios: ScenarioRecord[];
}

export function ratioOf(figure: number, baseline: number): number | null {
  return Number.isFinite(figure) && Number.isFinite(baseline) && baseline !== 0 ? figure / baseline : null;
}

export function goalMet(ratio: number | null, goal: Goal): boolean | null {
  if (ratio === null) return null;
  return goal.better === 'higher' ? ratio >= goal.ratio : ratio <= goal.ratio;
}

export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return '—';
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US');
  const text = value.toPrecision(3);
  return text.includes('.') && !text.includes('e') ? text.replace(/\.?0+$/, '') : text;
}

export function formatFigure(figure: Figure | null | undefined): string {
  return figure ? `${formatNumber(figure.value)} ${figure.unit}` : '—';
}

export function formatGoal(goal: Goal): string {
  return `${goal.better === 'higher' ? '≥' : '≤'} ${goal.ratio}`;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join(' | ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map(line)].join('\n');
}

export function baselineTable(records: BaselineRecord[]): string {
  const rows: string[][] = [];
  for (const b of records) {
    if (b.error) {
      rows.push([b.name, 'FAILED', b.error.split('\n')[0], '', '', '']);
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

export function scenarioTable(records: ScenarioRecord[]): string {
  if (records.length === 0) return '(no scenarios selected or registered: see bench/scenarios/index.ts)';
  const rows = records.map((s) => [
    s.name,
    s.error ? `FAILED: ${s.error.split('\n')[0]}` : formatFigure(s.figure),
    s.baseline ? `${s.baseline.name} ${formatFigure(s.baseline)}` : '—',
    s.ratio === null ? '—' : s.ratio.toFixed(3),
    formatGoal(s.goal),
    s.met === null ? '—' : s.met ? 'yes' : 'NO',
  ]);
  return table(['scenario', 'figure', 'baseline', 'ratio', 'goal', 'met?'], rows);
}

/** Above this much other load (% of one core) a step's figures are not this stack's alone. */
const NOISY_PCT = 25;

/** Zero or one line, for spreading into the printout. */
export function noiseWarning(run: RunRecord): string[] {
  const noisy = [...run.baselines, ...run.scenarios].filter((r) => r.otherCpuPct > NOISY_PCT);
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
