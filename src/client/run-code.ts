/**
 * `client.runCode()`: one call that runs code and collects what it produced, in the shape users of
 * notebook-style sandbox SDKs reach for (logs split into stdout and stderr, the value, the error).
 * This module folds an execution's events into that result; the client supplies the events.
 */
import type { EventFrame, ExceptionPayload, ExecutionRecord, TerminalStatus, ValuePayload } from '../../protocol/types.js';
import type { SessionRef } from './client.js';

export interface RunCodeOptions {
  /** The session to run in; by default the client's own session, created on first use and kept, so state carries over between calls. */
  session?: SessionRef;
  /** Each `console.log`/`info`/`debug` line, as it comes. */
  onStdout?: (text: string) => void;
  /** Each `console.warn`/`error` line, as it comes. */
  onStderr?: (text: string) => void;
  /** The value of the code's last expression. */
  onResult?: (value: ValuePayload) => void;
  /** The exception the code threw. */
  onError?: (error: ExceptionPayload) => void;
  /** Cancels the execution on the server; runCode then rejects with an AbortError. */
  signal?: AbortSignal;
  /** The execution's time limit on the server; it then ends with status `timeout`. */
  timeoutMs?: number;
}

export interface RunCodeResult {
  status: TerminalStatus;
  logs: { stdout: string[]; stderr: string[] };
  /** The last expression's value (its type and inspected preview); null when it threw or had none. */
  value: ValuePayload | null;
  error: ExceptionPayload | null;
  executionId: string;
  /** Why a status other than `ok` happened (`timeout`, `out_of_memory`…). */
  reason?: string;
}

const STDERR_LEVELS = new Set(['warn', 'error']);

/** Collects one execution's events into a RunCodeResult, calling the options' handlers on the way. */
export class RunCodeCollector {
  readonly #options: RunCodeOptions;
  readonly #logs = { stdout: [] as string[], stderr: [] as string[] };
  #value: ValuePayload | null = null;
  #error: ExceptionPayload | null = null;

  constructor(options: RunCodeOptions) {
    this.#options = options;
  }

  readonly onEvent = (event: EventFrame): void => {
    switch (event.type) {
      case 'console': {
        const stderr = STDERR_LEVELS.has(event.payload.level);
        (stderr ? this.#logs.stderr : this.#logs.stdout).push(event.payload.text);
        (stderr ? this.#options.onStderr : this.#options.onStdout)?.(event.payload.text);
        break;
      }
      case 'value':
        this.#value = event.payload;
        this.#options.onResult?.(event.payload);
        break;
      case 'exception':
        this.#error = event.payload;
        this.#options.onError?.(event.payload);
        break;
      default:
        break; // done ends it (the record says how); session notes are not the code's output
    }
  };

  result(record: ExecutionRecord): RunCodeResult {
    return {
      status: record.status as TerminalStatus,
      logs: this.#logs,
      value: this.#value,
      error: this.#error,
      executionId: record.execution_id,
      ...(record.reason === undefined ? {} : { reason: record.reason }),
    };
  }
}
