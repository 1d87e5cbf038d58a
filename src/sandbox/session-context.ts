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
import { inContextCompleter, type Completer } from './in-context-complete.js';
import { inContextErrors } from './in-context-errors.js';
import { inContextPreviewer, type PreviewLimits } from './in-context-preview.js';
import { inContextSafe } from './in-context-safe.js';
import { inContextTable } from './in-context-table.js';
import { completionTarget, needsAsyncWrapper, topLevelLexicalNames, wrapTopLevelAwait } from './repl-transform.js';
import { REAL_CLOCK, SkippingClock, type TimerClock } from './timer-clock.js';
import { valueKind } from './value-kind.js';

export type RunStatus = 'ok' | 'error' | 'timeout' | 'cancelled';

/**
 * Where a run's output goes; `silent` runs (session restores) have none. `extra` is '' or the JSON
 * of the payload's structured fields (`data`, `table`: protocol/types.ts), written in the context.
 */
export interface RunOutput {
  console(level: number, text: string, truncated: boolean, extra: string): void;
  value(type: string, preview: string, extra: string): void;
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

/**
 * The in-context functions, compiled once per thread into one script whose value is the list of
 * them (one run per new context, before any user code can have touched its prototypes).
 */
const IN_CONTEXT = [inContextSafe, inContextErrors, inContextPreviewer, inContextTable, inContextCompleter, inContextBootstrap] as const;
const inContextScript = new vm.Script(`[${IN_CONTEXT.map((fn) => `(${fn.toString()})`).join(',\n')}]`, { filename: 'vmstream:bootstrap' });

/** Strings longer than this are only described, never sliced (a slice would copy all of them). */
const HUGE_STRING = 1 << 20;
/** Completion names per answer. */
const MAX_COMPLETIONS = 500;
/** Characters of inputs kept unparsed for completion's top-level names; past this they are parsed at once. */
const MAX_UNSCANNED_CHARS = 256 * 1024;

function previewLimits(limits: SandboxLimits): PreviewLimits {
  return {
    maxNodes: Math.max(64, Math.min(2000, Math.floor(limits.maxPreview / 32))),
    maxWidth: 100,
    maxDepth: 4,
    textDepth: 2,
    leafChars: 1000,
    totalChars: Math.max(4096, limits.maxPreview * 2),
    flattenChars: HUGE_STRING,
  };
}

export class SessionContext {
  readonly #context: vm.Context;
  readonly #api: ContextApi;
  readonly #importModuleDynamically: () => Promise<never>;
  readonly #completer: Completer;
  /** Top-level lexical names of earlier inputs, for completion (they are not on the global object). */
  readonly #lexicalNames = new Set<string>();
  #unscanned: string[] = [];
  #unscannedChars = 0;
  #run: Run | null = null;

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
    // Read by index: the list is the context's, and nothing but this code has run in it yet.
    const made = inContextScript.runInContext(this.#context) as typeof IN_CONTEXT;
    const makeSafe = made[0], makeErrors = made[1], makePreviewer = made[2], makeTables = made[3], makeCompleter = made[4], bootstrap = made[5];
    const safe = makeSafe(valueKind, { hugeString: Math.max(HUGE_STRING, limits.maxText, limits.maxPreview) });
    const errors = makeErrors(safe);
    const bounds = previewLimits(limits);
    const previewer = makePreviewer(safe, errors, bounds);
    this.#completer = makeCompleter(safe);
    this.#api = bootstrap(this.#bridge(), { maxText: limits.maxText, maxPreview: limits.maxPreview }, safe, errors, previewer, makeTables(safe, previewer, bounds));
  }

  /** Starts a run; its end is reported through `output.done`, exactly once. */
  start(kind: ExecutionKind, code: string, filename: string, output: RunOutput, options: { restoring?: boolean } = {}): void {
    const run: Run = { output, clock: options.restoring === true ? new SkippingClock() : REAL_CLOCK, settled: false, failed: false, finished: false, timers: new Map() };
    this.#run = run;
    try {
      const { script, wrapped } = this.#compile(kind, code, filename);
      this.#remember(code);
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

  dispose(): void {
    if (this.#run) this.#finish(this.#run, 'cancelled');
  }

  /**
   * Names that complete `code` at `cursor`: global names, or the property names of what the
   * identifier path before a `.` names (`foo.bar.ba|`). Resolved and listed inside the context
   * without running user code (in-context-complete.ts).
   */
  complete(code: string, cursor: number): Completion {
    const at = Math.max(0, Math.min(code.length, Math.floor(cursor) || 0));
    const target = completionTarget(code, at);
    if (target === null) return { matches: [], start: at, end: at };
    const found = this.#completer.names(target.path.join('\n'), target.partial, [...this.#scanLexicalNames()].join('\n'), MAX_COMPLETIONS);
    return { matches: typeof found === 'string' && found !== '' ? found.split('\n') : [], start: at - target.partial.length, end: at };
  }

  /** Keeps an input that may declare top-level `let`/`const`/`class` names, to parse when asked. */
  #remember(code: string): void {
    if (!/\b(?:let|const|class)\b/.test(code)) return;
    this.#unscanned.push(code);
    this.#unscannedChars += code.length;
    if (this.#unscannedChars > MAX_UNSCANNED_CHARS) this.#scanLexicalNames();
  }

  #scanLexicalNames(): Set<string> {
    for (const code of this.#unscanned) for (const name of topLevelLexicalNames(code)) this.#lexicalNames.add(name);
    this.#unscanned = [];
    this.#unscannedChars = 0;
    return this.#lexicalNames;
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
      emitConsole: (level, text, truncated, extra) => {
        if (this.#run && typeof level === 'number' && typeof text === 'string') {
          this.#run.output.console(level, text, truncated === true, typeof extra === 'string' ? extra : '');
        }
      },
      emitValue: (type, preview, extra) => {
        if (this.#run && typeof type === 'string' && typeof preview === 'string') this.#run.output.value(type, preview, typeof extra === 'string' ? extra : '');
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
      // As in Node's REPL or a browser console, an exception in a timer callback is reported and the
      // rest carries on: the run's other timers still fire (its top-level await may be waiting on
      // one) and it ends, as an error, when its code has settled and no timer is pending. An
      // interval that threw is stopped, so that one bug is not reported until the time limit.
      run.failed = true;
      if (repeat) this.#clearTimer(run, id);
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
    for (const id of [...run.timers.keys()]) this.#clearTimer(run, id);
  }

  #clearTimer(run: Run, id: number): void {
    const handle = run.timers.get(id);
    if (handle === undefined) return;
    run.clock.clear(handle);
    run.timers.delete(id);
    this.#api.forget(id);
  }
}

