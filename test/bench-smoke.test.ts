/**
 * The benchmark harness still runs: `node dist/bench/run.js --quick all` measures every baseline and
 * scenario at tiny sizes, exits 0, and every one of them produces figures (none skipped: nats-server
 * and jupyter-notebook, which the JetStream and Jupyter pairs start, are installed by the pretest).
 * No figure is judged here: on a shared machine timings belong to `npm run bench`, not to a test.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { baselines } from '../bench/baselines/index.js';
import { scenarios } from '../bench/scenarios/index.js';
import type { RunRecord } from '../bench/harness/report.js';

const RUN_JS = fileURLToPath(new URL('../dist/bench/run.js', import.meta.url));

function runBench(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUN_JS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, output }));
  });
}

// Five baselines and eighteen scenarios, three of them booting a 3-node cluster or Python kernels:
// minutes on a busy 2-core machine, past the suite's 120 s per file.
t.setTimeout(600_000);

t.test('bench --quick all: exits 0, and every baseline and scenario has figures', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'vmstream-bench-smoke-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const { code, output } = await runBench(['--quick', '--out', out, 'all']);
  t.equal(code, 0, 'exit status', { output: output.slice(-4000) });
  const run = JSON.parse(readFileSync(join(out, 'quick.json'), 'utf8')) as RunRecord;
  t.equal(run.quick, true);
  t.same(run.baselines.map((b) => b.name), baselines.map((b) => b.name), 'every baseline ran');
  t.same(run.scenarios.map((s) => s.name), scenarios.map((s) => s.name), 'every scenario ran');
  // A baseline or scenario skips only when a program it compares against is missing, which
  // `npm test` installs (scripts/system-packages.mjs): here that is a failure, with its reason.
  for (const b of run.baselines) {
    t.equal(b.error, undefined, `${b.name}: no error`);
    t.equal(b.skipped, undefined, `${b.name}: not skipped`);
    for (const key of b.shown) t.ok(Number.isFinite(b.figures[key]?.value), `${b.name}: ${key} is a number`);
  }
  for (const s of run.scenarios) {
    t.equal(s.error, undefined, `${s.name}: no error`);
    t.equal(s.skipped, undefined, `${s.name}: not skipped`);
    t.ok(s.figure && Number.isFinite(s.figure.value), `${s.name}: headline figure is a number`);
    for (const key of s.shown) t.ok(Number.isFinite(s.figures[key]?.value), `${s.name}: ${key} is a number`);
    if (s.baseline) t.ok(s.ratio !== null && Number.isFinite(s.ratio), `${s.name}: ratio to ${s.baseline.name}`);
  }
  // Each ratio divides by the two measurements of its baseline figure next to its scenario, named in the run
  // (the one before may be the opening table's, when nothing ran between it and the scenario).
  const taken = new Map([...run.baselines, ...run.measurements.map((m) => ({ ...m, name: m.baseline }))].map((m) => [m.id, m]));
  for (const s of run.scenarios.filter((s) => s.baseline)) {
    const { name, figure, used } = s.baseline!;
    t.equal(used.length, 2, `${s.name}: measured before and after`);
    for (const ref of used) {
      const m = taken.get(ref.id);
      t.ok(m && m.name === name && m.figures[figure]?.value === ref.value, `${s.name}: ${ref.id} is a measurement of ${name} ${figure}`);
    }
    t.ok(run.measurements.find((m) => m.id === used[1]?.id)?.next.includes(`after ${s.name}`), `${s.name}: the second one was taken after it`);
    t.equal(s.baseline!.value, (used[0]!.value + used[1]!.value) / 2, `${s.name}: the ratio divides by their mean`);
    t.equal(s.baseline!.table?.id, `${s.baseline!.name}#1`, `${s.name}: the opening table's figure kept beside them`);
  }
});
