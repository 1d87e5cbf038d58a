/**
 * The start-up policy: which confinement the sandbox processes get, whether the server may run
 * with what it found, and the factory server.ts hands the engine.
 *
 * - `confined`: no confinement possible is an error.
 * - `auto` (the default): confined where possible; otherwise the server runs unconfined, saying so
 *   loudly, but only on a loopback bind.
 * - `unconfined`: sandbox processes without OS confinement, by the operator's explicit choice.
 * - `in-process`: no sandbox processes: the server's own worker threads host every tenant's
 *   contexts, and node:vm is the only wall (a fatal out-of-memory ends the server). For benchmarks
 *   (what the sandbox processes cost, against the same server without them) and debugging; config.ts
 *   refuses it on a non-loopback bind.
 */
import type { Config } from '../config.js';
import { isLoopback } from '../config.js';
import type { SandboxFactory, SandboxLimits } from '../sandbox/sandbox.js';
import { WorkerPool } from '../pool/worker-pool.js';
import { detectConfinement, type Confinement, type ConfinementKind } from './confinement.js';
import { ProcessSandbox, type ProcessLog } from './process-sandbox.js';

/** How long a sandbox process gets to answer a kill request before it is killed whole. */
const KILL_GRACE_MS = 2000;

/** What /readyz and the log say about the sandbox. */
export interface SandboxReport {
  confinement: ConfinementKind | 'in-process';
  confined: boolean;
  detail: string;
}

export class SandboxRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SandboxRefused';
  }
}

export interface PreparedSandbox {
  factory: SandboxFactory;
  report: SandboxReport;
  /** Resolves once the processes started with the sandbox (the shared token's tenant's) are up. */
  booted(): Promise<void>;
  /** Ends the tenant's process, if it has one (its token was revoked). */
  revoke(tenant: string): void;
}

/**
 * Chooses the confinement; throws SandboxRefused when the policy forbids running with it.
 * `sharedTenant` (the shared token's, if any) gets its process at once.
 */
export function prepareSandbox(config: Config, sharedTenant: string | null, log: ProcessLog): PreparedSandbox {
  if (process.getuid?.() === 0 && (config.sandboxUid === 0 || config.sandboxGid === 0)) {
    throw new SandboxRefused('VMSTREAM_SANDBOX_UID and VMSTREAM_SANDBOX_GID must not be root');
  }
  if (config.sandbox === 'in-process') return inProcess(config);
  const confinement = detectConfinement({ mode: config.sandbox, uid: config.sandboxUid, gid: config.sandboxGid, memoryMb: config.sandboxMemoryMb });
  refuseIfForbidden(config, confinement);
  const options = {
    command: confinement.command,
    workers: config.workers,
    heapMb: config.workerHeapMb,
    limits: sandboxLimits(config),
    maxProcesses: config.sandboxProcesses,
    idleMs: config.sandboxIdleMs,
    killGraceMs: KILL_GRACE_MS,
    // The shared token's tenant is the one a single-tenant server serves: its first run should not
    // wait for a process to boot (as worker threads used to be started with the server).
    prestart: sharedTenant === null ? [] : [sharedTenant],
    log,
  };
  let sandbox: ProcessSandbox | null = null;
  return {
    factory: (listener) => (sandbox = new ProcessSandbox(options, listener)),
    report: { confinement: confinement.kind, confined: confinement.kind !== 'none', detail: confinement.detail },
    booted: () => sandbox?.booted() ?? Promise.resolve(),
    revoke: (tenant) => sandbox?.revoke(tenant),
  };
}

function sandboxLimits(config: Config): SandboxLimits {
  return { maxText: config.maxTextChars, maxPreview: config.maxPreviewChars };
}

function inProcess(config: Config): PreparedSandbox {
  const options = { size: config.workers, heapMb: config.workerHeapMb, limits: sandboxLimits(config) };
  return {
    factory: (listener) => new WorkerPool(options, listener),
    report: { confinement: 'in-process', confined: false, detail: "VMSTREAM_SANDBOX=in-process: the server's own worker threads" },
    booted: () => Promise.resolve(),
    // The tenant's sockets are closed by the server; its contexts share the pool with everyone's.
    revoke: () => {},
  };
}

function refuseIfForbidden(config: Config, confinement: Confinement): void {
  if (confinement.kind !== 'none' || config.sandbox === 'unconfined') return;
  if (config.sandbox === 'confined') {
    throw new SandboxRefused(`VMSTREAM_SANDBOX=confined, but user code cannot be confined here: ${confinement.detail}`);
  }
  if (!isLoopback(config.host)) {
    throw new SandboxRefused(
      `user code cannot be confined here (${confinement.detail}), and VMSTREAM_HOST=${config.host} is not a loopback address: `
      + 'install bubblewrap, or set VMSTREAM_SANDBOX=unconfined to run untrusted code unconfined anyway',
    );
  }
}
