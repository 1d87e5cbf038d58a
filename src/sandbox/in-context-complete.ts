/**
 * Completion names, computed inside each session's context (see in-context.ts). The host parses the
 * text before the cursor into an identifier path and a partial name; this resolves the path without
 * running user code — own and inherited data properties of non-Proxies only, stopping at the first
 * accessor or Proxy — and lists the names the object has (own and inherited, as a devtools console
 * shows them), or the global names when there is no path.
 */
import type { Safe } from './in-context-safe.js';

export interface Completer {
  /**
   * Names starting with `partial` of what `path` names (the global object when empty), sorted, at
   * most `max`, joined by newlines (a primitive, for the host). `lexical` lists top-level `let`,
   * `const` and `class` names of earlier inputs (newline-separated): they are not on the global
   * object.
   */
  names(path: string, partial: string, lexical: string, max: number): string;
}

export function inContextCompleter(safe: Safe): Completer {
  'use strict';
  const { apply, ownKeys, getProto, ownProperty, inheritedData, isPlainTarget, exec, push, join } = safe;
  const indirectEval = globalThis.eval;
  const ObjectCtor = Object;
  const global = globalThis;
  const arraySort = Array.prototype.sort;
  const stringSplit = String.prototype.split;
  const stringStartsWith = String.prototype.startsWith;
  const setAdd = Set.prototype.add;
  const setHas = Set.prototype.has;
  const IDENTIFIER = /^[\p{ID_Start}$_][\p{ID_Continue}$\u200c\u200d]*$/u;
  const MAX_KEYS_SCANNED = 100_000;

  function split(text: string): string[] {
    return text === '' ? [] : apply(stringSplit, text, ['\n']) as string[];
  }

  function contains(list: string[], item: string): boolean {
    for (let index = 0; index < list.length; index++) if (list[index] === item) return true;
    return false;
  }

  /** The value of a top-level `let`/`const`/`class` binding: reading one runs no user code. */
  function lexicalValue(name: string): { value: unknown } | null {
    // A name that is not (or no longer) a binding would be looked up on the global's prototype
    // chain, where a getter could run: only evaluate it when nothing there has that name.
    if (inheritedOrAccessor(getProto(global), name)) return null;
    try {
      return { value: apply(indirectEval, undefined, [name]) };
    } catch {
      return null;
    }
  }

  function inheritedOrAccessor(start: object | null, name: string): boolean {
    for (let current = start, depth = 0; current !== null && depth < 64; current = getProto(current), depth++) {
      if (!isPlainTarget(current) || ownProperty(current, name) !== undefined) return true;
    }
    return false;
  }

  function resolveRoot(name: string, lexical: string[]): { value: unknown } | null {
    if (name === 'this') return { value: global };
    const own = ownProperty(global, name);
    if (own !== undefined) return own.accessor === undefined ? { value: own.value } : null;
    if (contains(lexical, name)) return lexicalValue(name);
    const inherited = inheritedData(global, name);
    return inherited === undefined ? null : { value: inherited };
  }

  function resolve(path: string[], lexical: string[]): object | null {
    const root = resolveRoot(path[0]!, lexical);
    if (root === null) return null;
    let value = root.value;
    for (let index = 1; index < path.length; index++) {
      if (value === null || value === undefined) return null;
      value = inheritedData(ObjectCtor(value), path[index]!);
    }
    return value === null || value === undefined ? null : ObjectCtor(value);
  }

  function names(pathText: string, partial: string, lexicalText: string, max: number): string {
    const path = split(pathText);
    const lexical = split(lexicalText);
    const target = path.length === 0 ? global : resolve(path, lexical);
    if (target === null) return '';
    const found = new Set<string>();
    const matches: string[] = [];
    const take = (key: string | symbol) => {
      if (typeof key !== 'string' || apply(setHas, found, [key]) || !apply(stringStartsWith, key, [partial]) || exec(IDENTIFIER, key) === null) return;
      apply(setAdd, found, [key]);
      push(matches, key);
    };
    let scanned = 0;
    for (let current: object | null = target, depth = 0; current !== null && depth < 64 && scanned < MAX_KEYS_SCANNED; current = getProto(current), depth++) {
      if (!isPlainTarget(current)) break;
      const keys = ownKeys(current);
      for (let index = 0; index < keys.length && scanned < MAX_KEYS_SCANNED; index++, scanned++) take(keys[index]!);
    }
    if (path.length === 0) for (let index = 0; index < lexical.length; index++) take(lexical[index]!);
    apply(arraySort, matches, []);
    if (matches.length > max) matches.length = max;
    return join(matches, '\n');
  }

  const completer: Completer = { names };
  safe.setProto(completer, null);
  return completer;
}
