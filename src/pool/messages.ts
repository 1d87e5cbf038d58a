/**
 * Every message that crosses between the main thread and a worker, in one place. Output travels as
 * flat arrays batched per flush rather than one message per event: structured clone has a fixed
 * cost per message that dwarfs a small console line (measured on a 2-core machine: ~85 000 round
 * trips/s with 256 in flight).
 */
import type { ExecutionKind } from '../../protocol/types.js';
import type { AbortStatus, Completion, ReplayInput, SandboxLimits } from '../sandbox/sandbox.js';
import type { OutputLink } from './shared-output.js';

export interface WorkerBootData {
  limits: SandboxLimits;
  /** The output ring (output-ring.ts) this worker writes and the pool reads. */
  ring: SharedArrayBuffer;
  /** In a sandbox process: the fd this worker writes its ring's records to itself (shared-output.ts). */
  output?: OutputLink;
  /** With `output`: the word to wake the main thread on when the ring gets records (stuck-watch.ts). */
  stuck?: SharedArrayBuffer;
  /** In a sandbox process, a slot's first worker: the fd it reads the server's requests from itself. */
  requests?: number;
}

export type ToWorker =
  | { t: 'open'; sid: string }
  | { t: 'close'; sid: string }
  | { t: 'run'; sid: string; xid: string; kind: ExecutionKind; code: string; filename: string }
  | { t: 'restore'; sid: string; inputs: ReplayInput[] }
  | { t: 'abort'; xid: string; status: AbortStatus }
  /** Completion names for `code` at `cursor`; answered by a `completion` with the same `id`. */
  | { t: 'complete'; id: number; sid: string; code: string; cursor: number };

export const enum ItemKind { Console = 0, Value = 1, Exception = 2, Done = 3 }
/**
 * One output record, msgpack-encoded in the ring: [xid, kind, ts, a, b, c, extra?], where a, b, c are
 * - Console: level index, text, truncated
 * - Value: type, preview, 0
 * - Exception: name, message, stack
 * - Done: status ('ok' | 'error' | AbortStatus), 0, 0
 * and `extra`, present on Console and Value records of objects only, holds the payload's structured
 * fields `{data?, table?}` (protocol/types.ts), to be checked with sandbox/preview-data.ts.
 */
export type OutputItem = [xid: string, kind: ItemKind, ts: number, a: string | number | boolean, b: string | number | boolean, c: string | number | boolean, extra?: unknown];

export type FromWorker =
  /** The ring has records to read (posted only when no such message is pending; with `output`, only when it holds a loop's worth). */
  | { t: 'out' }
  | { t: 'restoring'; sid: string; replayed: number; inputs: number }
  | { t: 'restored'; sid: string; ok: boolean; replayed: number; reason?: string }
  | { t: 'completion'; id: number; completion: Completion };

export const CONSOLE_LEVELS = ['log', 'info', 'warn', 'error', 'debug'] as const;
