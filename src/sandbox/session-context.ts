/**
 * One session's vm context, on the worker thread: compiles and runs its executions one at a time,
 * owns the timers each execution creates, and decides when an execution is over (its code settled
 * and none of its timers is pending). There is no `timeout` option on runInContext: it costs a
 * watchdog thread per call (measured: ~12 000 runs/s with it, ~700 000/s without); the main thread
 * is the watchdog instead, and terminates the worker when a run does not stop.
 */
import vm from 'node:vm';
import type { ExecutionKind } from '../../protocol/types.js';
import type { Completion, SandboxLimits } from './sandbox.js';
import { inContextBootstrap, type ContextApi, type HostBridge } from './in-context.js';
import { needsAsyncWrapper, wrapTopLevelAwait } from './repl-transform.js';
import { REAL_CLOCK, SkippingClock, type TimerClock } from './timer-clock.js';

export type RunStatus = 'ok' | 'error' | 'timeout' | 'cancelled';

/** Where a run's output goes; `silent` runs (session restores) have none. */
export interface RunOutput {
  console(level: number, text: string, truncated: boolean): void;
  value(type: string, preview: string): void;
  exception(name: string, message: string, stack: string): void;
  done(status: RunStatus): void;
}

interface Run {
  output: RunOutput;
  /** The real clock, or for a session rebuild's re-run one that fires timers without waiting (timer-clock.ts). */
  clock: TimerClock;
  settled: boolean;
  failed: boolean;
  finished: boolean;
  timers: Map<number, unknown>;
}

/** A declaration's name, at the start of a statement. */
const DECLARATION = /(?:^|[;{}\n])\s*(?:let|const|var|class|(?:async\s+)?function\s*\*?)\s+([A-Za-z_$][\w$]*)/g;
/** An identifier path ending in `.` (optional), then the identifier being typed (optional), at the end. */
const COMPLETION_TARGET = /((?:[A-Za-z_$][\w$]*\s*\.\s*)*)([A-Za-z_$][\w$]*)?$/;
const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
/** Completion runs the user's getters and traps: past this, it answers nothing. */
const COMPLETE_TIMEOUT_MS = 250;
const BOOTSTRAP_SOURCE = `(${inContextBootstrap.toString()})`;
const bootstrapScript = new vm.Script(BOOTSTRAP_SOURCE, { filename: 'vmstream:bootstrap' });

export class SessionContext {
  readonly #context: vm.Context;
  readonly #api: ContextApi;
  readonly #importModuleDynamically: () => Promise<never>;
  #run: Run | null = null;
  /** Names the session's inputs declared: `let` and `const` bindings are not properties of the global. */
  readonly #declared = new Set<string>();

  constructor(limits: SandboxLimits) {
    // A null-prototype sandbox: a host `{}` would put the host's Object.prototype (and so its
    // Function, and `process`) behind `this.constructor` inside the context.
    this.#context = vm.createContext(Object.create(null), { codeGeneration: { strings: true, wasm: false } });
    // import() would otherwise fail with a host-realm error (whose constructor leads to the host's
    // Function); refusing it with the context's own TypeError needs --experimental-vm-modules,
    // which the pool gives its workers.
    const ContextTypeError = vm.runInContext('TypeError', this.#context) as TypeErrorConstructor;
    this.#importModuleDynamically = async () => {
      throw new ContextTypeError('import() is not available in vmstream sessions');
    };
    const bootstrap = bootstrapScript.runInContext(this.#context) as typeof inContextBootstrap;
    this.#api = bootstrap(this.#bridge(), { maxText: limits.maxText, maxPreview: limits.maxPreview });
  }

  /** Starts a run; its end is reported through `output.done`, exactly once. */
  start(kind: ExecutionKind, code: string, filename: string, output: RunOutput, options: { restoring?: boolean } = {}): void {
    for (const match of code.matchAll(DECLARATION)) this.#declared.add(match[1]!);
    const run: Run = { output, clock: options.restoring === true ? new SkippingClock() : REAL_CLOCK, settled: false, failed: false, finished: false, timers: new Map() };
    this.#run = run;
    try {
      const { script, wrapped } = this.#compile(kind, code, filename);
      const result = script.runInContext(this.#context, { displayErrors: false });
      this.#api.settle(result, wrapped, kind === 'repl');
    } catch (error) {
      this.#failSafely(error);
    }
    // Never finished synchronously: only a later macrotask proves the microtasks the run queued
    // have drained (an endless `await` chain never lets it come, and so ends as a timeout).
    setImmediate(() => this.#maybeFinish(run));
  }

  /** Ends the current run early (a timeout or a cancel the worker could still hear). */
  abort(status: RunStatus): void {
    if (this.#run) this.#finish(this.#run, status);
  }

  /**
   * Names that complete the identifier (or `a.b.` path and identifier) before `cursor`: the
   * session's declared bindings and the global's names, or the properties of the object the path
   * names. Gathered inside the context, under a time limit, since getters and Proxy traps of the
   * user's objects run; only a string crosses back.
   */
  complete(code: string, cursor: number): Completion {
    const before = code.slice(0, Math.max(0, Math.min(cursor, code.length)));
    const [, path = '', prefix = ''] = COMPLETION_TARGET.exec(before) ?? [];
    const keys = path.split('.').map((key) => key.trim()).filter((key) => key !== '');
    // The declared names are checked in a scope of their own: a local of the same name would hide them.
    const checks = keys.length > 0 ? '' : [...this.#declared].filter((name) => name.startsWith(prefix))
      .map((name) => `try { ${name}; vmstream$found.push(${JSON.stringify(name)}); } catch {}`).join('\n');
    const source = `((vmstream$found) => { ${checks}
      return ((found) => {
        const names = new Set(found);
        let target = globalThis;
        for (const key of ${JSON.stringify(keys)}) { if (target == null) return ''; target = target[key]; }
        for (let o = target; o != null; o = Object.getPrototypeOf(o)) for (const name of Object.getOwnPropertyNames(o)) names.add(name);
        return [...names].filter((name) => name.startsWith(${JSON.stringify(prefix)})).join('\\n');
      })(vmstream$found); })([])`;
    let names: unknown;
    try {
      names = vm.runInContext(source, this.#context, { timeout: COMPLETE_TIMEOUT_MS, displayErrors: false });
    } catch {
      names = '';
    }
    const matches = typeof names === 'string' && names !== '' ? names.split('\n').filter((name) => IDENTIFIER.test(name)).sort() : [];
    return { matches, start: before.length - prefix.length, end: before.length };
  }

  dispose(): void {
    if (this.#run) this.#finish(this.#run, 'cancelled');
  }

  #compile(kind: ExecutionKind, code: string, filename: string): { script: vm.Script; wrapped: boolean } {
    const options = { filename, importModuleDynamically: this.#importModuleDynamically as never };
    try {
      return { script: new vm.Script(code, options), wrapped: false };
    } catch (error) {
      if (kind !== 'repl' || !needsAsyncWrapper(error)) throw error;
      const transformed = wrapTopLevelAwait(code);
      if (!transformed) throw error;
      return { script: new vm.Script(transformed.code, options), wrapped: true };
    }
  }

  #failSafely(error: unknown): void {
    try {
      this.#api.fail(error);
    } catch {
      // Reporting failed too (the stack is exhausted): the run still ends, as an error.
      if (this.#run) { this.#run.settled = true; this.#run.failed = true; }
    }
  }

  #bridge(): HostBridge {
    // Each function checks its arguments' types: they come from code we wrote, but run in a realm
    // that user code shares, and must never carry an object out.
    return {
      emitConsole: (level, text, truncated) => {
        if (this.#run && typeof level === 'number' && typeof text === 'string') this.#run.output.console(level, text, truncated === true);
      },
      emitValue: (type, preview) => {
        if (this.#run && typeof type === 'string' && typeof preview === 'string') this.#run.output.value(type, preview);
      },
      emitException: (name, message, stack) => {
        if (this.#run && typeof name === 'string' && typeof message === 'string' && typeof stack === 'string') {
          this.#run.output.exception(name, message, stack);
        }
      },
      settled: (ok) => {
        const run = this.#run;
        if (!run || run.settled) return;
        run.settled = true;
        run.failed ||= ok !== true;
        // Settling may happen inside runInContext; finishing waits for the microtasks it queued.
        setImmediate(() => this.#maybeFinish(run));
      },
      setTimer: (id, delay, repeat) => {
        const run = this.#run;
        if (!run || typeof id !== 'number' || typeof delay !== 'number') return;
        const fire = () => this.#fire(run, id, repeat === true);
        run.timers.set(id, run.clock.set(fire, delay, repeat === true));
      },
      clearTimer: (id) => {
        const run = this.#run;
        const handle = run?.timers.get(id);
        if (!run || handle === undefined) return;
        run.clock.clear(handle);
        run.timers.delete(id);
        setImmediate(() => this.#maybeFinish(run));
      },
    };
  }

  #fire(run: Run, id: number, repeat: boolean): void {
    if (run.finished) return;
    if (!repeat) run.timers.delete(id);
    let ok: boolean;
    try {
      ok = this.#api.fire(id);
    } catch {
      ok = false;
    }
    if (!ok) {
      // An exception in a timer callback ends the run, as an uncaught one ends a Node process.
      run.failed = true;
      if (run.settled) this.#finish(run, 'error');
      else this.#clearTimers(run);
      return;
    }
    setImmediate(() => this.#maybeFinish(run));
  }

  #maybeFinish(run: Run): void {
    if (!run.finished && run.settled && run.timers.size === 0) this.#finish(run, run.failed ? 'error' : 'ok');
  }

  #finish(run: Run, status: RunStatus): void {
    if (run.finished) return;
    run.finished = true;
    this.#clearTimers(run);
    if (this.#run === run) this.#run = null;
    run.output.done(status);
  }

  #clearTimers(run: Run): void {
    for (const [id, handle] of run.timers) {
      run.clock.clear(handle);
      this.#api.forget(id);
    }
    run.timers.clear();
  }
}

