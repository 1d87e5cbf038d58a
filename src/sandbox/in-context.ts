/**
 * The code that runs INSIDE each session's vm context, before any user code. session-context.ts
 * evaluates the compiled source of this function (and of the in-context-*.ts functions it is given)
 * in the context, so none of them may refer to anything outside its own body: every object they
 * build (console, timers, previews, the stack formatter) belongs to the context's realm, and what
 * they hand to the host are primitives only. Host functions stay in these closures, never on a
 * global, so user code cannot reach a host `Function` through them.
 *
 * The rule on both sides of the boundary: host code never converts, formats, reads a property or
 * getter of, or calls into a sandbox value. It hands such values back in here untouched, and the
 * code here reads them only through in-context-safe.ts (own data properties of non-Proxies).
 */
import type { PreviewNode } from '../../protocol/types.js';
import type { ErrorTools } from './in-context-errors.js';
import type { Previewer } from './in-context-preview.js';
import type { Safe } from './in-context-safe.js';
import type { TableMaker } from './in-context-table.js';

/** Host functions the context may call; each takes and returns primitives only. */
export interface HostBridge {
  /** `extra`: JSON of `{data?, table?}` for the console payload, or '' (see in-context-preview.ts). */
  emitConsole(level: number, text: string, truncated: boolean, extra: string): void;
  /** `extra`: JSON of `{data}` for an object value, or ''. */
  emitValue(type: string, preview: string, extra: string): void;
  emitException(name: string, message: string, stack: string): void;
  settled(ok: boolean): void;
  setTimer(id: number, delay: number, repeat: boolean): void;
  clearTimer(id: number): void;
}

/** What the context gives back to the host: functions of this realm that take host-made values only. */
export interface ContextApi {
  /** Reports a completion value (repl) or awaits the async wrapper's promise, then calls `settled`. */
  settle(result: unknown, awaitResult: boolean, reportValue: boolean): void;
  /** Reports a thrown value as an exception event, then calls `settled(false)`. */
  fail(error: unknown): void;
  /** Runs the callback of a timer the host fired; returns false when it threw. */
  fire(id: number): boolean;
  /** Forgets timer callbacks the host cleared at the end of an execution. */
  forget(id: number): void;
}

export interface ContextLimits { maxText: number; maxPreview: number }

export function inContextBootstrap(host: HostBridge, limits: ContextLimits, safe: Safe, errors: ErrorTools, previewer: Previewer, tables: TableMaker): ContextApi {
  'use strict';
  const { apply, kindOf, isHuge, cut, quote, primitiveText, push, join, StringCtor } = safe;
  const promiseThen = Promise.prototype.then;
  const promiseProto = Promise.prototype;
  const promiseResolve = Promise.resolve.bind(Promise);
  const stringSlice = String.prototype.slice;
  const mapGet = Map.prototype.get;
  const mapSet = Map.prototype.set;
  const mapDelete = Map.prototype.delete;
  const stringIncludes = String.prototype.includes;
  const { trunc, floor } = Math;
  const NumberCtor = Number;
  /** Console lines of more arguments carry no structured parts (each would be a preview of its own). */
  const MAX_DATA_PARTS = 100;

  /** Calls a host function; a host error (a stack overflow at the call) must not reach user code. */
  function callHost(fn: (...args: never[]) => void, args: unknown[]): void {
    try {
      apply(fn, undefined, args);
    } catch {
      throw new RangeError('vmstream: could not deliver output (stack exhausted?)');
    }
  }

  /** How many huge strings were described so far: a console line with one is flagged as cut. */
  let described = 0;
  function tooLong(length: number): string {
    described++;
    return `[a string of ${length} characters, too long to show]`;
  }

  /** At most `max` characters, then the cut note (counting `dropped` more); a huge text is only described. */
  function clip(text: string, max: number, dropped = 0): [string, boolean] {
    if (text.length <= max && dropped === 0) return [text, false];
    if (isHuge(text)) return [tooLong(text.length + dropped), true];
    const shown = cut(text, max)[0];
    return [`${shown}… [${text.length - shown.length + dropped} more characters cut]`, true];
  }

  function isObjectLike(value: unknown): value is object {
    return value !== null && (typeof value === 'object' || typeof value === 'function');
  }

  /** One part of a console line as text: a string as it is (a huge one only described), anything else previewed. */
  function partText(value: unknown): string {
    if (typeof value === 'string') return isHuge(value) ? tooLong(value.length) : value;
    return previewer.text(value, false, limits.maxText);
  }

  function numberText(value: unknown, integer: boolean): string {
    if (typeof value === 'bigint') return `${StringCtor(value)}n`;
    // Objects are not converted (that would run their valueOf): like symbols, they are NaN.
    const number = typeof value === 'number' ? value : typeof value === 'string' || typeof value === 'boolean' ? NumberCtor(value) : NaN;
    return primitiveText(integer ? trunc(number) : number, false, 64);
  }

  /** Node-style printf over a leading string: returns the text and how many arguments it used. */
  const SPEC = /%[sdifjoOc%]/g;
  function printf(template: string, args: unknown[]): [string, number] {
    let out = '';
    let from = 0;
    let next = 1;
    SPEC.lastIndex = 0;
    for (let match = safe.exec(SPEC, template); match !== null && out.length <= limits.maxText; match = safe.exec(SPEC, template)) {
      const at = match.index;
      const spec = match[0]![1]!;
      out += apply(stringSlice, template, [from, at]) as string;
      from = at + 2;
      if (spec === '%') { out += '%'; continue; }
      if (next >= args.length) { out += `%${spec}`; continue; }
      const arg = args[next++];
      switch (spec) {
        case 's': out += typeof arg === 'string' ? partText(arg) : isObjectLike(arg) ? previewer.text(arg, true, limits.maxText) : primitiveText(arg, false, limits.maxText); break;
        case 'd': case 'i': out += numberText(arg, spec === 'i'); break;
        case 'f': out += numberText(arg, false); break;
        case 'c': break;
        // %j, %o and %O: previews (JSON.stringify would run toJSON and getters, and flatten huge strings).
        default: out += typeof arg === 'string' ? quote(arg, limits.maxText) : previewer.text(arg, true, limits.maxText);
      }
    }
    return [out + (apply(stringSlice, template, [from]) as string), next];
  }

  interface Line { text: string; truncated: boolean; extra: string }

  /**
   * A console line: printf in a leading string, the other arguments previewed and joined by spaces.
   * The text is built within its limit as it goes (a join of many long strings would copy them all);
   * the parts past it only count towards the cut note.
   */
  function format(args: unknown[]): Line {
    // The common line, one string or number that fits, as the general path below would make it
    // (no printf, nothing previewed, nothing cut): it runs once per line of a printing loop.
    if (args.length === 1) {
      const only = args[0];
      const text = typeof only === 'string' ? only : typeof only === 'number' ? primitiveText(only, false, limits.maxText) : null;
      if (text !== null && text.length <= limits.maxText) return { text, truncated: false, extra: '' };
    }
    const describedBefore = described;
    let wantData = false;
    for (let index = 0; index < args.length && index <= MAX_DATA_PARTS; index++) if (isObjectLike(args[index])) wantData = true;
    if (args.length > MAX_DATA_PARTS) wantData = false;
    const nodes: PreviewNode[] = [];
    // One budget for the whole line: its parts together stay within one preview's bounds.
    const budget = previewer.budget();
    let text = '';
    let dropped = 0;
    let parts = 0;
    const append = (part: string) => {
      const piece = parts++ === 0 ? part : ` ${part}`;
      if (text.length >= limits.maxText) dropped += piece.length;
      else text += piece;
    };
    let first = 0;
    const head = args[0];
    if (typeof head === 'string' && args.length > 1 && !isHuge(head) && apply(stringIncludes, head, ['%'])) {
      const formatted = printf(head, args);
      append(formatted[0]);
      if (wantData) push(nodes, previewer.cell(budget, formatted[0], undefined));
      first = formatted[1];
    }
    for (let index = first; index < args.length; index++) {
      const arg = args[index];
      if (isObjectLike(arg)) {
        const tree = previewer.tree(arg, budget);
        append(tree.text);
        if (wantData) push(nodes, tree.node);
      } else {
        append(partText(arg));
        if (wantData) push(nodes, previewer.cell(budget, arg, undefined));
      }
    }
    const clipped = clip(text, limits.maxText, dropped);
    return { text: clipped[0], truncated: clipped[1] || described !== describedBefore, extra: wantData ? `{"data":${previewer.encode(nodes)}}` : '' };
  }

  function write(level: number, line: Line): void {
    callHost(host.emitConsole, [level, line.text, line.truncated, line.extra]);
  }

  function plain(text: string): Line {
    const clipResult = clip(text, limits.maxText);
    const clipped = clipResult[0], truncated = clipResult[1];
    return { text: clipped, truncated, extra: '' };
  }

  function traceLine(args: unknown[]): Line {
    const line = format(args);
    const frames = errors.frames(new Error().stack ?? '', 50);
    const trace = plain(`Trace: ${line.text}${frames.length ? `\n${join(frames, '\n')}` : ''}`);
    return { text: trace.text, truncated: trace.truncated || line.truncated, extra: line.extra };
  }

  function table(data: unknown, columns: unknown): Line {
    const result = tables.table(data, columns);
    if (result === null) return format([data]);
    return { ...plain(result.text), extra: `{"table":${result.json}}` };
  }

  const LOG = 0, INFO = 1, WARN = 2, ERROR = 3, DEBUG = 4;
  const consoleShim = {
    log: (...args: unknown[]) => write(LOG, format(args)),
    info: (...args: unknown[]) => write(INFO, format(args)),
    warn: (...args: unknown[]) => write(WARN, format(args)),
    error: (...args: unknown[]) => write(ERROR, format(args)),
    debug: (...args: unknown[]) => write(DEBUG, format(args)),
    trace: (...args: unknown[]) => write(ERROR, traceLine(args)),
    dir: (value: unknown) => write(LOG, isObjectLike(value) ? format([value]) : plain(previewer.text(value, true, limits.maxText))),
    table: (data: unknown, columns?: unknown) => write(LOG, table(data, columns)),
    assert: (condition: unknown, ...args: unknown[]) => {
      if (condition) return;
      const line = args.length ? format(args) : plain('');
      write(ERROR, { ...line, text: line.text === '' ? 'Assertion failed' : `Assertion failed: ${line.text}` });
    },
  };

  // Timers: the callbacks stay here; the host only learns ids and delays, and fires ids back.
  type TimerEntry = { callback: Function; args: unknown[]; repeat: boolean };
  const timers = new Map<number, TimerEntry>();
  let nextTimerId = 1;

  function addTimer(callback: unknown, delay: unknown, args: unknown[], repeat: boolean): number {
    if (typeof callback !== 'function') throw new TypeError('The "callback" argument must be of type function');
    const id = nextTimerId++;
    // Node coerces the delay; only primitives are, here (an object's valueOf would be user code).
    const ms = typeof delay === 'number' ? delay : typeof delay === 'string' || typeof delay === 'boolean' ? NumberCtor(delay) : NaN;
    apply(mapSet, timers, [id, { callback, args, repeat }]);
    callHost(host.setTimer, [id, ms >= 1 && ms <= 2147483647 ? floor(ms) : 1, repeat]);
    return id;
  }

  function removeTimer(id: unknown): void {
    if (typeof id !== 'number') return;
    if (apply(mapDelete, timers, [id])) callHost(host.clearTimer, [id]);
  }

  const globals = {
    console: consoleShim,
    setTimeout: (callback: unknown, delay?: unknown, ...args: unknown[]) => addTimer(callback, delay, args, false),
    setInterval: (callback: unknown, delay?: unknown, ...args: unknown[]) => addTimer(callback, delay, args, true),
    setImmediate: (callback: unknown, ...args: unknown[]) => addTimer(callback, 0, args, false),
    clearTimeout: removeTimer,
    clearInterval: removeTimer,
    clearImmediate: removeTimer,
    queueMicrotask: (callback: unknown) => {
      if (typeof callback !== 'function') throw new TypeError('The "callback" argument must be of type function');
      apply(promiseThen, promiseResolve(undefined), [() => callback()]);
    },
  };
  for (const name of safe.ownKeys(globals) as (keyof typeof globals)[]) {
    safe.defineProperty(globalThis, name, { value: globals[name], writable: true, configurable: true, enumerable: false });
  }

  // The stack formatter is pinned by in-context-errors.ts; the global `Error` binding is pinned here,
  // so that nobody can swap in an object whose `prepareStackTrace` Node would call with host CallSites.
  safe.defineProperty(globalThis, 'Error', { value: Error, writable: false, configurable: false, enumerable: false });
  // Blocking waits would hang the worker with every session on it; shared memory and WebAssembly
  // are host-facing surfaces this service does not need.
  const globalRecord = globalThis as Record<string, unknown>;
  delete globalRecord.SharedArrayBuffer;
  delete globalRecord.WebAssembly;
  delete (Atomics as unknown as Record<string, unknown>).wait;
  delete (Atomics as unknown as Record<string, unknown>).waitAsync;

  function reportException(error: unknown): void {
    let name = 'Uncaught';
    let message: string;
    let stack: string;
    if (isObjectLike(error) && kindOf(error) === 'error') {
      const header = errors.header(error);
      name = header.name;
      message = header.message;
      stack = errors.strip(clip(errors.stackOf(error) ?? header.text, limits.maxText)[0]);
    } else {
      message = previewer.text(error, true, limits.maxText);
      stack = `Uncaught ${message}`;
    }
    callHost(host.emitException, [clip(name, 200)[0], clip(message, limits.maxText)[0], clip(stack, limits.maxText)[0]]);
  }

  function reportValue(value: unknown): void {
    if (typeof value === 'string') {
      const preview = isHuge(value) ? tooLong(value.length) : quote(value, value.length);
      callHost(host.emitValue, ['string', clip(preview, limits.maxPreview)[0], '']);
    } else if (isObjectLike(value)) {
      const { node, text } = previewer.tree(value);
      callHost(host.emitValue, [typeof value, clip(text, limits.maxPreview)[0], `{"data":${previewer.encode(node)}}`]);
    } else {
      callHost(host.emitValue, [value === null ? 'null' : typeof value, primitiveText(value, true, limits.maxPreview), '']);
    }
  }

  // `_` is the last repl value, as in Node's REPL, until the user assigns `_` (then it is theirs).
  let lastValue: unknown;
  let underscoreTaken = false;
  safe.defineProperty(globalThis, '_', {
    get: () => lastValue,
    set: (value: unknown) => {
      underscoreTaken = true;
      safe.defineProperty(globalThis, '_', { value, writable: true, configurable: true, enumerable: false });
      write(LOG, plain('Expression assignment to _ now disabled.'));
    },
    configurable: true,
    enumerable: false,
  });

  function reportResultValue(value: unknown): void {
    if (!underscoreTaken) lastValue = value;
    reportValue(value);
  }

  /** What Node's REPL prints for a rejection nobody handled: `Uncaught` and the stack (or the value). */
  function uncaughtText(reason: unknown): string {
    if (isObjectLike(reason) && kindOf(reason) === 'error') return `Uncaught ${errors.strip(errors.stackOf(reason) ?? errors.header(reason).text)}`;
    return `Uncaught ${previewer.text(reason, true, limits.maxText)}`;
  }

  /**
   * A promise of this realm's Promise itself, which `then` reads the state of without running code
   * of the value's (a subclass's species constructor, a `constructor` of its own would run): other
   * thenables are previewed like any object.
   */
  function isPlainPromise(value: unknown): value is object {
    return isObjectLike(value) && kindOf(value) === 'promise' && safe.getProto(value) === promiseProto && safe.getDescriptor(value, 'constructor') === undefined;
  }

  /**
   * A repl input whose value is a promise, as Node's REPL shows one: its state once the microtasks
   * queued so far have run (`Promise { 42 }`, `Promise { <pending> }`, `Promise { <rejected> … }`),
   * and for a rejection a line in Node's words, `Uncaught Error: …`, instead of nothing at all. (The
   * promise's other handlers are not visible from here: one the code attached itself also gets it.)
   */
  function settlePromiseValue(promise: object): void {
    let state: 'pending' | 'fulfilled' | 'rejected' = 'pending';
    let outcome: unknown;
    apply(promiseThen, promise, [
      (value: unknown) => { state = 'fulfilled'; outcome = value; },
      (reason: unknown) => { state = 'rejected'; outcome = reason; },
    ]);
    // Queued after the handlers above, so they have run when the promise had already settled.
    apply(promiseThen, promiseResolve(undefined), [() => {
      if (!underscoreTaken) lastValue = promise;
      const inner = state === 'pending' ? '<pending>' : `${state === 'rejected' ? '<rejected> ' : ''}${previewer.text(outcome, true, limits.maxPreview)}`;
      callHost(host.emitValue, ['object', clip(`Promise { ${inner} }`, limits.maxPreview)[0], '']);
      if (state === 'rejected') write(ERROR, plain(uncaughtText(outcome)));
      callHost(host.settled, [true]);
    }]);
  }

  const api: ContextApi = {
    settle(result, awaitResult, reportResult) {
      if (!awaitResult) {
        if (reportResult && isPlainPromise(result)) return settlePromiseValue(result);
        if (reportResult) reportResultValue(result);
        callHost(host.settled, [true]);
        return;
      }
      apply(promiseThen, result, [
        (value: unknown) => {
          if (reportResult) reportResultValue(value);
          callHost(host.settled, [true]);
        },
        (error: unknown) => {
          reportException(error);
          callHost(host.settled, [false]);
        },
      ]);
    },
    fail(error) {
      reportException(error);
      callHost(host.settled, [false]);
    },
    fire(id) {
      const entry = apply(mapGet, timers, [id]) as TimerEntry | undefined;
      if (!entry) return true;
      if (!entry.repeat) apply(mapDelete, timers, [id]);
      try {
        apply(entry.callback, undefined, entry.args);
        return true;
      } catch (error) {
        reportException(error);
        return false;
      }
    },
    forget(id) {
      apply(mapDelete, timers, [id]);
    },
  };
  safe.setProto(api, null);
  return api;
}
