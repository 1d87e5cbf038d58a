/**
 * Every message between the server and a sandbox process, in one place. The server's side of the
 * bridge is the `Sandbox` contract (sandbox/sandbox.ts) cut into messages; the process's side is
 * its listener. What comes back from a sandbox process is untrusted (its vm layer may have been
 * escaped): `readFromHost` checks each message's shape before the server looks at it, and
 * process-sandbox.ts checks that it speaks only of that process's own sessions and executions.
 */
import type { Completion, RestoreResult, SandboxLimits, SandboxOutput } from '../sandbox/sandbox.js';
import { readConsoleRecord } from '../pool/console-frame.js';
import { FrameError, type FrameVisitor } from '../pool/pipe-frames.js';
import type { ToWorker } from '../pool/messages.js';
import { readOutputItem } from '../pool/output-item.js';

/** The sandbox process writes its frames to this fd (stdin carries the server's; stdout is unused). */
export const OUTPUT_FD = 3;
/**
 * Worker slot `n`'s requests arrive on fd REQUEST_FD + n, read by the slot's first worker itself:
 * frames of pool/messages.ts's ToWorker, which the server places on slots. A worker's end closes
 * its fd, so a slot's later workers get theirs relayed by the process's main thread (`relay`).
 */
export const REQUEST_FD = 4;

/** The first message a sandbox process reads: what its pool looks like. */
export interface HostBoot {
  t: 'boot';
  workers: number;
  heapMb: number;
  limits: SandboxLimits;
}

/**
 * What the server writes to a sandbox process's stdin. A slot's generation counts its workers'
 * deaths (`lost`): a request for an earlier one meant contexts that are gone, and is dropped.
 */
export type ToHost =
  | HostBoot
  /** Requests for a slot whose first worker is gone (its request fd with it). */
  | { t: 'relay'; slot: number; gen: number; messages: ToWorker[] }
  /** Ends the slot's worker (a runaway, a rebuild too long): answered by `lost`. */
  | { t: 'kill'; slot: number; gen: number; reason: string };

/**
 * What the server reads from a sandbox process. On the pipe, output is not an `out` message: it is
 * a worker's output record (pool/messages.ts's OutputItem, an array, or a console line's bytes:
 * pool/console-frame.ts) forwarded as the worker wrote it: `fromHostReader` hands a well-formed console line on as
 * output with no `out` around it, and `readFromHost` turns any other well-formed one into `out`.
 */
export type FromHost =
  /** The pool is up: for readiness. */
  | { t: 'ready' }
  | { t: 'out'; o: SandboxOutput }
  | { t: 'restored'; sid: string; result: RestoreResult }
  /** A rebuild under way has re-run `replayed` of its `inputs`. */
  | { t: 'restoring'; sid: string; replayed: number; inputs: number }
  /** The slot's worker is gone (its sessions' contexts with it); a new one, generation `gen`, has started empty. */
  | { t: 'lost'; slot: number; gen: number; reason: string; killed: boolean }
  | { t: 'completion'; id: number; completion: Completion };

const isString = (value: unknown): value is string => typeof value === 'string';
const isStringArray = (value: unknown): value is string[] => Array.isArray(value) && value.every(isString);
const isCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;
const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * `message` as a FromHost when it has exactly the shape one has (a fresh object: nothing else is
 * kept; an output record as output-item.ts reads it, structured previews only when
 * preview-data.ts finds them well formed), else null.
 */
export function readFromHost(message: unknown): FromHost | null {
  if (Array.isArray(message)) {
    const output = readOutputItem(message);
    return output && { t: 'out', o: output };
  }
  if (!isObject(message)) return null;
  switch (message.t) {
    case 'ready':
      return { t: 'ready' };
    case 'restored': {
      const result = message.result;
      if (!isString(message.sid) || !isObject(result) || typeof result.ok !== 'boolean' || !Number.isSafeInteger(result.replayed)) return null;
      if (result.reason !== undefined && !isString(result.reason)) return null;
      const restored: RestoreResult = { ok: result.ok, replayed: result.replayed as number };
      if (result.reason !== undefined) restored.reason = result.reason;
      return { t: 'restored', sid: message.sid, result: restored };
    }
    case 'restoring':
      if (!isString(message.sid) || !isCount(message.replayed) || !isCount(message.inputs) || message.replayed > message.inputs) return null;
      return { t: 'restoring', sid: message.sid, replayed: message.replayed, inputs: message.inputs };
    case 'lost':
      if (!isCount(message.slot) || !isCount(message.gen) || !isString(message.reason) || typeof message.killed !== 'boolean') return null;
      return { t: 'lost', slot: message.slot, gen: message.gen, reason: message.reason, killed: message.killed };
    case 'completion': {
      const completion = message.completion;
      if (!Number.isSafeInteger(message.id) || !isObject(completion) || !isStringArray(completion.matches)) return null;
      if (!Number.isSafeInteger(completion.start) || !Number.isSafeInteger(completion.end)) return null;
      return { t: 'completion', id: message.id as number, completion: { matches: completion.matches, start: completion.start as number, end: completion.end as number } };
    }
    default:
      return null;
  }
}

/** Where a sandbox process's checked messages go: its outputs, and the rest. */
export interface FromHostListener {
  output(output: SandboxOutput): void;
  message(message: FromHost): void;
}

/**
 * What reads a sandbox process's pipe (FrameReader.read): each message checked and handed on in
 * order, a console record straight from its bytes to `output` (once per printed line: no object
 * around it on the way), anything else as readFromHost reads it. Throws a FrameError at the first
 * message of no known shape: the process broke the protocol.
 */
export function fromHostReader(listener: FromHostListener): FrameVisitor {
  return {
    record(bytes, start, end) {
      const output = readConsoleRecord(bytes, start, end);
      if (output === null) throw new FrameError('a console record that is not the template');
      listener.output(output);
    },
    message(raw) {
      const message = readFromHost(raw);
      if (message === null) throw new FrameError('a message of no known shape');
      listener.message(message);
    },
  };
}
