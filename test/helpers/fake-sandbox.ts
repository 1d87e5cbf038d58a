/**
 * A Sandbox with no code behind it, for the engine's unit tests: it records what the engine asks
 * (open, run, abort, restore, kill…), and the test plays the host — it reports a run's output and
 * end, a rebuild's result, a lost host. All sessions live on one host, as with a one-worker pool:
 * `kill` loses every hosted session, as the pool does.
 */
import type {
  AbortStatus, Completion, ReplayInput, RestoreResult, RunRequest, RunStatus, Sandbox, SandboxListener, SessionPlacement,
} from '../../src/sandbox/sandbox.js';
import type { EventPayloads } from '../../protocol/types.js';

export type SandboxCall =
  | { op: 'open'; sessionId: string }
  | { op: 'close'; sessionId: string }
  | ({ op: 'run' } & RunRequest)
  | { op: 'abort'; sessionId: string; executionId: string; status: AbortStatus }
  | { op: 'restore'; sessionId: string; inputs: ReplayInput[] }
  | { op: 'kill'; sessionId: string; reason: string };

type CallOf<Op extends SandboxCall['op']> = Extract<SandboxCall, { op: Op }>;

export class FakeSandbox implements Sandbox {
  readonly listener: SandboxListener;
  /** Every call, in order. */
  readonly calls: SandboxCall[] = [];
  readonly hosted = new Set<string>();
  readonly size = 1;
  online = 1;
  restarts = 0;
  #unread: SandboxCall[] = [];
  #waiters: Array<{ op: SandboxCall['op']; resolve(call: SandboxCall): void }> = [];

  constructor(listener: SandboxListener) {
    this.listener = listener;
  }

  /** The next call of `op` not taken yet (one already made, or the next to come). */
  take<Op extends SandboxCall['op']>(op: Op): Promise<CallOf<Op>> {
    const index = this.#unread.findIndex((call) => call.op === op);
    if (index >= 0) return Promise.resolve(this.#unread.splice(index, 1)[0] as CallOf<Op>);
    return new Promise((resolve) => this.#waiters.push({ op, resolve: resolve as (call: SandboxCall) => void }));
  }

  // What the host reports.
  console(executionId: string, text: string): void {
    this.listener.onOutput({ kind: 'console', executionId, ts: Date.now(), payload: { level: 'log', text } });
  }

  value(executionId: string, payload: EventPayloads['value']): void {
    this.listener.onOutput({ kind: 'value', executionId, ts: Date.now(), payload });
  }

  done(executionId: string, status: RunStatus = 'ok'): void {
    this.listener.onOutput({ kind: 'done', executionId, ts: Date.now(), status });
  }

  restored(sessionId: string, result: RestoreResult): void {
    this.listener.onRestored(sessionId, result);
  }

  /** The host dies: every hosted session is lost, and open again (empty) on its replacement. */
  lose(reason: string, killed = false): void {
    this.restarts++;
    this.listener.onLost([...this.hosted], reason, killed);
  }

  // The Sandbox.
  open({ sessionId }: SessionPlacement): void {
    this.hosted.add(sessionId);
    this.#record({ op: 'open', sessionId });
  }

  close(sessionId: string): void {
    this.hosted.delete(sessionId);
    this.#record({ op: 'close', sessionId });
  }

  run(request: RunRequest): void {
    this.#record({ op: 'run', ...request });
  }

  abort(sessionId: string, executionId: string, status: AbortStatus): void {
    this.#record({ op: 'abort', sessionId, executionId, status });
  }

  restore(sessionId: string, inputs: ReplayInput[]): void {
    this.#record({ op: 'restore', sessionId, inputs });
  }

  async complete(_sessionId: string, _code: string, cursor: number): Promise<Completion> {
    return { matches: [], start: cursor, end: cursor };
  }

  /** As the pool does: the host goes, reported a turn later. */
  kill(sessionId: string, reason: string): void {
    this.#record({ op: 'kill', sessionId, reason });
    setImmediate(() => this.lose(reason, true));
  }

  resumeOutput(): void {}

  async shutdown(): Promise<void> {
    this.online = 0;
  }

  #record(call: SandboxCall): void {
    this.calls.push(call);
    const index = this.#waiters.findIndex((waiter) => waiter.op === call.op);
    if (index >= 0) this.#waiters.splice(index, 1)[0]!.resolve(call);
    else this.#unread.push(call);
  }
}
