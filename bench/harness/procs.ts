/**
 * Every process a run starts goes through one Procs, so the harness can kill all of them at the end,
 * on a failed scenario and on SIGINT alike: a leaked server would skew every later measurement on a
 * 2-core machine, and a leaked port would fail the next run.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import type { ChildMessage } from './child.js';
import { cpuSeconds, peakRssBytes, treeCpuSeconds } from './proc-stats.js';

const STOP_GRACE_MS = 2_000;

export interface StartOptions {
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Extra node flags, e.g. `--expose-gc`. */
  execArgv?: string[];
  /** Pipe stdout so `waitForOutput` can read it (otherwise it is inherited). */
  captureStdout?: boolean;
  /**
   * Write stderr to this file instead of printing it amid the tables; its tail goes into error
   * messages (`stderrTail`). A file, not a pipe: a server that logs synchronously (pino) blocks
   * when a pipe it writes to is full, which would measure the harness's reading speed.
   */
  stderrFile?: string;
}

/** A module under dist/bench, named relative to it: `servers/bare-uws.js`. */
export function benchModule(relative: string): string {
  return fileURLToPath(new URL(`../${relative}`, import.meta.url));
}

export class Child {
  readonly pid: number;
  #exited: Promise<number | null>;
  #stdout = '';
  readonly #stderrFile: string | null;

  constructor(readonly name: string, readonly proc: ChildProcess, stderrFile: string | null = null) {
    this.#stderrFile = stderrFile;
    this.pid = proc.pid ?? -1;
    this.#exited = new Promise((resolve) => {
      proc.once('exit', (code) => resolve(code));
      // A spawned program that could not start emits 'error' and no 'exit'.
      proc.once('error', () => resolve(null));
    });
    proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      // Only the tail matters for readiness lines; bound what a chatty server can make us hold.
      this.#stdout = (this.#stdout + chunk).slice(-65_536);
    });
  }

  /** The last few KB the child wrote to stderr, when started with `stderrFile`. */
  stderrTail(bytes = 8_192): string {
    if (this.#stderrFile === null) return '';
    try {
      const text = readFileSync(this.#stderrFile, 'utf8');
      return text.slice(-bytes);
    } catch {
      return '';
    }
  }

  get exited(): Promise<number | null> {
    return this.#exited;
  }

  send(message: ChildMessage): void {
    this.proc.send(message);
  }

  /** The next IPC message of `type`; rejects if the child exits first or `timeoutMs` passes. */
  waitForMessage<T extends ChildMessage>(type: string, timeoutMs: number): Promise<T> {
    return this.#wait(timeoutMs, `message '${type}'`, (done) => {
      const onMessage = (message: ChildMessage): void => {
        if (message?.type === 'error') done(new Error(`${this.name}: ${String(message.message)}`));
        else if (message?.type === type) done(null, message as T);
      };
      this.proc.on('message', onMessage);
      return () => this.proc.off('message', onMessage);
    });
  }

  /** The first match of `pattern` in the child's stdout (needs `captureStdout`). */
  waitForOutput(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    return this.#wait(timeoutMs, `output ${pattern}`, (done) => {
      const check = (): void => {
        const match = pattern.exec(this.#stdout);
        if (match) done(null, match);
      };
      this.proc.stdout?.on('data', check);
      check();
      return () => this.proc.stdout?.off('data', check);
    });
  }

  /** Peak RSS so far, in bytes; read it before `stop()`, since /proc forgets a reaped process. */
  peakRssBytes(): number {
    return peakRssBytes(this.pid);
  }

  /**
   * Starts a CPU meter: the returned function gives the child's busy share since then, in % of one
   * core; with `mainThreadOnly`, that of its main thread alone (the event loop: at ~100 % it is the
   * bottleneck, whatever the process total says).
   */
  cpuMeter(mainThreadOnly = false): () => number {
    // The process total includes what runs below it (a server's sandbox processes run the code).
    const read = mainThreadOnly ? () => cpuSeconds(this.pid, false, this.pid) : () => treeCpuSeconds(this.pid);
    const cpu0 = read();
    const t0 = performance.now();
    return () => ((read() - cpu0) / ((performance.now() - t0) / 1000)) * 100;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the child has exited. */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.#exited;
    clearTimeout(timer);
  }

  #wait<T>(timeoutMs: number, what: string, listen: (done: (error: Error | null, value?: T) => void) => () => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let unlisten: (() => void) | null = null;
      let settled = false;
      const finish = (error: Error | null, value?: T): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        unlisten?.();
        this.proc.off('exit', onExit);
        if (error) reject(error);
        else resolve(value as T);
      };
      const onExit = (code: number | null, signal: string | null): void =>
        finish(new Error(`${this.name} exited (${signal ?? code}) while waiting for ${what}${this.#stderrFile ? `; its stderr ends: ${this.stderrTail(600)}` : ''}`));
      const timer = setTimeout(() => finish(new Error(`${this.name}: no ${what} within ${timeoutMs} ms`)), timeoutMs);
      this.proc.once('exit', onExit);
      unlisten = listen(finish);
      // `listen` may have matched at once, before `unlisten` existed for `finish` to call.
      if (settled) unlisten();
    });
  }
}

export class Procs {
  #children = new Set<Child>();

  /** Forks a node module (absolute path) with an IPC channel. */
  start(name: string, modulePath: string, options: StartOptions = {}): Child {
    const stderrFd = options.stderrFile ? openSync(options.stderrFile, 'a') : null;
    let proc: ChildProcess;
    try {
      proc = fork(modulePath, options.args ?? [], {
        env: options.env ?? process.env,
        execArgv: options.execArgv ?? [],
        stdio: ['ignore', options.captureStdout ? 'pipe' : 'inherit', stderrFd ?? 'inherit', 'ipc'],
      });
    } finally {
      // The child has its own copy of the descriptor now.
      if (stderrFd !== null) closeSync(stderrFd);
    }
    return this.#track(new Child(name, proc, options.stderrFile ?? null));
  }

  /**
   * Starts a program that is not a bench module (nats-server, jupyter-notebook): no IPC, stdout
   * piped for `waitForOutput`, stderr to `stderrFile` (or dropped). Stopped like any child, by its pid.
   */
  spawn(name: string, command: string, args: string[], options: { env?: NodeJS.ProcessEnv; stderrFile?: string } = {}): Child {
    const stderrFd = options.stderrFile ? openSync(options.stderrFile, 'a') : null;
    let proc: ChildProcess;
    try {
      proc = spawn(command, args, { env: options.env ?? process.env, stdio: ['ignore', 'pipe', stderrFd ?? 'ignore'] });
    } finally {
      if (stderrFd !== null) closeSync(stderrFd);
    }
    return this.#track(new Child(name, proc, options.stderrFile ?? null));
  }

  #track(child: Child): Child {
    this.#children.add(child);
    void child.exited.then(() => this.#children.delete(child));
    return child;
  }

  get running(): number {
    return this.#children.size;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#children].map((child) => child.stop()));
  }

  /** Synchronous last resort for process 'exit': no awaiting possible there. */
  killAllNow(): void {
    for (const child of this.#children) child.proc.kill('SIGKILL');
  }
}
