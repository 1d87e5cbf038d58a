/**
 * In-context error formatting (evaluated inside each session's context, see in-context.ts).
 *
 * V8 builds an error's `stack` lazily, through Node's host-realm formatter, unless the realm's
 * `Error.prepareStackTrace` is a function. That host formatter converts the error's `name` and
 * `message` with their own `toString` — so a Proxy there received host-realm arrays, and with them
 * the host's `Function`. The formatter here lives in the context's realm, is pinned as its
 * `Error.prepareStackTrace` (non-writable, non-configurable: the only one V8 ever calls for errors
 * made here), reads `name` and `message` only as plain data properties, returns a string and never
 * lets the CallSite array out.
 */
import type { Safe } from './in-context-safe.js';

export interface ErrorTools {
  /** `Name: message` as Error.prototype.toString would give it, from data properties only. */
  header(error: object): { name: string; message: string; text: string };
  /** The error's own `stack` string when it is a data property (formatting it here if V8 has not). */
  stackOf(error: object): string | undefined;
  /** The frame lines (`    at …`) of a stack string, at most `max` of them, each cut at 1000 characters. */
  frames(stack: string, max: number): string[];
  /** The stack without the host's frames (a host-made error, such as a compile error, has them). */
  strip(stack: string): string;
}

export function inContextErrors(safe: Safe): ErrorTools {
  'use strict';
  const { apply, getProto, defineProperty, ownProperty, inheritedData, isPlainTarget, isHuge, exec, push, StringCtor } = safe;
  const ErrorCtor = Error;
  const indexOf = String.prototype.indexOf;
  const slice = String.prototype.slice;

  // CallSite's own toString, captured once from a throwaway trace: applied to anything that is not a
  // real CallSite it throws instead of running user code.
  let callSiteToString: Function | undefined;
  defineProperty(ErrorCtor, 'prepareStackTrace', { value: (_: unknown, sites: unknown[]) => sites, writable: true, configurable: true });
  const probe = new ErrorCtor().stack as unknown as object[];
  const site = probe[0];
  if (site !== undefined) callSiteToString = (getProto(site) as { toString: Function }).toString;

  // Frames of the host (node: internals, the server's own files, this bootstrap) say nothing to the
  // user and would tell them where the server lives. User code only ever runs above them (nothing
  // here calls it back), so everything from the first one down is the host's, builtins included.
  const HOST_FRAME = /(?:^|[\s(])(?:node:|file:|vmstream:|\/)/;

  function text(value: unknown, fallback: string): string {
    if (typeof value === 'string') return value;
    if (value === undefined) return fallback;
    if (value === null || typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return StringCtor(value);
    // Objects and symbols are not converted: converting is what ran user code in host hands.
    return typeof value === 'symbol' ? '[symbol]' : '[object]';
  }

  function header(error: object): { name: string; message: string; text: string } {
    const plain = isPlainTarget(error);
    const name = text(plain ? inheritedData(error, 'name') : undefined, 'Error');
    const message = text(plain ? inheritedData(error, 'message') : undefined, '');
    // Concatenation keeps a huge message a rope: nothing here flattens it.
    return { name, message, text: name === '' ? message : message === '' ? name : `${name}: ${message}` };
  }

  function frameText(callSite: unknown): string {
    if (callSiteToString === undefined) return '';
    try {
      const line = apply(callSiteToString, callSite, []);
      return typeof line === 'string' ? safe.cut(line, 1000)[0] : '';
    } catch {
      return '';
    }
  }

  function formatStack(error: unknown, sites: unknown): string {
    let stack = error !== null && typeof error === 'object' ? header(error).text : 'Error';
    // V8 hands a real array; anything else (a user calling this with a Proxy) gets no frames.
    if (!safe.isArray(sites) || !isPlainTarget(sites)) return stack;
    const count = sites.length;
    for (let index = 0; index < count && index < 200; index++) {
      const line = frameText(sites[index]);
      if (exec(HOST_FRAME, line) !== null) break;
      if (line !== '') stack += `\n    at ${line}`;
    }
    return stack;
  }

  defineProperty(ErrorCtor, 'prepareStackTrace', { value: formatStack, writable: false, configurable: false, enumerable: false });

  function stackOf(error: object): string | undefined {
    if (!isPlainTarget(error)) return undefined;
    const stack = ownProperty(error, 'stack');
    return stack !== undefined && typeof stack.value === 'string' ? stack.value : undefined;
  }

  const FRAME = /^\s+at /;
  /** Calls `visit` with each line of `text` until it returns false. */
  function eachLine(text: string, visit: (line: string) => boolean): void {
    if (isHuge(text)) return;
    for (let from = 0; from <= text.length;) {
      let to = apply(indexOf, text, ['\n', from]) as number;
      if (to < 0) to = text.length;
      if (!visit(apply(slice, text, [from, to]) as string)) return;
      from = to + 1;
    }
  }

  function frames(stack: string, max: number): string[] {
    const out: string[] = [];
    eachLine(stack, (line) => {
      if (exec(FRAME, line) !== null) push(out, safe.cut(line, 1000)[0]);
      return out.length < max;
    });
    return out;
  }

  function strip(stack: string): string {
    let out: string | null = null;
    eachLine(stack, (line) => {
      const frame = exec(FRAME, line) !== null;
      if (frame && exec(HOST_FRAME, line) !== null) return false;
      out = out === null ? line : `${out}\n${line}`;
      return true;
    });
    return out ?? stack;
  }

  const tools: ErrorTools = { header, stackOf, frames, strip };
  safe.setProto(tools, null);
  return tools;
}
