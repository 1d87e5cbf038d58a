/**
 * `node dist/bench/threads.js [--push] [--lines N] [--frames N] [--dist DIR]`: where the stream's
 * CPU goes, thread by thread (harness/thread-stats.ts). Starts the `stream` scenario's server, runs
 * its 20 000-line warm-up, then meters every thread of the server and its sandbox processes over one
 * gated `lines`-line stream (default 200 000) to the bench's load generator; `--push`: the push
 * baseline's bare server feeding `frames` pre-encoded frames (default 1 000 000) instead. Prints µs
 * of CPU and context switches per event by thread group, checked against the processes' own totals.
 * `--dist DIR`: start the server through another build's launcher (e.g. main's dist, to interleave
 * a change with it); the meter is this build's.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runLoadgen } from './harness/loadgen.js';
import { machineBusySeconds } from './harness/proc-stats.js';
import { Procs } from './harness/procs.js';
import { formatTreeUsage, treeThreadMeter, type TreeUsage } from './harness/thread-stats.js';
import type { Ctx } from './harness/types.js';
import type { SinkJob } from './loadgen/types.js';
import { warmFrames } from './scenarios/common.js';

const WARM_UP_LINES = 20_000;

const { values } = parseArgs({
  options: {
    push: { type: 'boolean', default: false },
    lines: { type: 'string', default: '200000' },
    frames: { type: 'string', default: '1000000' },
    dist: { type: 'string' },
  },
});
const dist = values.dist ? resolve(values.dist) : fileURLToPath(new URL('..', import.meta.url));

const procs = new Procs();
const tmpDir = mkdtempSync(join(tmpdir(), 'vmstream-threads-'));
const ctx: Ctx = {
  quick: false,
  baselines: new Map(),
  procs,
  tmpDir,
  loadgen: (job, processes, hooks) => runLoadgen(procs, job, processes, hooks),
  log: (line) => process.stdout.write(`${line}\n`),
  profileDir: null,
};

/** The server of the run, through `dist`'s own launcher: its flags and environment are that build's. */
async function startServer(): Promise<{ pid: number; job: (count: number, warm: boolean) => SinkJob }> {
  if (values.push) {
    const { startBareServer } = (await import(`${dist}/bench/baselines/bare-server.js`)) as typeof import('./baselines/bare-server.js');
    const { server, url } = await startBareServer(ctx);
    return {
      pid: server.pid,
      job: (count, warm) => ({ driver: 'sink', workload: 'push', url, connections: 1, count, warmupMs: 0, durationMs: 120_000, gated: true, warmClientFrames: warm ? warmFrames(ctx) : 0 }),
    };
  }
  const { startVmstream } = (await import(`${dist}/bench/harness/vmstream.js`)) as typeof import('./harness/vmstream.js');
  const { STREAM_ENV, loopCode } = (await import(`${dist}/bench/scenarios/stream.js`)) as typeof import('./scenarios/stream.js');
  const server = await startVmstream(ctx, { name: 'threads', env: STREAM_ENV });
  return {
    pid: server.child.pid,
    job: (count, warm) => ({
      driver: 'sink', workload: 'stream', params: { code: loopCode(count) }, url: server.url, token: server.token,
      connections: 1, count, warmupMs: 300, durationMs: 120_000, gated: true, warmClientFrames: warm ? warmFrames(ctx) : 0,
    }),
  };
}

try {
  const { pid, job } = await startServer();
  if (!values.push) await ctx.loadgen(job(WARM_UP_LINES, false));
  let meter: () => TreeUsage = () => treeThreadMeter(pid)();
  let busy0 = NaN;
  let t0 = NaN;
  const count = Number(values.push ? values.frames : values.lines);
  const r = await ctx.loadgen(job(count, true), 1, {
    onReady: () => {
      meter = treeThreadMeter(pid);
      busy0 = machineBusySeconds();
      t0 = performance.now();
    },
  });
  const usage = meter();
  const wall = (performance.now() - t0) / 1000;
  const clientCpu = (r.clientCpuPct / 100) * r.totalSeconds;
  const other = (machineBusySeconds() - busy0 - usage.processCpuSeconds - clientCpu) / wall;
  const perEvent = (seconds: number) => ((seconds / r.totalFrames) * 1e6).toFixed(3);
  ctx.log(
    `${values.push ? 'push' : 'stream'} (${dist}): ${r.totalFrames} events in ${r.totalSeconds.toFixed(3)} s = ${Math.round(r.totalFrames / r.totalSeconds)}/s; ` +
      `server ${perEvent(usage.processCpuSeconds)} µs per event, client ${r.clientCpuPct.toFixed(1)} % = ${perEvent(clientCpu)} µs per event; other load ${(other * 100).toFixed(0)} % of a core`,
  );
  ctx.log(formatTreeUsage(usage, r.totalFrames, 'event'));
} finally {
  await procs.stopAll();
  rmSync(tmpDir, { recursive: true, force: true });
}
