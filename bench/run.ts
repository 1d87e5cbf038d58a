/**
 * `npm run bench [-- [--quick] [--rounds N] [--out DIR] [--server-env KEY=VALUE]... [NAME...]]`: measures the baselines the selection needs,
 * runs the selected scenarios, each between two measurements of the baseline figure it is held
 * against (harness/bracket.ts), prints the tables and writes latest.json / latest.svg
 * (quick.json / quick.svg for --quick, so a smoke run never overwrites a measurement).
 *
 * NAME is a scenario, a baseline, `baselines`, `scenarios` or `all` (the default).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { baselines } from './baselines/index.js';
import { Brackets, withBefore } from './harness/bracket.js';
import { formatProfile, summarizeProfile } from './harness/cpuprofile.js';
import { encodedEventSize } from './harness/frames.js';
import { runLoadgen } from './harness/loadgen.js';
import { Procs } from './harness/procs.js';
import { runStep } from './harness/step.js';
import {
  baselineTable,
  goalMet,
  measurementTable,
  noiseWarning,
  ratioOf,
  scenarioTable,
  writeAtomic,
  type BaselineRecord,
  type RunRecord,
  type ScenarioRecord,
} from './harness/report.js';
import { renderSvg } from './harness/svg.js';
import { SkipError, type Baseline, type BaselineName, type BaselineResult, type Ctx, type Scenario } from './harness/types.js';
import { scenarios } from './scenarios/index.js';

/** No baseline or scenario may hold the run longer than this; its children are then killed. */
const STEP_TIMEOUT_MS = { quick: 30_000, full: 180_000 };
const DEFAULT_OUT = fileURLToPath(new URL('../../bench/results/', import.meta.url));

interface Selection {
  baselines: Baseline[];
  scenarios: Scenario[];
}

function select(names: string[]): Selection {
  const known = [...baselines.map((b) => b.name), ...scenarios.map((s) => s.name), 'baselines', 'scenarios', 'all'];
  const unknown = names.filter((n) => !known.includes(n));
  if (unknown.length > 0) {
    throw new UsageError(`unknown name(s): ${unknown.join(', ')}; known: ${known.join(', ')}`);
  }
  const all = names.length === 0 || names.includes('all');
  const chosenScenarios = scenarios.filter((s) => all || names.includes('scenarios') || names.includes(s.name));
  // A scenario brings the baseline it is held against: ratios only mean something within one run.
  const needed = new Set<string>(chosenScenarios.flatMap((s) => [...(s.against ? [s.against.baseline] : []), ...(s.alsoNeeds ?? [])]));
  const chosenBaselines = baselines.filter(
    (b) => all || names.includes('baselines') || names.includes(b.name) || needed.has(b.name),
  );
  return { baselines: chosenBaselines, scenarios: chosenScenarios };
}

class UsageError extends Error {}

/**
 * `--server-env KEY=VALUE`, repeatable: settings every vmstream server of the run gets, over the
 * bench's own (the harness strips the shell's VMSTREAM_*), e.g. VMSTREAM_SANDBOX=unconfined (sandbox
 * processes without bubblewrap) or VMSTREAM_WORKERS=4. Only VMSTREAM_* keys: nothing else reaches a server.
 */
function parseServerEnv(pairs: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    const key = at > 0 ? pair.slice(0, at) : '';
    if (!key.startsWith('VMSTREAM_')) throw new UsageError(`--server-env takes VMSTREAM_KEY=VALUE, got ${JSON.stringify(pair)}`);
    env[key] = pair.slice(at + 1);
  }
  return env;
}

/**
 * `--rounds N`: each scenario held against a baseline runs N times, between measurements of it
 * (A B A B … A), and the round with the median ratio is reported; every round's ratio is kept.
 */
function parseRounds(text: string): number {
  const rounds = Number(text);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 9) throw new UsageError(`--rounds takes a whole number from 1 to 9, got ${JSON.stringify(text)}`);
  return rounds;
}

/** Profiles written since the last call: each summarised beside it (`.txt`) and on stderr. */
function summarizeNewProfiles(dir: string): void {
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.cpuprofile')).sort()) {
    const path = join(dir, name);
    if (existsSync(`${path}.txt`)) continue;
    const text = formatProfile(name, summarizeProfile(path));
    writeFileSync(`${path}.txt`, `${text}\n`);
    log(`profile ${path}\n${text}`);
  }
}

function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      profile: { type: 'string' },
      'server-env': { type: 'string', multiple: true, default: [] },
      rounds: { type: 'string', default: '1' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`usage: node dist/bench/run.js [--quick] [--rounds N] [--out DIR] [--profile DIR] [--server-env VMSTREAM_KEY=VALUE]... [${[...baselines.map((b) => b.name), ...scenarios.map((s) => s.name)].join('|')}|baselines|scenarios|all ...]\n`);
    return 0;
  }
  const quick = values.quick;
  const serverEnv = parseServerEnv(values['server-env']);
  const rounds = parseRounds(values.rounds);
  if (values.profile) mkdirSync(values.profile, { recursive: true });
  const selection = select(positionals);
  const procs = new Procs();
  const tmpDir = mkdtempSync(join(tmpdir(), 'vmstream-bench-'));
  const cleanup = (): void => {
    procs.killAllNow();
    rmSync(tmpDir, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(signal === 'SIGINT' ? 130 : 143));

  const measured = new Map<BaselineName, BaselineResult>();
  const ctx: Ctx = {
    quick,
    baselines: measured,
    procs,
    tmpDir,
    loadgen: (job, processes, hooks) => runLoadgen(procs, job, processes, hooks),
    log,
    profileDir: values.profile ? resolve(values.profile) : null,
    serverEnv,
  };
  const stepMs = quick ? STEP_TIMEOUT_MS.quick : STEP_TIMEOUT_MS.full;
  const baselineMs = (baseline: Baseline): number => (baseline.stepTimeoutMs ? baseline.stepTimeoutMs[quick ? 'quick' : 'full'] : stepMs);
  let failures = 0;
  const fail = (name: string, record: { error?: string; skipped?: string }, error: Error | undefined): void => {
    if (error instanceof SkipError) {
      record.skipped = error.message;
      log(`${name} skipped: ${record.skipped}`);
      return;
    }
    failures++;
    record.error = error?.message ?? 'failed';
    log(`${name} failed: ${record.error}`);
  };

  const t0 = performance.now();
  const brackets = new Brackets(
    (baseline, figure) => {
      log(`baseline ${baseline.name} ${figure}…`);
      return runStep(procs, baseline.name, baselineMs(baseline), () => (baseline.measureFor ? baseline.measureFor(ctx, figure) : baseline.run(ctx)));
    },
    (record, error) => fail(record.id, record, error),
    t0,
  );

  try {
    const baselineRecords: BaselineRecord[] = [];
    const tabled = new Map<BaselineName, string>();
    for (const baseline of selection.baselines) {
      log(`baseline ${baseline.name}…`);
      const outcome = await runStep(procs, baseline.name, baselineMs(baseline), () => baseline.run(ctx));
      const id = brackets.tabled(baseline.name, outcome.value);
      tabled.set(baseline.name, id);
      const record: BaselineRecord = {
        id,
        name: baseline.name,
        setup: outcome.value?.setup ?? '',
        shown: outcome.value?.shown ?? [],
        figures: outcome.value?.figures ?? {},
        reference: baseline.reference,
        otherCpuPct: outcome.otherCpuPct,
      };
      if (outcome.value) measured.set(baseline.name, outcome.value);
      else fail(record.name, record, outcome.error);
      baselineRecords.push(record);
    }

    const scenarioRecords: ScenarioRecord[] = [];
    for (const scenario of selection.scenarios) {
      const against = scenario.against;
      const scenarioMs = scenario.stepTimeoutMs ? scenario.stepTimeoutMs[quick ? 'quick' : 'full'] : stepMs;
      const baseline = selection.baselines.find((b) => b.name === against?.baseline);
      const tableResult = against ? measured.get(against.baseline) : undefined;
      const table = against && tableResult ? { id: tabled.get(against.baseline)!, result: tableResult } : undefined;
      const { outcome, use: base, rounds: roundRecords } = await brackets.around(scenario, baseline, table, rounds, (before) => {
        log(`scenario ${scenario.name}…`);
        const scenarioCtx = { ...ctx, baselines: withBefore(measured, against?.baseline, before) };
        return runStep(procs, scenario.name, scenarioMs, () => scenario.run(scenarioCtx));
      });
      const result = outcome.value;
      const ratio = result && base ? ratioOf(result.figure.value, base.value) : null;
      const record: ScenarioRecord = {
        name: scenario.name,
        headline: scenario.headline ?? 'figure',
        setup: result?.setup,
        figure: result?.figure ?? null,
        figures: result?.figures ?? {},
        shown: result?.shown ?? [],
        baseline: base,
        ratio,
        tableRatio: result && base?.table ? ratioOf(result.figure.value, base.table.value) : null,
        rounds: roundRecords,
        goal: scenario.goal ?? null,
        met: goalMet(ratio, result?.figure ?? null, scenario.goal ?? null),
        otherCpuPct: outcome.otherCpuPct,
      };
      if (!result) fail(record.name, record, outcome.error);
      scenarioRecords.push(record);
      if (ctx.profileDir) summarizeNewProfiles(ctx.profileDir);
    }

    const cpuList = cpus();
    const run: RunRecord = {
      date: new Date().toISOString(),
      quick,
      node: process.version,
      cpus: { count: cpuList.length, model: cpuList[0]?.model.trim() ?? 'unknown' },
      frameBytes: encodedEventSize(),
      seconds: (performance.now() - t0) / 1000,
      rounds,
      baselines: baselineRecords,
      measurements: brackets.records,
      scenarios: scenarioRecords,
    };
    const out = values.out ?? DEFAULT_OUT;
    const base = quick ? 'quick' : 'latest';
    writeAtomic(out, `${base}.json`, JSON.stringify(run, null, 2) + '\n');
    writeAtomic(out, `${base}.svg`, renderSvg(run));
    process.stdout.write(
      [
        `vmstream bench${quick ? ' --quick (sizes too small to measure anything)' : ''}: node ${run.node}, ${run.cpus.count}× ${run.cpus.model}, event frame ${run.frameBytes} B`,
        '',
        baselineTable(baselineRecords),
        '',
        scenarioTable(scenarioRecords),
        '',
        'Baseline measurements next to the scenarios (each ratio divides by the mean of the two around its scenario):',
        measurementTable(brackets.records),
        '',
        ...noiseWarning(run),
        `${Math.round(run.seconds)} s; wrote ${join(out, `${base}.json`)} and ${base}.svg`,
        '',
      ].join('\n'),
    );
  } finally {
    await procs.stopAll();
  }
  return failures > 0 ? 1 : 0;
}

try {
  process.exitCode = await main();
} catch (error) {
  process.stderr.write(`${error instanceof UsageError ? error.message : (error as Error).stack}\n`);
  process.exitCode = error instanceof UsageError ? 2 : 1;
}
