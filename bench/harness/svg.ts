/**
 * latest.svg, written by hand: one horizontal bar per scenario (its ratio to its baseline, with the
 * goal drawn across the bar), then one per baseline figure (this run against shared/README's figure).
 * Plain SVG 1.1 so it renders in a browser, on GitHub and in an image viewer without a dependency.
 */
import { formatGoal, type RunRecord } from './report.js';

const WIDTH = 760;
const LABEL_W = 250;
const BAR_X = LABEL_W + 10;
const BAR_W = WIDTH - BAR_X - 90;
const ROW_H = 26;
const BAR_H = 16;

interface Row {
  label: string;
  ratio: number | null;
  /** Where to draw the mark line, and its label. */
  mark: number;
  markLabel: string;
  color: string;
}

function escape(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c);
}

function section(title: string, rows: Row[], top: number, lines: string[]): number {
  lines.push(`<text x="10" y="${top + 16}" font-weight="bold">${escape(title)}</text>`);
  let y = top + 28;
  if (rows.length === 0) {
    lines.push(`<text x="${BAR_X}" y="${y + 13}" fill="#666">none in this run</text>`);
    return y + ROW_H;
  }
  // One scale per section, wide enough for every bar and mark, so bars compare within it.
  const max = Math.max(1.2, ...rows.map((r) => Math.max(r.ratio ?? 0, r.mark) * 1.1));
  const x = (ratio: number): number => BAR_X + (Math.min(ratio, max) / max) * BAR_W;
  for (const row of rows) {
    lines.push(`<text x="${LABEL_W}" y="${y + 13}" text-anchor="end">${escape(row.label)}</text>`);
    if (row.ratio === null) {
      lines.push(`<text x="${BAR_X}" y="${y + 13}" fill="#c62828">failed</text>`);
    } else {
      const w = Math.max(1, x(row.ratio) - BAR_X);
      lines.push(`<rect x="${BAR_X}" y="${y}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${row.color}"/>`);
      lines.push(`<text x="${(BAR_X + w + 6).toFixed(1)}" y="${y + 13}">${row.ratio.toFixed(2)}</text>`);
    }
    const mx = x(row.mark).toFixed(1);
    lines.push(`<line x1="${mx}" y1="${y - 3}" x2="${mx}" y2="${y + BAR_H + 3}" stroke="#000" stroke-width="2" stroke-dasharray="4 2"><title>${escape(row.markLabel)}</title></line>`);
    y += ROW_H;
  }
  return y;
}

export function renderSvg(run: RunRecord): string {
  const scenarioRows: Row[] = run.scenarios.map((s) => ({
    label: s.baseline ? `${s.name} (÷ ${s.baseline.name} ${s.baseline.figure})` : s.name,
    ratio: s.error ? null : s.ratio,
    mark: s.goal.ratio,
    markLabel: `goal ${formatGoal(s.goal)}`,
    color: s.met ? '#2e7d32' : '#c62828',
  }));
  const baselineRows: Row[] = [];
  for (const b of run.baselines) {
    for (const [key, ref] of Object.entries(b.reference)) {
      const value = b.figures[key]?.value;
      baselineRows.push({
        label: `${b.name} ${key}`,
        ratio: b.error || value === undefined ? null : value / ref.value,
        mark: 1,
        markLabel: `shared/README: ${ref.value} ${ref.unit}`,
        color: '#1565c0',
      });
    }
  }
  const body: string[] = [];
  let y = 34;
  y = section('Scenarios: figure ÷ baseline (dashed line: goal)', scenarioRows, y, body);
  y = section('Baselines: this run ÷ shared/README figure (dashed line: 1.0)', baselineRows, y + 10, body);
  const height = y + 10;
  const title = `vmstream bench ${run.date}${run.quick ? ' (quick: not a measurement)' : ''}, node ${run.node}, ${run.cpus.count}× ${run.cpus.model}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    `<text x="10" y="20" font-size="13">${escape(title)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}
