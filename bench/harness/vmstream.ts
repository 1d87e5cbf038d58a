/**
 * Starting the real vmstream server for a scenario: its own data folder (or a given one, to restart
 * over it), a random token, limits raised out of the load's way, optionally under `--cpu-prof`.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Child } from './procs.js';
import { benchModule } from './procs.js';
import { SERVER_NODE_FLAGS } from '../../src/cli/node-flags.js';
import type { Ctx } from './types.js';

const READY_TIMEOUT_MS = 15_000;
/** SIGTERM to exit: a graceful shutdown, and the CPU profile written on the way out. */
const STOP_TIMEOUT_MS = 20_000;

/**
 * Limits that would otherwise refuse the load itself: the 2000 frames/s per socket token bucket,
 * 1000 sessions per tenant, 100 queued per session. Retention off, so no sweep runs mid-measurement;
 * no shutdown grace, so a stop never waits on an execution parked on a timer.
 */
const BENCH_ENV: Readonly<Record<string, string>> = {
  VMSTREAM_HOST: '127.0.0.1',
  VMSTREAM_PORT: '0',
  VMSTREAM_MAX_FRAMES_PER_SEC: '1000000000',
  VMSTREAM_MAX_SESSIONS: '1000000',
  VMSTREAM_MAX_QUEUED: '100000',
  VMSTREAM_RETENTION_MS: '0',
  VMSTREAM_SHUTDOWN_GRACE_MS: '0',
};

export interface VmstreamOptions {
  /** Names the child and its profile file. */
  name: string;
  /** Reuse a data folder (restart over it); a fresh one under the run's tmpDir otherwise. */
  dataDir?: string;
  /** More VMSTREAM_* settings, over the bench's. */
  env?: Record<string, string>;
  /** The token to accept (a cluster's nodes share one); a random one otherwise. */
  token?: string;
}

export interface Vmstream {
  child: Child;
  url: string;
  token: string;
  dataDir: string;
  /** Peak RSS of the server process (main thread and workers), in bytes; read before `stop`. */
  peakRssBytes(): number;
  /**
   * Starts a CPU meter of the server, in % of one core: `process` for all its threads (workers,
   * LevelDB's I/O pool, GC), `main` for the event loop's thread alone.
   */
  cpuMeter(): () => { process: number; main: number };
  stop(): Promise<void>;
}

let started = 0;

export async function startVmstream(ctx: Ctx, options: VmstreamOptions): Promise<Vmstream> {
  const n = ++started;
  const dataDir = options.dataDir ?? join(ctx.tmpDir, `${options.name}-${n}`);
  const workspace = join(ctx.tmpDir, 'workspace');
  mkdirSync(dataDir, { recursive: true });
  mkdirSync(workspace, { recursive: true });
  const token = options.token ?? randomBytes(18).toString('base64url');
  // The harness's own VMSTREAM_* (a developer's shell) must not leak into a measurement.
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('VMSTREAM_')) env[key] = value;
  Object.assign(env, BENCH_ENV, { VMSTREAM_DATA: dataDir, VMSTREAM_WORKSPACE: workspace, VMSTREAM_TOKEN: token }, ctx.serverEnv, options.env);
  // Node's flags as the `vmstream` bin and `npm start` launch it (src/cli/node-flags.ts).
  const execArgv = [
    ...SERVER_NODE_FLAGS,
    ...(ctx.profileDir ? ['--cpu-prof', '--cpu-prof-dir', ctx.profileDir, '--cpu-prof-name', `${options.name}-${n}.${process.pid}.cpuprofile`] : []),
  ];
  const child = ctx.procs.start(`vmstream-${options.name}`, benchModule('servers/vmstream.js'), {
    env,
    execArgv,
    captureStdout: true,
    // Its JSON log lines (one per socket and per execution at the default level) go to a file, as
    // a deployment's would; their cost is the server's, the speed of a pipe reader is not.
    stderrFile: join(ctx.tmpDir, `${options.name}-${n}.log`),
  });
  const [, url] = await child.waitForOutput(/vmstream listening on (ws:\/\/\S+)/, READY_TIMEOUT_MS);
  return {
    child,
    url: url!,
    token,
    dataDir,
    peakRssBytes: () => child.peakRssBytes(),
    cpuMeter: () => {
      const all = child.cpuMeter();
      const main = child.cpuMeter(true);
      return () => ({ process: all(), main: main() });
    },
    stop: () => child.stop(STOP_TIMEOUT_MS),
  };
}
