/**
 * Every message that crosses between the main thread and a worker, in one place. Output travels as
 * flat arrays batched per flush rather than one message per event: structured clone has a fixed
 * cost per message that dwarfs a small console line (../shared/README.md: ~85 000 round trips/s).
 */
import type { ExecutionKind } from '../../protocol/types.js';

export interface SandboxLimits {
  /** Longest `console` text or exception text, in characters, before it is cut. */
  maxText: number;
  /** Longest value preview, in characters. */
  maxPreview: number;
}

export interface WorkerBootData {
  limits: SandboxLimits;
  /**
   * One Int32: output items the worker posted that the main thread has not processed yet. The
   * worker blocks (Atomics.wait) when it passes OUTPUT_CREDIT, so a run that prints faster than the
   * server can take it is slowed down instead of filling the main thread's inbox without bound.
   */
  inFlight: SharedArrayBuffer;
}

export const OUTPUT_CREDIT = 32_768;

/** An input to re-run in a rebuild, and how it ended the first time (`ok` or `error`). */
export interface ReplayInput { kind: ExecutionKind; code: string; filename: string; ended: 'ok' | 'error' }

export type ToWorker =
  | { t: 'open'; sid: string }
  | { t: 'close'; sid: string }
  | { t: 'run'; sid: string; xid: string; kind: ExecutionKind; code: string; filename: string }
  | { t: 'restore'; sid: string; inputs: ReplayInput[] }
  | { t: 'abort'; xid: string; status: AbortStatus };

/** How a run the main thread stops early ends. */
export type AbortStatus = 'timeout' | 'cancelled' | 'error';

/** Output items, flattened: [xid, kind, ts, a, b, c] repeated. */
export const ITEM_WIDTH = 6;
export const enum ItemKind { Console = 0, Value = 1, Exception = 2, Done = 3 }
/**
 * What a, b, c hold per kind:
 * - Console: level index, text, truncated
 * - Value: type, preview, 0
 * - Exception: name, message, stack
 * - Done: status ('ok' | 'error' | AbortStatus), 0, 0
 */
export type OutputItems = Array<string | number | boolean>;

export type FromWorker =
  | { t: 'out'; items: OutputItems }
  | { t: 'restored'; sid: string; ok: boolean; replayed: number; reason?: string };

export const CONSOLE_LEVELS = ['log', 'info', 'warn', 'error', 'debug'] as const;
