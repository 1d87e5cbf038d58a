/**
 * Where things live in NATS for one store prefix. Ids go into subjects and KV keys base64url-encoded
 * (no padding): stored execution ids are `<tenant>/<execution_id>` and protocol ids may hold `.` and
 * `:`, but `.` splits subject tokens and KV keys take only `[-/=._a-zA-Z0-9]`.
 *
 * An execution's log is split into pages of PAGE_EVENTS seqs, one subject per page, so that reading
 * from any after_seq starts with one exact-subject lookup instead of a scan from the log's start.
 */

/** Seqs per page: page p holds seqs p·PAGE_EVENTS + 1 … (p + 1)·PAGE_EVENTS. */
export const PAGE_EVENTS = 1024;

export function encodeId(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}

export function decodeId(token: string): string {
  return Buffer.from(token, 'base64url').toString('utf8');
}

/** A session record's key in the `sessions` bucket: by tenant, so that one tenant's are listed by a filter. */
export function sessionKey(tenant: string, sessionId: string): string {
  return `${encodeId(tenant)}.${encodeId(sessionId)}`;
}

export function pageOf(seq: number): number {
  return Math.floor((seq - 1) / PAGE_EVENTS);
}

/** Fixed-width hex, so that keys sort as numbers. */
export function hex(value: number, width: number): string {
  return value.toString(16).padStart(width, '0');
}

export class Names {
  readonly prefix: string;

  constructor(prefix: string) {
    if (!/^[a-zA-Z0-9_-]+$/.test(prefix)) throw new Error(`a JetStream prefix takes only [a-zA-Z0-9_-]: ${JSON.stringify(prefix)}`);
    this.prefix = prefix;
  }

  get eventStream(): string {
    return `${this.prefix}_EVENTS`;
  }

  get eventSubjects(): string {
    return `${this.prefix}.ev.>`;
  }

  /** Terminal executions in end order (ended-queue.ts). */
  get endedStream(): string {
    return `${this.prefix}_ENDED`;
  }

  get endedSubject(): string {
    return `${this.prefix}.ended`;
  }

  /** Where a store tells the others sharing its prefix that its retention deleted executions (jetstream-store.ts). */
  get expiredSubject(): string {
    return `${this.prefix}.expired`;
  }

  bucket(name: 'executions' | 'session_execs' | 'active' | 'sessions' | 'logs' | 'code' | 'nodes' | 'owners'): string {
    return `${this.prefix}_${name}`;
  }

  /** Where a node answers requests forwarded to it by the others (src/cluster/rpc.ts). */
  rpcSubject(nodeId: string): string {
    return `${this.prefix}.node.${encodeId(nodeId)}.rpc`;
  }

  /**
   * The subject of one page of one incarnation of an execution's log. The incarnation (the revision
   * of its `logs` key) keeps a reused id (retention frees ids) away from its old events.
   */
  pageSubject(executionId: string, incarnation: number, page: number): string {
    return `${this.prefix}.ev.${encodeId(executionId)}.${incarnation}.${page}`;
  }

  /**
   * Every page of one incarnation of a log, or of every incarnation of the id (for a consumer;
   * never for a `last_by_subj`).
   */
  logSubjects(executionId: string, incarnation?: number): string {
    return `${this.prefix}.ev.${encodeId(executionId)}.${incarnation ?? '*'}.>`;
  }

  /**
   * Dedupes a chunk resent by its writer, including after a nats-server crash lost its ack. The
   * incarnation is in it because a purge or a new incarnation does not clear the dedupe window
   * (measured); the writer, because two writers racing for one position (a stale owner and its
   * taker) must not see each other's chunk as their own duplicate: the fence refuses the second.
   */
  messageId(executionId: string, incarnation: number, firstSeq: number, writer: string): string {
    return `${encodeId(executionId)}:${incarnation}:${firstSeq}:${writer}`;
  }
}
