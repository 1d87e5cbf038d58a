/**
 * The first code evaluated inside each session's context (see in-context.ts for how and why): it
 * captures the intrinsics the rest of the in-context code relies on, before user code can replace
 * them, and provides the readers that look at a user's value without running any of its code — no
 * getter, no Proxy trap, no `toString`, `valueOf` or `Symbol.toPrimitive`. Every other in-context
 * function (errors, previews, completion, console) reads user values only through these.
 *
 * Like all in-context code it must not refer to anything outside its own body, and it keeps to
 * captured functions applied with `Reflect.apply` instead of method calls on its own arrays and
 * maps, whose prototypes user code shares and may have patched. For the same reason in-context code
 * after the bootstrap uses no array destructuring, spread or for-of: they call
 * `Array.prototype[Symbol.iterator]`, which could hand back anything (a huge string, say).
 */

/**
 * What the host's `util.types` says a value is, without touching it: V8 checks internal slots, so no
 * user code runs and nothing crosses but the answer. `proxy` also when the check itself failed.
 */
export type ValueKind =
  | 'proxy' | 'error' | 'date' | 'regexp' | 'map' | 'set' | 'weakmap' | 'weakset' | 'promise'
  | 'typedarray' | 'arraybuffer' | 'dataview' | 'boxed' | 'iterator' | 'other';

export interface SafeLimits {
  /** Strings longer than this are never sliced, replaced or quoted (any of which would flatten them). */
  hugeString: number;
}

export interface Safe {
  apply: typeof Reflect.apply;
  ownKeys: typeof Reflect.ownKeys;
  getDescriptor: typeof Reflect.getOwnPropertyDescriptor;
  getProto: typeof Reflect.getPrototypeOf;
  setProto: typeof Reflect.setPrototypeOf;
  defineProperty: typeof Reflect.defineProperty;
  isArray: typeof Array.isArray;
  /** Captured Array.prototype.push: `push(list, item)`. */
  push<T>(list: T[], item: T): void;
  /** Captured Array.prototype.join. */
  join(list: string[], separator: string): string;
  /** Captured RegExp.prototype.exec, for regexps of our own. */
  exec(pattern: RegExp, text: string): RegExpExecArray | null;
  /** The host's verdict on an object or function; never runs user code. */
  kindOf(value: object): ValueKind;
  /** True unless the value is an object that might be a Proxy (intrinsic prototypes are known not to be). */
  isPlainTarget(value: object): boolean;
  /** Whether `key` is an own property of `object` (no trap runs: call only on a non-Proxy). */
  hasOwn(object: object, key: PropertyKey): boolean;
  /**
   * An own property of a non-Proxy object: `{ value }` for a data property, `{ accessor }` naming
   * an accessor (`Getter`, `Setter`, `Getter/Setter`), undefined when absent.
   */
  ownProperty(object: object, key: PropertyKey): { value?: unknown; accessor?: string; enumerable: boolean } | undefined;
  /** The first data property `key` along the prototype chain; undefined past an accessor or a Proxy. */
  inheritedData(object: object, key: PropertyKey): unknown;
  /** Constructor name by data properties only; null for a null prototype, '' when unknown. */
  constructorName(value: object): string | null;
  isHuge(text: string): boolean;
  /** At most `max` characters of `text` and how many were left out; a huge string is never read. */
  cut(text: string, max: number): [text: string, left: number];
  /** Single-quoted, escaped, at most `max` characters of content (plus a Node-style "... N more characters"). */
  quote(text: string, max: number): string;
  /** A primitive as the REPL shows it, strings quoted or not. */
  primitiveText(value: unknown, quoted: boolean, max: number): string;
  /** A function's name as an own data property (at most 200 characters), '' when there is none. */
  functionName(fn: Function): string;
  isClass(fn: Function): boolean;
  /** Well-known objects of this realm (for completion, previews). */
  ObjectProto: object;
  StringCtor: StringConstructor;
}

export function inContextSafe(hostKindOf: (value: unknown) => unknown, limits: SafeLimits): Safe {
  'use strict';
  const apply = Reflect.apply;
  const ownKeys = Reflect.ownKeys;
  const getDescriptor = Reflect.getOwnPropertyDescriptor;
  const getProto = Reflect.getPrototypeOf;
  const setProto = Reflect.setPrototypeOf;
  const defineProperty = Reflect.defineProperty;
  const isArray = Array.isArray;
  const arrayPush = Array.prototype.push;
  const arrayJoin = Array.prototype.join;
  const regexpExec = RegExp.prototype.exec;
  const stringSlice = String.prototype.slice;
  const charCodeAt = String.prototype.charCodeAt;
  const hasOwnProperty = Object.prototype.hasOwnProperty;
  const functionToString = Function.prototype.toString;
  const symbolToString = Symbol.prototype.toString;
  const setHas = Set.prototype.has;
  const StringCtor = String;
  const MAX_NAME = 200;
  const objectIs = Object.is;
  const ObjectProto = Object.prototype;
  const ObjectCtor = Object;
  const ArrayProto = Array.prototype;
  const ArrayCtor = Array;
  // Intrinsic objects are never Proxies: no host call is needed to know it.
  const intrinsics = new Set<object>([
    ObjectProto, ArrayProto, Function.prototype, Error.prototype, TypeError.prototype, RangeError.prototype,
    SyntaxError.prototype, ReferenceError.prototype, EvalError.prototype, URIError.prototype,
    AggregateError.prototype, Map.prototype, Set.prototype, Date.prototype, RegExp.prototype, Promise.prototype,
    globalThis,
  ]);

  function kindOf(value: object): ValueKind {
    if (apply(setHas, intrinsics, [value])) return 'other';
    try {
      const kind = apply(hostKindOf, undefined, [value]);
      return typeof kind === 'string' ? kind as ValueKind : 'proxy';
    } catch {
      // A host error (the stack is exhausted at the call) is never bound, so never seen here.
      return 'proxy';
    }
  }

  function isPlainTarget(value: object): boolean {
    return kindOf(value) !== 'proxy';
  }

  function hasOwn(object: object, key: PropertyKey): boolean {
    return apply(hasOwnProperty, object, [key]) as boolean;
  }

  function ownProperty(object: object, key: PropertyKey): { value?: unknown; accessor?: string; enumerable: boolean } | undefined {
    const descriptor = getDescriptor(object, key);
    if (descriptor === undefined) return undefined;
    // Read only the descriptor's own fields (a missing one would be looked up on Object.prototype,
    // where user code may have put a getter), and answer with an object whose fields are all own.
    const enumerable = hasOwn(descriptor, 'enumerable') && descriptor.enumerable === true;
    if (hasOwn(descriptor, 'value')) return { value: descriptor.value, accessor: undefined, enumerable };
    const getter = hasOwn(descriptor, 'get') && descriptor.get !== undefined;
    const setter = hasOwn(descriptor, 'set') && descriptor.set !== undefined;
    return { value: undefined, accessor: getter && setter ? 'Getter/Setter' : getter ? 'Getter' : 'Setter', enumerable };
  }

  function inheritedData(object: object, key: PropertyKey): unknown {
    let current: object | null = object;
    for (let depth = 0; current !== null && depth < 64; depth++) {
      if (!isPlainTarget(current)) return undefined;
      const property = ownProperty(current, key);
      if (property !== undefined) return property.accessor === undefined ? property.value : undefined;
      current = getProto(current);
    }
    return undefined;
  }

  function functionName(fn: Function): string {
    if (!isPlainTarget(fn)) return '';
    const name = ownProperty(fn, 'name');
    return name !== undefined && typeof name.value === 'string' ? cut(name.value, MAX_NAME)[0] : '';
  }

  function isClass(fn: Function): boolean {
    if (!isPlainTarget(fn)) return false;
    try {
      const source = apply(functionToString, fn, []) as string;
      return apply(stringSlice, source, [0, 5]) === 'class';
    } catch {
      return false;
    }
  }

  /** Call only for a value known not to be a Proxy (its prototype is asked for directly). */
  function constructorName(value: object): string | null {
    const proto = getProto(value);
    if (proto === null) return null;
    if (proto === ObjectProto || proto === ArrayProto) {
      const ctor = ownProperty(proto, 'constructor');
      if (ctor !== undefined && (ctor.value === ObjectCtor || ctor.value === ArrayCtor)) return proto === ObjectProto ? 'Object' : 'Array';
    }
    if (!isPlainTarget(proto)) return '';
    const ctor = ownProperty(proto, 'constructor');
    return ctor !== undefined && typeof ctor.value === 'function' ? functionName(ctor.value) : '';
  }

  function isHuge(text: string): boolean {
    return text.length > limits.hugeString;
  }

  function cut(text: string, max: number): [string, number] {
    const length = text.length;
    if (length <= max) return [text, 0];
    if (isHuge(text)) return ['', length];
    return [apply(stringSlice, text, [0, max]) as string, length - max];
  }

  // A loop over char codes rather than `replace`: a RegExp argument would make `replace` look up
  // Symbol.replace, exec and flags on RegExp.prototype, which user code may have patched.
  function escape(text: string): string {
    let out = '';
    let from = 0;
    for (let index = 0; index < text.length; index++) {
      const code = apply(charCodeAt, text, [index]) as number;
      if (code !== 39 && code !== 92 && code !== 10) continue;
      out += `${apply(stringSlice, text, [from, index]) as string}${code === 10 ? '\\n' : code === 39 ? "\\'" : '\\\\'}`;
      from = index + 1;
    }
    return from === 0 ? text : out + (apply(stringSlice, text, [from]) as string);
  }

  function quote(text: string, max: number): string {
    const cutText = cut(text, max);
    const shown = cutText[0], left = cutText[1];
    const body = escape(shown);
    return left === 0 ? `'${body}'` : `'${body}'... ${left} more character${left === 1 ? '' : 's'}`;
  }

  function primitiveText(value: unknown, quoted: boolean, max: number): string {
    switch (typeof value) {
      case 'string': return quoted ? quote(value, max) : cut(value, max)[0];
      case 'number': return objectIs(value, -0) ? '-0' : StringCtor(value);
      case 'bigint': return `${StringCtor(value)}n`;
      case 'symbol': {
        const text = apply(symbolToString, value, []) as string;
        return isHuge(text) ? 'Symbol()' : text;
      }
      default: return StringCtor(value);
    }
  }

  const safe: Safe = {
    apply, ownKeys, getDescriptor, getProto, setProto, defineProperty, isArray,
    push: (list, item) => { apply(arrayPush, list, [item]); },
    join: (list, separator) => apply(arrayJoin, list, [separator]) as string,
    exec: (pattern, text) => apply(regexpExec, pattern, [text]) as RegExpExecArray | null,
    kindOf, isPlainTarget, hasOwn, ownProperty, inheritedData, constructorName, isHuge, cut, quote,
    primitiveText, functionName, isClass, ObjectProto, StringCtor,
  };
  setProto(safe, null);
  return safe;
}
