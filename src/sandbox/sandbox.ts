/**
 * The contract between the engine (sessions/) and whatever hosts user code. The engine decides what
 * runs when, stops runs and rebuilds sessions; a Sandbox only hosts contexts and reports what they
 * did, already decoded. Two implementations: the in-process worker-thread pool (pool/) and the pool
 * of confined sandbox processes; tests use a fake. Nothing here knows seqs, records or the store.
 */
import type { EventPayloads, ExecutionKind } from '../../protocol/types.js';

export interface SandboxLimits {
  /** Longest `console` text or exception text, in characters, before it is cut. */
  maxText: number;
  /** Longest value preview, in characters. */
  maxPreview: number;
}

/** Who a session belongs to: a sandbox never puts two tenants' sessions in one host. */
export interface SessionPlacement {
  sessionId: string;
  tenant: string;
}

export interface RunRequest {
  sessionId: string;
  executionId: string;
  kind: ExecutionKind;
  code: string;
  /** The name stack traces show for this code. */
  filename: string;
}

/** One input of a session re-run, silently, to rebuild its context; `ended` is how it ended the first time. */
export interface ReplayInput { kind: ExecutionKind; code: string; filename: string; ended: 'ok' | 'error' }

/** How a run the engine stops early ends, when its host can still hear the request. */
export type AbortStatus = 'timeout' | 'cancelled' | 'error';

/** How a run ended, as its host saw it. */
export type RunStatus = 'ok' | 'error' | AbortStatus;

/** One thing a run did, in the order it did them; `done` is the last for its execution. */
export type SandboxOutput =
  | { kind: 'console'; executionId: string; ts: number; payload: EventPayloads['console'] }
  | { kind: 'value'; executionId: string; ts: number; payload: EventPayloads['value'] }
  | { kind: 'exception'; executionId: string; ts: number; payload: EventPayloads['exception'] }
  | { kind: 'done'; executionId: string; ts: number; status: RunStatus }
  /**
   * A console line its worker already encoded as its `event` frame (pool/console-frame.ts, checked
   * against the template): the server writes the seq it assigns into the 4 bytes at `seqAt`, then
   * stores and sends these bytes as they are.
   */
  | { kind: 'encoded'; executionId: string; ts: number; type: 'console'; frame: Uint8Array; seqAt: number };

export interface RestoreResult {
  ok: boolean;
  /** Inputs re-run before it ended (all of them when ok). */
  replayed: number;
  reason?: string;
}

/** Names that may complete the text before the cursor: `matches` replace code[start, end). */
export interface Completion {
  matches: string[];
  start: number;
  end: number;
}

export interface SandboxListener {
  onOutput(output: SandboxOutput): void;
  /**
   * Whether to take more output now. When it says no, hosts are left to fill their buffers and
   * wait, until `resumeOutput`: the end of the backpressure chain from storage back to the printer.
   * `tenant`: a host that holds one tenant's sessions only says whose output it would read, so that
   * what holds one tenant's output back (its flood's first lines) does not hold another's.
   */
  acceptingOutput(tenant?: string): boolean;
  onRestored(sessionId: string, result: RestoreResult): void;
  /** A rebuild has re-run `replayed` of its `inputs` (after each one); optional for hosts that cannot say. */
  onRestoreProgress?(sessionId: string, replayed: number, inputs: number): void;
  /**
   * A host is gone, and with it the contexts of `sessionIds` (open ones; runs in them are over).
   * `reason` says why (`timeout`, `out_of_memory`, `worker_exit`, `sandbox_exit`, `reclaimed`…);
   * `killed` is true when the engine asked for it with `kill`. Output the host wrote before it died
   * has been delivered first. Each lost session is open again (empty) on a new host, to be rebuilt.
   */
  onLost(sessionIds: string[], reason: string, killed: boolean): void;
}

export interface Sandbox {
  /** A fresh, empty context for a new session (or one to be rebuilt with `restore`). */
  open(session: SessionPlacement): void;
  close(sessionId: string): void;
  run(request: RunRequest): void;
  /** Asks the host to stop a run; its `done` then carries `status`. */
  abort(sessionId: string, executionId: string, status: AbortStatus): void;
  /** Re-runs `inputs` silently into the session's fresh context; answered by `onRestored`. */
  restore(sessionId: string, inputs: ReplayInput[]): void;
  /**
   * Completions for `code` at `cursor` from the session's context: its global names, or the
   * property names of the object an identifier path before a `.` names. Built inside the context,
   * bounded in time (a hostile getter or Proxy trap cannot hold the host); empty when the session
   * has no live context.
   */
  complete(sessionId: string, code: string, cursor: number): Promise<Completion>;
  /** Ends the host of `sessionId` when asking is not enough; answered by `onLost(…, reason, true)`. */
  kill(sessionId: string, reason: string): void;
  /** The listener is accepting output again. */
  resumeOutput(): void;
  /** Ends every host; nothing is reported afterwards. */
  shutdown(): Promise<void>;
  /** Hosts running now, hosts wanted, and hosts replaced so far (for /readyz and /metrics). */
  readonly online: number;
  readonly size: number;
  readonly restarts: number;
}

/** How server.ts hands the engine its sandbox: the engine is the listener. */
export type SandboxFactory = (listener: SandboxListener) => Sandbox;
