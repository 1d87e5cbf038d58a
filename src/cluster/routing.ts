/**
 * What ExecutionService asks of a cluster: where a session lives, and carrying a request to the
 * node that owns it. The contract only (no NATS here), so that sessions/ depends on no backend;
 * router.ts implements it for a node of a JetStream cluster.
 */
import type { SessionRecord } from '../../protocol/types.js';

/** The operations that need a session's live context, run by the session's owner. */
export type ForwardedOp = 'execute' | 'cancel' | 'session.close' | 'session.rename' | 'session.reset' | 'complete';

export interface ForwardedRequest {
  op: ForwardedOp;
  tenant: string;
  /** The operation's arguments, as ExecutionService takes them (an `execute`'s input carries its execution_id). */
  args: Record<string, unknown>;
}

/** The receiver does not own the session (its view is behind, or a takeover moved it): the sender asks KV again. */
export class NotOwnerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotOwnerError';
  }
}

export interface SessionRouting {
  readonly nodeId: string;
  /** The tenant's open sessions cluster-wide, as the watched view has them. */
  openSessions(tenant: string): SessionRecord[];
  /** A session in the view (sync; may miss one created a moment ago elsewhere). */
  session(sessionId: string): SessionRecord | undefined;
  /** A session of the tenant, from the view or else from KV (one get): undefined when there is none. */
  findSession(tenant: string, sessionId: string): Promise<SessionRecord | undefined>;
  /** Whether this node owns the session now. */
  ownsSession(sessionId: string): boolean;
  /** Records this node as a new session's owner (before its record is written). */
  claim(sessionId: string): Promise<void>;
  /**
   * Runs `local` if this node owns the session, else forwards `request` to its owner; when the
   * owner does not answer, waits for the session to move and sends it again, until the forward
   * timeout (then INTERNAL).
   */
  route<T>(sessionId: string, request: ForwardedRequest, local: () => Promise<T>): Promise<T>;
  /** Starts answering requests forwarded to this node (with ExecutionService.serveForwarded). */
  serve(handle: (request: ForwardedRequest) => Promise<unknown>): void;
  /**
   * The sessions a previous run of this node (same id, earlier epoch) still owns, moved to this run
   * by compare-and-set: what a restart recovers. Sessions another node took meanwhile are not touched.
   */
  reclaim(): Promise<string[]>;
  close(): void;
}
