/**
 * The code that runs INSIDE each session's vm context, before any user code. context.ts evaluates
 * this function's compiled source in the context, so it must not refer to anything outside its own
 * body: every object it builds (console, timers, the previewer) belongs to the context's realm, and
 * what it hands to the host are primitives only. Host functions stay in this closure, never on a
 * global, so user code cannot reach a host `Function` through them.
 */

/** Host functions the context may call; each takes and returns primitives only. */
export interface HostBridge {
  emitConsole(level: number, text: string, truncated: boolean): void;
  emitValue(type: string, preview: string): void;
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

export function inContextBootstrap(host: HostBridge, limits: ContextLimits): ContextApi {
  'use strict';
  // Captured before user code runs, so a user who replaces them changes nothing here.
  const apply = Reflect.apply;
  const ownKeys = Reflect.ownKeys;
  const getDescriptor = Reflect.getOwnPropertyDescriptor;
  const getProto = Reflect.getPrototypeOf;
  const isArray = Array.isArray;
  const promiseThen = Promise.prototype.then;
  const promiseResolve = Promise.resolve.bind(Promise);
  const StringCtor = String;
  const objectToString = Object.prototype.toString;
  const errorToString = Error.prototype.toString;
  const jsonStringify = JSON.stringify;
  const mapEntries = Map.prototype.entries;
  const setValues = Set.prototype.values;
  const mapSize = getDescriptor(Map.prototype, 'size')!.get!;
  const setSize = getDescriptor(Set.prototype, 'size')!.get!;
  const dateToISO = Date.prototype.toISOString;
  const regexpToString = RegExp.prototype.toString;
  const functionToString = Function.prototype.toString;
  const MAX_ITEMS = 100;
  const MAX_DEPTH = 2;

  /** Calls a host function; a host error (a stack overflow at the call) must not reach user code. */
  function callHost(fn: (...args: never[]) => void, args: unknown[]): void {
    try {
      apply(fn, undefined, args);
    } catch {
      throw new RangeError('vmstream: could not deliver output (stack exhausted?)');
    }
  }

  function tag(value: object): string {
    return apply(objectToString, value, []) as string;
  }

  function typeName(value: unknown): string {
    return value === null ? 'null' : typeof value;
  }

  function constructorName(value: object): string {
    try {
      const proto = getProto(value);
      if (proto === null) return '[Object: null prototype]';
      const ctor = getDescriptor(proto, 'constructor');
      const fn = ctor && ctor.value;
      const name = typeof fn === 'function' ? getDescriptor(fn, 'name') : undefined;
      return name && typeof name.value === 'string' ? name.value : '';
    } catch {
      return '';
    }
  }

  function quote(text: string): string {
    return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`;
  }

  function previewPrimitive(value: unknown, nested: boolean): string {
    switch (typeof value) {
      case 'string': return nested ? quote(value) : value;
      case 'number': return Object.is(value, -0) ? '-0' : StringCtor(value);
      case 'bigint': return `${StringCtor(value)}n`;
      case 'symbol': return apply(Symbol.prototype.toString, value, []) as string;
      default: return StringCtor(value);
    }
  }

  function previewFunction(fn: Function): string {
    let source = '';
    try { source = apply(functionToString, fn, []) as string; } catch { /* a revoked proxy */ }
    const nameDescriptor = getDescriptor(fn, 'name');
    const name = nameDescriptor && typeof nameDescriptor.value === 'string' ? nameDescriptor.value : '';
    if (source.startsWith('class')) return `[class ${name || '(anonymous)'}]`;
    return name ? `[Function: ${name}]` : '[Function (anonymous)]';
  }

  // Frames of the host (node: internals, the server's own files, this bootstrap) say nothing to the
  // user and would tell them where the server lives.
  const HOST_FRAME = /^\s*at .*(\(|\s)(node:|file:|vmstream:|\/)/;

  function userStack(stack: string): string {
    return stack.split('\n').filter((line) => !HOST_FRAME.test(line)).join('\n');
  }

  function previewError(error: object): string {
    try {
      const stack = getDescriptor(error, 'stack');
      if (stack && typeof stack.value === 'string') return userStack(stack.value);
      return apply(errorToString, error, []) as string;
    } catch {
      return '[Error]';
    }
  }

  function previewKey(key: string | symbol): string {
    if (typeof key === 'symbol') return `[${previewPrimitive(key, true)}]`;
    return /^[A-Za-z_$][\w$]*$/.test(key) ? key : quote(key);
  }

  function previewProperty(target: object, key: string | symbol, depth: number, seen: object[]): string {
    const descriptor = getDescriptor(target, key)!;
    if (descriptor.get || descriptor.set) return descriptor.get && descriptor.set ? '[Getter/Setter]' : descriptor.get ? '[Getter]' : '[Setter]';
    return previewAny(descriptor.value, depth + 1, seen, true);
  }

  function join(open: string, parts: string[], close: string): string {
    if (parts.length === 0) return `${open}${close}`;
    return `${open} ${parts.join(', ')} ${close}`;
  }

  function previewArray(array: unknown[], depth: number, seen: object[]): string {
    const parts: string[] = [];
    const length = array.length;
    for (let i = 0; i < length && i < MAX_ITEMS; i++) {
      parts.push(getDescriptor(array, i) ? previewProperty(array, StringCtor(i), depth, seen) : '<empty>');
    }
    if (length > MAX_ITEMS) parts.push(`... ${length - MAX_ITEMS} more items`);
    return join('[', parts, ']');
  }

  function previewCollection(value: Map<unknown, unknown> | Set<unknown>, isMap: boolean, depth: number, seen: object[]): string {
    const parts: string[] = [];
    const iterator = apply(isMap ? mapEntries : setValues, value, []) as Iterator<unknown>;
    const size = apply(isMap ? mapSize : setSize, value, []) as number;
    for (let step = iterator.next(); !step.done && parts.length < MAX_ITEMS; step = iterator.next()) {
      if (isMap) {
        const [k, v] = step.value as [unknown, unknown];
        parts.push(`${previewAny(k, depth + 1, seen, true)} => ${previewAny(v, depth + 1, seen, true)}`);
      } else {
        parts.push(previewAny(step.value, depth + 1, seen, true));
      }
    }
    if (size > MAX_ITEMS) parts.push(`... ${size - MAX_ITEMS} more items`);
    return join(`${isMap ? 'Map' : 'Set'}(${size}) {`, parts, '}');
  }

  function previewObject(value: object, depth: number, seen: object[]): string {
    const name = constructorName(value);
    const keys = ownKeys(value).filter((key) => getDescriptor(value, key)?.enumerable);
    const parts: string[] = [];
    for (const key of keys) {
      if (parts.length >= MAX_ITEMS) { parts.push(`... ${keys.length - MAX_ITEMS} more properties`); break; }
      parts.push(`${previewKey(key)}: ${previewProperty(value, key, depth, seen)}`);
    }
    const prefix = name === 'Object' ? '' : `${name || 'Object'} `;
    return join(`${prefix}{`, parts, '}');
  }

  function previewAny(value: unknown, depth: number, seen: object[], nested: boolean): string {
    if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return previewPrimitive(value, nested);
    if (typeof value === 'function') return previewFunction(value);
    if (seen.includes(value)) return '[Circular]';
    const kind = tag(value);
    if (kind === '[object Error]') return previewError(value);
    if (kind === '[object Date]') { try { return apply(dateToISO, value, []) as string; } catch { return 'Invalid Date'; } }
    if (kind === '[object RegExp]') return apply(regexpToString, value, []) as string;
    if (kind === '[object Promise]') return 'Promise { <state hidden> }';
    if (depth > MAX_DEPTH) return isArray(value) ? '[Array]' : `[${constructorName(value) || 'Object'}]`;
    seen.push(value);
    try {
      if (isArray(value)) return previewArray(value, depth, seen);
      if (kind === '[object Map]') return previewCollection(value as Map<unknown, unknown>, true, depth, seen);
      if (kind === '[object Set]') return previewCollection(value as Set<unknown>, false, depth, seen);
      return previewObject(value, depth, seen);
    } finally {
      seen.pop();
    }
  }

  function preview(value: unknown, nested: boolean): string {
    try {
      return previewAny(value, 0, [], nested);
    } catch (error) {
      return `[preview failed: ${safeMessage(error)}]`;
    }
  }

  function safeMessage(error: unknown): string {
    try {
      if (error !== null && typeof error === 'object') {
        const message = getDescriptor(error, 'message');
        return message && typeof message.value === 'string' ? message.value : tag(error);
      }
      return StringCtor(error);
    } catch {
      return 'unknown error';
    }
  }

  function clip(text: string, max: number): [string, boolean] {
    if (text.length <= max) return [text, false];
    return [`${text.slice(0, max)}… [${text.length - max} more characters cut]`, true];
  }

  /** Node-style format: printf specifiers in a leading string, the rest joined by spaces. */
  function format(args: unknown[]): string {
    let first = 0;
    let out = '';
    if (typeof args[0] === 'string' && args.length > 1 && args[0].includes('%')) {
      let next = 1;
      out = args[0].replace(/%([sdifjoOc%])/g, (match, spec: string) => {
        if (spec === '%') return '%';
        if (next >= args.length) return match;
        const arg = args[next++];
        switch (spec) {
          case 's': return typeof arg === 'string' ? arg : preview(arg, false);
          case 'd': case 'i': return typeof arg === 'bigint' ? `${StringCtor(arg)}n` : StringCtor(spec === 'i' ? Math.trunc(Number(arg)) : Number(arg));
          case 'f': return StringCtor(Number(arg));
          case 'j': try { return StringCtor(jsonStringify(arg)); } catch { return '[Circular]'; }
          case 'c': return '';
          default: return preview(arg, true);
        }
      });
      first = next;
    } else if (args.length > 0) {
      out = typeof args[0] === 'string' ? args[0] : preview(args[0], false);
      first = 1;
    }
    for (let i = first; i < args.length; i++) {
      const arg = args[i];
      out += ` ${typeof arg === 'string' ? arg : preview(arg, false)}`;
    }
    return out;
  }

  function write(level: number, text: string): void {
    const [clipped, truncated] = clip(text, limits.maxText);
    callHost(host.emitConsole, [level, clipped, truncated]);
  }

  const LOG = 0, INFO = 1, WARN = 2, ERROR = 3, DEBUG = 4;
  const consoleShim = {
    log: (...args: unknown[]) => write(LOG, format(args)),
    info: (...args: unknown[]) => write(INFO, format(args)),
    warn: (...args: unknown[]) => write(WARN, format(args)),
    error: (...args: unknown[]) => write(ERROR, format(args)),
    debug: (...args: unknown[]) => write(DEBUG, format(args)),
    trace: (...args: unknown[]) => write(ERROR, `Trace: ${format(args)}\n${(new Error().stack ?? '').split('\n').slice(2).join('\n')}`),
    dir: (value: unknown) => write(LOG, preview(value, true)),
    table: (value: unknown) => write(LOG, preview(value, true)),
    assert: (condition: unknown, ...args: unknown[]) => {
      if (!condition) write(ERROR, args.length ? `Assertion failed: ${format(args)}` : 'Assertion failed');
    },
  };

  // Timers: the callbacks stay here; the host only learns ids and delays, and fires ids back.
  type TimerEntry = { callback: Function; args: unknown[]; repeat: boolean };
  const timers = new Map<number, TimerEntry>();
  let nextTimerId = 1;

  function addTimer(callback: unknown, delay: unknown, args: unknown[], repeat: boolean): number {
    if (typeof callback !== 'function') throw new TypeError('The "callback" argument must be of type function');
    const id = nextTimerId++;
    const ms = Number(delay);
    timers.set(id, { callback, args, repeat });
    callHost(host.setTimer, [id, ms >= 1 && ms <= 2147483647 ? Math.floor(ms) : 1, repeat]);
    return id;
  }

  function removeTimer(id: unknown): void {
    const key = Number(id);
    if (timers.delete(key)) callHost(host.clearTimer, [key]);
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
  for (const name of ownKeys(globals) as (keyof typeof globals)[]) {
    Object.defineProperty(globalThis, name, { value: globals[name], writable: true, configurable: true, enumerable: false });
  }

  // Node formats stack traces by calling `globalThis.Error.prepareStackTrace(error, callSites)`
  // with CallSites of the host realm: whoever sets that hook (or swaps the global `Error` for an
  // object that has one) gets host objects. Both are pinned before user code runs.
  Object.defineProperty(Error, 'prepareStackTrace', { value: undefined, writable: false, configurable: false, enumerable: false });
  Object.defineProperty(globalThis, 'Error', { value: Error, writable: false, configurable: false, enumerable: false });
  // Blocking waits would hang the worker with every session on it; shared memory and WebAssembly
  // are host-facing surfaces this service does not need.
  const globalRecord = globalThis as Record<string, unknown>;
  delete globalRecord.SharedArrayBuffer;
  delete globalRecord.WebAssembly;
  delete (Atomics as unknown as Record<string, unknown>).wait;
  delete (Atomics as unknown as Record<string, unknown>).waitAsync;

  function reportException(error: unknown): void {
    let name = 'Error';
    let message = '';
    let stack = '';
    if (error !== null && typeof error === 'object') {
      try {
        const nameValue = getDescriptor(error, 'name') ?? getDescriptor(getProto(error) ?? {}, 'name');
        name = nameValue && typeof nameValue.value === 'string' ? nameValue.value : constructorName(error) || 'Error';
      } catch { /* keep the default */ }
      message = safeMessage(error);
      stack = previewError(error);
    } else {
      name = 'Uncaught';
      message = preview(error, true);
      stack = `Uncaught ${message}`;
    }
    callHost(host.emitException, [clip(name, 200)[0], clip(message, limits.maxText)[0], clip(stack, limits.maxText)[0]]);
  }

  function reportValue(value: unknown): void {
    callHost(host.emitValue, [typeName(value), clip(preview(value, true), limits.maxPreview)[0]]);
  }

  // `_` is the last repl value, as in Node's REPL, until the user assigns `_` (then it is theirs).
  let lastValue: unknown;
  let underscoreTaken = false;
  Object.defineProperty(globalThis, '_', {
    get: () => lastValue,
    set: (value: unknown) => {
      underscoreTaken = true;
      Object.defineProperty(globalThis, '_', { value, writable: true, configurable: true, enumerable: false });
      write(LOG, 'Expression assignment to _ now disabled.');
    },
    configurable: true,
    enumerable: false,
  });

  function reportResultValue(value: unknown): void {
    if (!underscoreTaken) lastValue = value;
    reportValue(value);
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
      const inner = state === 'pending' ? '<pending>' : `${state === 'rejected' ? '<rejected> ' : ''}${preview(outcome, true)}`;
      callHost(host.emitValue, ['object', clip(`Promise { ${inner} }`, limits.maxPreview)[0]]);
      if (state === 'rejected') write(ERROR, `Uncaught ${preview(outcome, true)}`);
      callHost(host.settled, [true]);
    }]);
  }

  return {
    settle(result, awaitResult, reportResult) {
      if (!awaitResult) {
        if (reportResult && result !== null && typeof result === 'object' && tag(result) === '[object Promise]') return settlePromiseValue(result);
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
      const entry = timers.get(id);
      if (!entry) return true;
      if (!entry.repeat) timers.delete(id);
      try {
        apply(entry.callback, undefined, entry.args);
        return true;
      } catch (error) {
        reportException(error);
        return false;
      }
    },
    forget(id) {
      timers.delete(id);
    },
  };
}
