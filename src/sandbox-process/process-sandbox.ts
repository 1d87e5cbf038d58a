/**
 * The confined Sandbox: each tenant's sessions live in a sandbox process of that tenant's own
 * (host-main.ts, started by host-process.ts as confinement.ts says), never beside another tenant's.
 * A process starts when its tenant opens a session (while there is room) or first needs a context
 * (a run, a rebuild), and opens all of the tenant's sessions; it is reclaimed after `idleMs`
 * without work. At `maxProcesses`, a tenant that needs one takes the least recently used idle
 * process; when none is idle, its requests wait until one is (a waiting run still counts against
 * its time limit, and an abort ends it at once).
 *
 * A process that dies ends the runs it held (`onLost`, with `out_of_memory` or `sandbox_exit`);
 * the tenant's sessions are rebuilt by the engine on their next run, in a new process. Everything
 * a process says is checked against what it was given: output only for its running executions,
 * answers only for its sessions and its requests. Anything else ends it.
 */
import type {
  AbortStatus, Completion, ReplayInput, RunRequest, Sandbox, SandboxLimits, SandboxListener, SandboxOutput, SessionPlacement,
} from '../sandbox/sandbox.js';
import type { LaunchCommand } from './confinement.js';
import { HostProcess } from './host-process.js';
import { HostSlots } from './host-slots.js';
import type { FromHost, HostBoot } from './messages.js';
import type { ToWorker } from '../pool/messages.js';

export interface ProcessSandboxOptions {
  command: LaunchCommand;
  /** Worker threads per process, and each one's heap (MiB). */
  workers: number;
  heapMb: number;
  limits: SandboxLimits;
  maxProcesses: number;
  /** A process with no work for this long is ended; 0 keeps it. */
  idleMs: number;
  /** How long a process gets to answer `kill` (by ending a worker) before the whole process is killed. */
  killGraceMs: number;
  /** Tenants whose process starts at once, before any session (the shared token's, when there is one). */
  prestart: string[];
  log?: ProcessLog;
}

/** For the server's log: processes starting and ending. */
export interface ProcessLog {
  started(tenant: string, pid: number | undefined): void;
  exited(tenant: string, pid: number | undefined, reason: string, detail: string): void;
}

/** A completion always answers: empty when its process is stuck or gone for this long. */
const COMPLETE_TIMEOUT_MS = 1000;

interface Tenant {
  name: string;
  sessions: Set<string>;
  host: Host | null;
  /** Requests held while the tenant waits for a process (at the cap, none idle); null when not waiting. */
  backlog: ContextRequest[] | null;
}

/** The requests that need a live context, and so a process. */
type ContextRequest = Extract<ToWorker, { t: 'run' | 'restore' }>;

interface Host {
  process: HostProcess;
  /** Which worker slot holds each of the tenant's sessions. */
  slots: HostSlots;
  tenant: Tenant;
  /** Runs sent and not yet done: execution id → session id. */
  running: Map<string, string>;
  restoring: Set<string>;
  completions: Map<number, { resolve(completion: Completion): void; timer: NodeJS.Timeout; cursor: number }>;
  /** Sessions asked to be killed, and the timer that kills the process if it does not. */
  kills: Map<string, NodeJS.Timeout>;
  lastUsed: number;
}

export class ProcessSandbox implements Sandbox {
  readonly #options: ProcessSandboxOptions;
  readonly #listener: SandboxListener;
  readonly #tenants = new Map<string, Tenant>();
  readonly #sessions = new Map<string, Tenant>();
  readonly #hosts = new Set<Host>();
  /** Tenants waiting for a process, first come first served. */
  readonly #waiting: Tenant[] = [];
  readonly #sweep: NodeJS.Timeout | null;
  #nextRequest = 0;
  #restarts = 0;
  #closing = false;
  /** Waiting for every process started so far to be up (`booted`). */
  #bootWaiters: Array<() => void> = [];

  constructor(options: ProcessSandboxOptions, listener: SandboxListener) {
    this.#options = options;
    this.#listener = listener;
    this.#sweep = options.idleMs > 0 ? setInterval(() => this.#reclaimIdle(), Math.min(options.idleMs, 10_000)).unref() : null;
    for (const name of options.prestart.slice(0, options.maxProcesses)) this.#start(this.#tenant(name));
  }

  get online(): number {
    let online = 0;
    for (const host of this.#hosts) if (host.process.online) online++;
    return online;
  }

  get size(): number {
    return this.#hosts.size + this.#waiting.length;
  }

  get restarts(): number {
    return this.#restarts;
  }

  open({ sessionId, tenant: name }: SessionPlacement): void {
    const tenant = this.#tenant(name);
    tenant.sessions.add(sessionId);
    this.#sessions.set(sessionId, tenant);
    if (tenant.host) {
      tenant.host.slots.open(sessionId);
    } else if (!tenant.backlog && this.#hosts.size < this.#options.maxProcesses) {
      // Started now, while there is room, so the session's first run does not wait for a process to
      // boot (a few hundred ms); it opens all the tenant's sessions, this one included. At the cap,
      // nothing is taken from another tenant before a run needs it.
      this.#start(tenant);
    }
  }

  close(sessionId: string): void {
    const tenant = this.#sessions.get(sessionId);
    if (!tenant) return;
    this.#sessions.delete(sessionId);
    tenant.sessions.delete(sessionId);
    tenant.host?.slots.close(sessionId);
    if (tenant.sessions.size === 0 && !tenant.host && !tenant.backlog) this.#tenants.delete(tenant.name);
  }

  run({ sessionId, executionId, kind, code, filename }: RunRequest): void {
    this.#request(sessionId, { t: 'run', sid: sessionId, xid: executionId, kind, code, filename });
  }

  abort(sessionId: string, executionId: string, status: AbortStatus): void {
    const tenant = this.#sessions.get(sessionId);
    // Closed meanwhile: its context and runs are gone already.
    if (!tenant) return;
    const held = tenant.backlog?.findIndex((message) => message.t === 'run' && message.xid === executionId) ?? -1;
    if (held >= 0) {
      // Never sent: it ends here, as its process would have ended it.
      tenant.backlog!.splice(held, 1);
      setImmediate(() => this.#listener.onOutput({ kind: 'done', executionId, ts: Date.now(), status }));
      return;
    }
    tenant.host?.slots.send(sessionId, { t: 'abort', xid: executionId, status });
  }

  restore(sessionId: string, inputs: ReplayInput[]): void {
    this.#request(sessionId, { t: 'restore', sid: sessionId, inputs });
  }

  complete(sessionId: string, code: string, cursor: number): Promise<Completion> {
    const host = this.#sessions.get(sessionId)?.host;
    if (!host || this.#closing) return Promise.resolve(emptyCompletion(cursor));
    const id = ++this.#nextRequest;
    return new Promise((resolve) => {
      const timer = setTimeout(() => answer(host, id, null), COMPLETE_TIMEOUT_MS);
      host.completions.set(id, { resolve, timer, cursor });
      host.slots.send(sessionId, { t: 'complete', id, sid: sessionId, code, cursor });
    });
  }

  /**
   * Asks the process to end the worker thread holding `sessionId`; a process that does not answer
   * within `killGraceMs` (its own main thread is stuck: the vm layer was escaped) is killed whole.
   */
  kill(sessionId: string, reason: string): void {
    const host = this.#sessions.get(sessionId)?.host;
    if (!host) {
      // No process holds it: nothing to end, and the engine waits for this answer.
      setImmediate(() => this.#listener.onLost([sessionId], reason, true));
      return;
    }
    if (host.kills.has(sessionId)) return;
    host.kills.set(sessionId, setTimeout(() => host.process.kill(reason), this.#options.killGraceMs));
    host.slots.kill(sessionId, reason);
  }

  /**
   * The tenant's token was revoked: its process ends now, not when reclaimed, and the runs it held
   * end `crashed` with reason `sandbox_exit`, as for any process that died under them.
   */
  revoke(tenant: string): void {
    this.#tenants.get(tenant)?.host?.process.kill('sandbox_exit', false);
  }

  /** Resolves once every process started so far has booted or ended (the server listens after it). */
  booted(): Promise<void> {
    return new Promise((resolve) => {
      this.#bootWaiters.push(resolve);
      this.#checkBooted();
    });
  }

  #checkBooted(): void {
    if (this.#bootWaiters.length === 0 || this.online < this.#hosts.size) return;
    for (const resolve of this.#bootWaiters.splice(0)) resolve();
  }

  resumeOutput(): void {
    for (const host of this.#hosts) host.process.resume();
  }

  async shutdown(): Promise<void> {
    this.#closing = true;
    if (this.#sweep) clearInterval(this.#sweep);
    await Promise.all([...this.#hosts].map((host) => this.#detach(host).process.end()));
  }

  #tenant(name: string): Tenant {
    let tenant = this.#tenants.get(name);
    if (!tenant) this.#tenants.set(name, (tenant = { name, sessions: new Set(), host: null, backlog: null }));
    return tenant;
  }

  #tenantOf(sessionId: string): Tenant {
    const tenant = this.#sessions.get(sessionId);
    if (!tenant) throw new Error(`session ${sessionId} is not open in the sandbox`);
    return tenant;
  }

  /** Sends a request that needs a live context, starting the tenant's process if it has none. */
  #request(sessionId: string, message: ContextRequest): void {
    const tenant = this.#tenantOf(sessionId);
    const host = tenant.host ?? this.#start(tenant);
    if (!host) {
      tenant.backlog!.push(message);
      return;
    }
    if (message.t === 'run') host.running.set(message.xid, sessionId);
    else host.restoring.add(sessionId);
    host.lastUsed = Date.now();
    host.slots.send(sessionId, message);
  }

  /** A process for `tenant`, or null when the cap is reached and none is idle (the tenant then waits). */
  #start(tenant: Tenant): Host | null {
    if (tenant.backlog) return null;
    if (this.#hosts.size >= this.#options.maxProcesses) {
      const victim = this.#leastRecentlyUsedIdle();
      if (!victim) {
        tenant.backlog = [];
        this.#waiting.push(tenant);
        return null;
      }
      this.#reclaim(victim);
    }
    const { command, workers, heapMb, limits } = this.#options;
    const boot: HostBoot = { t: 'boot', workers, heapMb, limits };
    const child = new HostProcess(command, tenant.name, boot, {
      onMessage: (_process, message) => this.#onMessage(host, message),
      onOutput: (_process, output) => this.#onOutput(host, output),
      acceptingOutput: () => this.#listener.acceptingOutput(tenant.name),
      onExit: (_process, reason, killed, detail) => this.#onExit(host, reason, killed, detail),
    });
    const host: Host = {
      process: child, slots: new HostSlots(child, workers),
      tenant, running: new Map(), restoring: new Set(), completions: new Map(), kills: new Map(), lastUsed: Date.now(),
    };
    this.#hosts.add(host);
    tenant.host = host;
    for (const sid of tenant.sessions) host.slots.open(sid);
    this.#options.log?.started(tenant.name, host.process.pid);
    return host;
  }

  #leastRecentlyUsedIdle(): Host | null {
    let best: Host | null = null;
    for (const host of this.#hosts) if (isIdle(host) && (!best || host.lastUsed < best.lastUsed)) best = host;
    return best;
  }

  #reclaimIdle(): void {
    const before = Date.now() - this.#options.idleMs;
    for (const host of [...this.#hosts]) if (isIdle(host) && host.lastUsed <= before) this.#reclaim(host);
  }

  /** Ends an idle process; its tenant's sessions are rebuilt when next used. */
  #reclaim(host: Host): void {
    this.#detach(host);
    void host.process.end();
    this.#options.log?.exited(host.tenant.name, host.process.pid, 'reclaimed', 'idle');
    this.#listener.onLost([...host.tenant.sessions], 'reclaimed', false);
  }

  /** Forgets a process: nothing it says from now on is heard. */
  #detach(host: Host): Host {
    this.#hosts.delete(host);
    if (host.tenant.host === host) host.tenant.host = null;
    for (const timer of host.kills.values()) clearTimeout(timer);
    for (const id of [...host.completions.keys()]) answer(host, id, null);
    return host;
  }

  #onMessage(host: Host, message: FromHost): void {
    if (message.t === 'out') return this.#onOutput(host, message.o);
    if (!this.#hosts.has(host)) return;
    host.lastUsed = Date.now();
    switch (message.t) {
      case 'ready':
        host.process.online = true;
        this.#checkBooted();
        break;
      case 'restored':
        if (!host.restoring.delete(message.sid)) return host.process.violated('a rebuild it was not asked for');
        this.#listener.onRestored(message.sid, message.result);
        break;
      case 'restoring':
        if (!host.restoring.has(message.sid)) return host.process.violated('progress of a rebuild it was not asked for');
        this.#listener.onRestoreProgress?.(message.sid, message.replayed, message.inputs);
        break;
      case 'lost': {
        const sids = host.slots.lost(message.slot, message.gen);
        if (!sids) return host.process.violated('the loss of a worker it does not have');
        this.#forget(host, sids);
        this.#restarts++;
        this.#listener.onLost(sids, message.reason, message.killed);
        break;
      }
      case 'completion':
        answer(host, message.id, message.completion);
        break;
    }
    this.#handOver(host);
  }

  /** Output of a run: heard only from the process that runs that execution. */
  #onOutput(host: Host, output: SandboxOutput): void {
    if (!this.#hosts.has(host)) return;
    if (!host.running.has(output.executionId)) return host.process.violated(`output for an execution it is not running`);
    // A running execution's lines need no stamp (once per printed line): its process is not idle
    // before its `done`, which is stamped.
    if (output.kind === 'done') {
      host.lastUsed = Date.now();
      host.running.delete(output.executionId);
    }
    this.#listener.onOutput(output);
    this.#handOver(host);
  }

  /** The runs, rebuilds and kills of `sids` are over (their worker is gone). */
  #forget(host: Host, sids: Iterable<string>): void {
    const gone = new Set(sids);
    for (const [xid, sid] of host.running) if (gone.has(sid)) host.running.delete(xid);
    for (const sid of gone) {
      host.restoring.delete(sid);
      clearTimeout(host.kills.get(sid));
      host.kills.delete(sid);
    }
  }

  #onExit(host: Host, reason: string, killed: boolean, detail: string): void {
    if (!this.#hosts.has(host) || this.#closing) return;
    this.#detach(host);
    this.#restarts++;
    this.#checkBooted();
    this.#options.log?.exited(host.tenant.name, host.process.pid, reason, detail);
    this.#listener.onLost([...host.tenant.sessions], reason, killed);
    this.#startWaiting();
  }

  /** A process that just went idle goes to the first waiting tenant. */
  #handOver(host: Host): void {
    if (this.#waiting.length === 0 || !isIdle(host) || !this.#hosts.has(host)) return;
    this.#reclaim(host);
    this.#startWaiting();
  }

  #startWaiting(): void {
    while (this.#waiting.length > 0 && this.#hosts.size < this.#options.maxProcesses) {
      const tenant = this.#waiting.shift()!;
      const backlog = tenant.backlog!;
      tenant.backlog = null;
      for (const message of backlog) {
        // A session closed while it waited has nothing left to run.
        if (this.#sessions.has(message.sid)) this.#request(message.sid, message);
      }
    }
  }
}

function isIdle(host: Host): boolean {
  return host.running.size === 0 && host.restoring.size === 0 && host.completions.size === 0 && host.kills.size === 0;
}

/** Settles a pending completion once: with the process's answer, or empty (null). */
function answer(host: Host, id: number, completion: Completion | null): void {
  const pending = host.completions.get(id);
  if (!pending) return;
  host.completions.delete(id);
  clearTimeout(pending.timer);
  pending.resolve(completion ?? emptyCompletion(pending.cursor));
}

function emptyCompletion(cursor: number): Completion {
  return { matches: [], start: cursor, end: cursor };
}
