/**
 * Rebuilding a session whose context was lost (its host died, or the server restarted): the inputs
 * that ran to their end are read back from the store and the workspace and re-run silently into
 * the fresh context, before the session's next execution. That execution is told at once that a
 * rebuild started (`session.restoring`, then its progress while it lasts), then how it went
 * (`session.restored`, or `session.lost` when the rebuild failed and the context is what there is).
 */
import type { ExecutionRecord, SessionRestoringPayload } from '../../protocol/types.js';
import type { ReplayInput, RestoreResult, Sandbox } from '../sandbox/sandbox.js';
import type { EventStore } from '../store/event-store.js';
import type { LiveSession } from './live.js';
import type { Workspace } from './workspace.js';

export interface RebuildDeps {
  store: EventStore;
  workspace: Workspace;
  sandbox: Sandbox;
  /** Past this, the host is killed (`restore_timeout`) and the rebuild fails. */
  timeoutMs: number;
  /** The session's rebuild ended (either way): its next step may start. */
  next(session: LiveSession): void;
  /** Tells the execution waiting for the rebuild how far it is (a `session.restoring` event). */
  progress(session: LiveSession, payload: SessionRestoringPayload): void;
}

/** Progress is said when a rebuild starts and then at most this often: a long rebuild is seen moving, a short one costs one event. */
const PROGRESS_EVERY_MS = 1000;

export class SessionRebuilder {
  readonly #deps: RebuildDeps;

  constructor(deps: RebuildDeps) {
    this.#deps = deps;
  }

  /** Starts rebuilding the session's (fresh, empty) context; the result comes to `onRestored`. */
  async start(session: LiveSession): Promise<void> {
    session.restoring = true;
    const sessionId = session.record.session_id;
    let inputs: ReplayInput[];
    try {
      inputs = await this.#replayInputs(sessionId, session.record.tenant, session.record.replay_from ?? 0);
    } catch (error) {
      this.failed(session, `its inputs could not be read: ${(error as Error).message}`);
      this.#deps.next(session);
      return;
    }
    // The host may have been lost while the inputs were read: that already ended this rebuild.
    if (!session.restoring) return;
    if (inputs.length > 0) this.#show(session, 0, inputs.length);
    session.restoreTimer = setTimeout(() => this.#deps.sandbox.kill(sessionId, 'restore_timeout'), this.#deps.timeoutMs);
    this.#deps.sandbox.restore(sessionId, inputs);
  }

  /** The host re-ran `replayed` of the rebuild's `inputs`. */
  onProgress(session: LiveSession, replayed: number, inputs: number): void {
    if (session.restoring && replayed < inputs && Date.now() - session.restoreShownAt >= PROGRESS_EVERY_MS) this.#show(session, replayed, inputs);
  }

  onRestored(session: LiveSession, result: RestoreResult): void {
    if (!session.restoring) return;
    if (result.ok) {
      this.#end(session);
      session.announcement = { type: 'session.restored', payload: { session_id: session.record.session_id, replayed: result.replayed } };
    } else {
      this.failed(session, result.reason ?? 'an input failed');
    }
    this.#deps.next(session);
  }

  /** The rebuild is over without a whole context: the session carries on in what there is. */
  failed(session: LiveSession, reason: string): void {
    this.#end(session);
    session.announcement = { type: 'session.lost', payload: { session_id: session.record.session_id, reason } };
  }

  #show(session: LiveSession, replayed: number, inputs: number): void {
    session.restoreShownAt = Date.now();
    this.#deps.progress(session, { session_id: session.record.session_id, inputs, replayed });
  }

  /** The session was given a fresh context (Engine.resetSession): a rebuild under way ends unheard. */
  abandon(session: LiveSession): void {
    if (session.restoring) this.#end(session);
  }

  /** The inputs of the session's context: those numbered from `replayFrom` on (see Engine.resetSession). */
  async #replayInputs(sessionId: string, tenant: string, replayFrom: number): Promise<ReplayInput[]> {
    const records = await this.#deps.store.listExecutions(sessionId, { limit: Number.MAX_SAFE_INTEGER, order: 'oldest' });
    const inputs: ReplayInput[] = [];
    for (const record of records) {
      if (record.number < replayFrom) continue;
      // Inputs that ran to their end, with or without an exception: what they changed before
      // throwing is part of the session's state, as in any REPL. Stopped or crashed ones are not
      // re-run: they would only be stopped again.
      if (record.status !== 'ok' && record.status !== 'error') continue;
      if (record.reason === 'output_limit') continue;
      const code = record.kind === 'repl' ? record.code! : await this.#deps.workspace.read(tenant, record.path!);
      inputs.push({ kind: record.kind, code, filename: filenameOf(record), ended: record.status });
    }
    return inputs;
  }

  #end(session: LiveSession): void {
    if (session.restoreTimer) clearTimeout(session.restoreTimer);
    session.restoreTimer = null;
    session.restoring = false;
    session.needsRestore = false;
  }
}

/** The name stack traces show for an execution's code: the name it was given, else REPL<n> as Node's REPL does; or the file's path. */
export function filenameOf(record: ExecutionRecord): string {
  return record.kind === 'repl' ? record.filename ?? `REPL${record.number}` : record.path!;
}
