/**
 * Every message between the server and a sandbox process, in one place. The server's side of the
 * bridge is the `Sandbox` contract (sandbox/sandbox.ts) cut into messages; the process's side is
 * its listener. What comes back from a sandbox process is untrusted (its vm layer may have been
 * escaped): `readFromHost` checks each message's shape before the server looks at it, and
 * process-sandbox.ts checks that it speaks only of that process's own sessions and executions.
 */
import type { ExecutionKind } from '../../protocol/types.js';
import type { AbortStatus, Completion, ReplayInput, RestoreResult, SandboxLimits, SandboxOutput } from '../sandbox/sandbox.js';
import { CONSOLE_LEVELS } from '../pool/messages.js';
import { consoleExtras, valueExtras } from '../sandbox/preview-data.js';

/** The sandbox process writes its frames to this fd (stdin carries the server's; stdout is unused). */
export const OUTPUT_FD = 3;

/** The first message a sandbox process reads: what its pool looks like. */
export interface HostBoot {
  t: 'boot';
  workers: number;
  heapMb: number;
  limits: SandboxLimits;
}

export type ToHost =
  | HostBoot
  | { t: 'open'; sid: string }
  | { t: 'close'; sid: string }
  | { t: 'run'; sid: string; xid: string; kind: ExecutionKind; code: string; filename: string }
  | { t: 'abort'; sid: string; xid: string; status: AbortStatus }
  | { t: 'restore'; sid: string; inputs: ReplayInput[] }
  | { t: 'complete'; id: number; sid: string; code: string; cursor: number }
  | { t: 'kill'; sid: string; reason: string };

export type FromHost =
  /** The pool is up: for readiness. */
  | { t: 'ready' }
  | { t: 'out'; o: SandboxOutput }
  | { t: 'restored'; sid: string; result: RestoreResult }
  /** A rebuild under way has re-run `replayed` of its `inputs`. */
  | { t: 'restoring'; sid: string; replayed: number; inputs: number }
  | { t: 'lost'; sids: string[]; reason: string; killed: boolean }
  | { t: 'completion'; id: number; completion: Completion };

const RUN_STATUSES = new Set(['ok', 'error', 'timeout', 'cancelled']);
const isString = (value: unknown): value is string => typeof value === 'string';
const isStringArray = (value: unknown): value is string[] => Array.isArray(value) && value.every(isString);
const isCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;
const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * `message` as a FromHost when it has exactly the shape one has (a fresh object: nothing else is
 * kept; structured previews only when preview-data.ts finds them well formed), else null.
 */
export function readFromHost(message: unknown): FromHost | null {
  if (!isObject(message)) return null;
  switch (message.t) {
    case 'ready':
      return { t: 'ready' };
    case 'out': {
      const output = readOutput(message.o);
      return output && { t: 'out', o: output };
    }
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
      if (!isStringArray(message.sids) || !isString(message.reason) || typeof message.killed !== 'boolean') return null;
      return { t: 'lost', sids: message.sids, reason: message.reason, killed: message.killed };
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

function readOutput(output: unknown): SandboxOutput | null {
  if (!isObject(output) || !isString(output.executionId) || typeof output.ts !== 'number') return null;
  const { executionId, ts } = output;
  const payload = output.payload;
  switch (output.kind) {
    case 'console': {
      if (!isObject(payload) || !(CONSOLE_LEVELS as readonly unknown[]).includes(payload.level) || !isString(payload.text)) return null;
      const level = payload.level as (typeof CONSOLE_LEVELS)[number];
      const extras = consoleExtras(payload);
      return { kind: 'console', executionId, ts, payload: { level, text: payload.text, ...(payload.truncated === true ? { truncated: true } : {}), ...extras } };
    }
    case 'value':
      if (!isObject(payload) || !isString(payload.type) || !isString(payload.preview)) return null;
      return { kind: 'value', executionId, ts, payload: { type: payload.type, preview: payload.preview, ...valueExtras(payload) } };
    case 'exception':
      if (!isObject(payload) || !isString(payload.name) || !isString(payload.message) || !isString(payload.stack)) return null;
      return { kind: 'exception', executionId, ts, payload: { name: payload.name, message: payload.message, stack: payload.stack } };
    case 'done':
      if (!RUN_STATUSES.has(output.status as string)) return null;
      return { kind: 'done', executionId, ts, status: output.status as Extract<SandboxOutput, { kind: 'done' }>['status'] };
    default:
      return null;
  }
}
