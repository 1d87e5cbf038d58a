/**
 * Unit bench of the two Sandbox implementations side by side, without the rest of the server: the
 * in-process WorkerPool (src/pool/) and the ProcessSandbox (src/sandbox-process/, one tenant's
 * process holding the same pool). A closed loop starts each session's next run when its last one
 * is done; nothing else runs (no store, no encoding, no sockets). It reports each run's round trip
 * (from `run` to its `done`) and the CPU each side spends per run, read from /proc: the "server"
 * is this process's main thread, the "sandbox" is this process's other threads (the workers, and
 * GC and libuv threads: in-process) or the whole sandbox process. CPU per run is what survives noise on a shared machine; the round trip is what
 * a user sees.
 *
 *   node dist/bench/units/sandbox-run.js [--pool worker,process] [--sessions 1,128] [--seconds 5]
 *     [--code '1 + 1'] [--confine unconfined|auto] [--profile DIR]
 *
 * `--sessions 128` is the "64 sessions × 2 in flight" load: a session runs one execution at a time
 * (the engine queues the rest), so in-flight runs are sessions here. The sandbox process is
 * unconfined by default: confinement costs nothing per run (namespaces, rlimits), only at start.
 * With --profile, the sandbox process's main thread is profiled (bench/harness/cpuprofile.ts reads it).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { DEFAULTS } from '../../src/config.js';
import { WorkerPool } from '../../src/pool/worker-pool.js';
import type { Sandbox, SandboxListener, SandboxOutput } from '../../src/sandbox/sandbox.js';
import { detectConfinement, HOST_ENTRY, type LaunchCommand } from '../../src/sandbox-process/confinement.js';
import { ProcessSandbox } from '../../src/sandbox-process/process-sandbox.js';
import { formatProfile, summarizeProfile } from '../harness/cpuprofile.js';

const { values } = parseArgs({
  options: {
    pool: { type: 'string', default: 'worker,process' },
    sessions: { type: 'string', default: '1,128' },
    seconds: { type: 'string', default: '5' },
    code: { type: 'string', default: '1 + 1' },
    confine: { type: 'string', default: 'unconfined' },
    profile: { type: 'string' },
  },
});
const seconds = Number(values.seconds);
const limits = { maxText: DEFAULTS.maxTextChars, maxPreview: DEFAULTS.maxPreviewChars };
const workers = DEFAULTS.workers;
const TENANT = 'bench';
/** Clock ticks per second of /proc's utime and stime (USER_HZ: 100 on every Linux Node runs on). */
const TICK_US = 10_000;

type PoolKind = 'worker' | 'process';

/** How the sandbox process starts: as the server would, or (--profile DIR) plain and under --cpu-prof. */
function hostCommand(sessions: number): LaunchCommand {
  if (values.profile) {
    const name = `sandbox-process-${sessions}.cpuprofile`;
    return { file: process.execPath, args: ['--cpu-prof', '--cpu-prof-dir', path.resolve(values.profile), '--cpu-prof-name', name, HOST_ENTRY] };
  }
  return detectConfinement({ mode: values.confine === 'auto' ? 'auto' : 'unconfined', uid: 65534, gid: 65534, memoryMb: 0 }).command;
}

/** utime + stime of a /proc stat line, in µs. */
function statCpuUs(path: string): number {
  const stat = readFileSync(path, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_US;
}

const mainThreadCpu = () => statCpuUs(`/proc/self/task/${process.pid}/stat`);
const processCpu = (pid: number) => statCpuUs(`/proc/${pid}/stat`);

/** CPU of `pid` and every process under it: bwrap starts the sandbox's Node as its child. */
function treeCpu(pid: number): number {
  let total = processCpu(pid);
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const children = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
    for (const child of children ? children.split(' ') : []) total += treeCpu(Number(child));
  }
  return total;
}

interface Measured {
  runs: number;
  rate: number;
  p50: number;
  p99: number;
  serverUs: number;
  sandboxUs: number;
}

async function measure(kind: PoolKind, sessions: number): Promise<Measured> {
  const started = new Map<string, number>();
  const sessionOf = new Map<string, string>();
  let next = 0;
  let recording = false;
  let times: number[] = [];
  let running = true;
  let hostPid = 0;
  let lost = '';

  const listener: SandboxListener = {
    onOutput(output: SandboxOutput) {
      if (output.kind !== 'done') return;
      const sid = sessionOf.get(output.executionId)!;
      if (recording) times.push(performance.now() - started.get(output.executionId)!);
      started.delete(output.executionId);
      sessionOf.delete(output.executionId);
      if (running) run(sid);
    },
    acceptingOutput: () => true,
    onRestored() {},
    onLost(_sids, reason) {
      lost = reason;
    },
  };
  let sandbox: Sandbox;
  if (kind === 'worker') {
    sandbox = new WorkerPool({ size: workers, heapMb: DEFAULTS.workerHeapMb, limits }, listener);
  } else {
    const processes = new ProcessSandbox({
      command: hostCommand(sessions), workers, heapMb: DEFAULTS.workerHeapMb, limits, maxProcesses: 1, idleMs: 0, killGraceMs: 2000, prestart: [TENANT],
      log: { started: (_tenant, pid) => (hostPid = pid ?? 0), exited() {} },
    }, listener);
    await processes.booted();
    sandbox = processes;
  }
  const run = (sid: string) => {
    const xid = `x${++next}`;
    sessionOf.set(xid, sid);
    started.set(xid, performance.now());
    sandbox.run({ sessionId: sid, executionId: xid, kind: 'repl', code: values.code!, filename: `REPL${next}` });
  };
  for (let s = 0; s < sessions; s++) sandbox.open({ sessionId: `s${s}`, tenant: TENANT });
  // Workers boot; a session's first run compiles the bootstrap: a second of warm-up covers both.
  for (let s = 0; s < sessions; s++) run(`s${s}`);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const sandboxCpu = () => (kind === 'worker' ? processCpu(process.pid) - mainThreadCpu() : treeCpu(hostPid));
  times = [];
  recording = true;
  const main0 = mainThreadCpu();
  const side0 = sandboxCpu();
  const t0 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  recording = false;
  const elapsed = (performance.now() - t0) / 1000;
  const serverCpu = mainThreadCpu() - main0;
  const sideCpu = sandboxCpu() - side0;
  const runs = times.length;
  running = false;
  // Let the runs in flight end before shutting down, so no host dies under a run.
  while (started.size > 0) await new Promise((resolve) => setTimeout(resolve, 10));
  await sandbox.shutdown();
  if (lost) throw new Error(`a host was lost mid-measurement (${lost})`);
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  return { runs, rate: runs / elapsed, p50: at(0.5), p99: at(0.99), serverUs: serverCpu / runs, sandboxUs: sideCpu / runs };
}

const kinds = values.pool!.split(',') as PoolKind[];
const loads = values.sessions!.split(',').map(Number);
process.stdout.write(`sandbox-run: ${JSON.stringify(values.code)}, ${workers} worker threads, ${seconds} s each, sandbox process ${values.confine}\n`);
process.stdout.write('pool      sessions   runs/s   p50 ms   p99 ms   server µs/run   sandbox µs/run\n');
for (const sessions of loads) {
  for (const kind of kinds) {
    const m = await measure(kind, sessions);
    process.stdout.write(
      `${kind.padEnd(8)} ${String(sessions).padStart(9)} ${Math.round(m.rate).toString().padStart(8)} ${m.p50.toFixed(3).padStart(8)} ${m.p99.toFixed(3).padStart(8)}`
      + ` ${m.serverUs.toFixed(1).padStart(15)} ${m.sandboxUs.toFixed(1).padStart(16)}\n`,
    );
  }
}
if (values.profile) {
  for (const sessions of loads) {
    const file = path.join(path.resolve(values.profile), `sandbox-process-${sessions}.cpuprofile`);
    process.stdout.write(`sandbox process, ${sessions} sessions:\n${formatProfile(file, summarizeProfile(file))}\n`);
  }
}
