/**
 * Starts the real server (dist/src/cli/main.js) as a child process on a free port, with a real
 * LevelDB in a temporary folder, and stops or kills it. Tests talk to it over real sockets only.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SERVER_NODE_FLAGS } from '../../src/cli/node-flags.js';
import { startClusterServer } from './cluster.js';
import { TestNats } from './nats.js';

export { freePort } from '../../bench/harness/ports.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const MAIN = path.join(ROOT, 'dist/src/cli/main.js');
export const TOKEN = 'test-token-0123456789';

export interface ServerOptions {
  /** Reuse a data folder (to restart over the same LevelDB). */
  dataDir?: string;
  workspaceDir?: string;
  env?: Record<string, string>;
  /** How to start it, when not as `node dist/src/cli/main.js` (e.g. `npx vmstream` in another project). */
  command?: { file: string; args: string[]; cwd: string };
}

export interface TestServer {
  url: string;
  port: number;
  token: string;
  dataDir: string;
  workspaceDir: string;
  process: ChildProcess;
  /** On a cluster (VMSTREAM_TEST_TARGET=cluster), its nodes: for what each node answers of itself alone (/metrics). */
  nodes?: TestServer[];
  stderr(): string;
  /** Sends a signal and waits for the exit; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** kill -9, and waits for the exit. */
  kill(): Promise<void>;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `vmstream-${prefix}-`));
}

/**
 * A server for a test: one process, or with VMSTREAM_TEST_TARGET=cluster a 3-node cluster behind a
 * round-robin front (cluster.ts), which the test sees as one server.
 */
export function startServer(options: ServerOptions = {}): Promise<TestServer> {
  if (process.env.VMSTREAM_TEST_TARGET === 'cluster' && !options.command) return startClusterServer(options);
  return startProcess(options);
}

/** One server process. */
export async function startProcess(options: ServerOptions = {}): Promise<TestServer> {
  const dataDir = options.dataDir ?? tempDir('data');
  const workspaceDir = options.workspaceDir ?? path.join(dataDir, '..', `${path.basename(dataDir)}-ws`);
  mkdirSync(workspaceDir, { recursive: true });
  // Production's flags (the bin's shebang, npm start): the heap the tests exercise is the one that ships.
  const command = options.command ?? { file: process.execPath, args: [...SERVER_NODE_FLAGS, MAIN], cwd: ROOT };
  const child = spawn(command.file, command.args, {
    cwd: command.cwd,
    // A wrapper (npx) may not pass signals on: it runs in a process group of its own, signalled whole.
    detached: options.command !== undefined,
    env: {
      PATH: process.env.PATH ?? '',
      VMSTREAM_PORT: '0',
      VMSTREAM_DATA: dataDir,
      VMSTREAM_WORKSPACE: workspaceDir,
      VMSTREAM_TOKEN: TOKEN,
      VMSTREAM_WORKERS: '2',
      ...(await storeEnv(dataDir)),
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    let stdout = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const match = /listening on (wss?:\/\/\S+)/.exec(stdout);
      if (match) resolve(match[1]!);
    });
    void exited.then((code) => reject(new Error(`server exited with ${code} before listening:\n${stderr}`)));
  });
  const port = Number(new URL(url).port);
  const signalChild = (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    if (options.command) process.kill(-child.pid!, signal);
    else child.kill(signal);
  };
  return {
    url,
    port,
    token: TOKEN,
    dataDir,
    workspaceDir,
    process: child,
    stderr: () => stderr,
    async stop(signal = 'SIGTERM') {
      signalChild(signal);
      return exited;
    },
    async kill() {
      signalChild('SIGKILL');
      await exited;
    },
  };
}

/**
 * A file of `tenant`'s workspace on this server (run-file reads `VMSTREAM_WORKSPACE/<tenant>/`;
 * the shared token's tenant is `default`), its folder made.
 */
export function workspaceFile(server: Pick<TestServer, 'workspaceDir'>, relative: string, tenant = 'default'): string {
  const file = path.join(server.workspaceDir, tenant, relative);
  mkdirSync(path.dirname(file), { recursive: true });
  return file;
}

/**
 * VMSTREAM_TEST_STORE=jetstream runs every server a test file starts on the JetStream store: one
 * nats-server for the file (killed when the test process exits), and a prefix per data folder, so
 * that a server restarted over the same folder finds its store again.
 */
async function storeEnv(dataDir: string): Promise<Record<string, string>> {
  if (process.env.VMSTREAM_TEST_STORE !== 'jetstream') return {};
  const nats = await fileNats();
  return { VMSTREAM_STORE: 'jetstream', VMSTREAM_NATS_URL: nats.url, VMSTREAM_JS_PREFIX: path.basename(dataDir).replace(/[^a-zA-Z0-9_-]/g, '_') };
}

let startedNats: Promise<TestNats> | undefined;

/** The nats-server of this test file (started on first use, killed when the test process exits). */
export function fileNats(): Promise<TestNats> {
  return (startedNats ??= startFileNats());
}

async function startFileNats(): Promise<TestNats> {
  const nats = await TestNats.create();
  // 'exit' handlers run synchronously: a signal by pid and a synchronous removal are all there is.
  process.once('exit', () => {
    try {
      if (nats.pid !== undefined) process.kill(nats.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
    removeDir(nats.storeDir);
  });
  return nats;
}

/** Adds a tenant to a tokens file with scripts/add-tenant; returns its token. */
export function addTenant(file: string, name: string): string {
  return execFileSync(process.execPath, [path.join(ROOT, 'dist/scripts/add-tenant.js'), name, file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
