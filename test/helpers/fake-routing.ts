/**
 * SessionRouting (src/cluster/routing.ts) without NATS, for in-process tests of ExecutionService on
 * a cluster: every FakeRouting of one FakeCluster shares the owners map and reads sessions from the
 * services' shared memory store location (a view with no lag), and `route` calls the owner's
 * handler directly. A node taken `down` answers nothing: requests for its sessions fail INTERNAL.
 */
import { ProtocolError } from '../../protocol/errors.js';
import type { SessionRecord } from '../../protocol/types.js';
import type { ForwardedRequest, SessionRouting } from '../../src/cluster/routing.js';
import type { MemoryLocation } from './memory-store.js';

type Handler = (request: ForwardedRequest) => Promise<unknown>;

export class FakeCluster {
  readonly owners = new Map<string, string>();
  readonly handlers = new Map<string, Handler>();
  readonly down = new Set<string>();
  /** Sessions no node's view holds yet (created a moment ago elsewhere): only `findSession`, the KV get, finds them. */
  readonly unseen = new Set<string>();
  /** Every forward, in order. */
  readonly forwarded: Array<{ from: string; to: string; request: ForwardedRequest }> = [];

  constructor(readonly location: MemoryLocation) {}

  routing(nodeId: string): FakeRouting {
    return new FakeRouting(this, nodeId);
  }
}

export class FakeRouting implements SessionRouting {
  constructor(readonly cluster: FakeCluster, readonly nodeId: string) {}

  openSessions(tenant: string): SessionRecord[] {
    return [...this.cluster.location.sessions.values()].filter((record) => record.tenant === tenant && record.status !== 'closed');
  }

  session(sessionId: string): SessionRecord | undefined {
    return this.cluster.unseen.has(sessionId) ? undefined : this.cluster.location.sessions.get(sessionId);
  }

  async findSession(tenant: string, sessionId: string): Promise<SessionRecord | undefined> {
    const record = this.cluster.location.sessions.get(sessionId);
    return record?.tenant === tenant ? record : undefined;
  }

  ownsSession(sessionId: string): boolean {
    return this.cluster.owners.get(sessionId) === this.nodeId;
  }

  async claim(sessionId: string): Promise<void> {
    if (this.cluster.owners.has(sessionId)) throw new Error(`session ${sessionId} has an owner`);
    this.cluster.owners.set(sessionId, this.nodeId);
  }

  async route<T>(sessionId: string, request: ForwardedRequest, local: () => Promise<T>): Promise<T> {
    const owner = this.cluster.owners.get(sessionId);
    if (owner === undefined || owner === this.nodeId) return local();
    this.cluster.forwarded.push({ from: this.nodeId, to: owner, request });
    const handler = this.cluster.down.has(owner) ? undefined : this.cluster.handlers.get(owner);
    if (!handler) throw new ProtocolError('INTERNAL', `node ${owner} did not answer`);
    // Across the wire: the owner sees a copy, as msgpack would give it.
    return (await handler(structuredClone(request))) as T;
  }

  serve(handle: Handler): void {
    this.cluster.handlers.set(this.nodeId, handle);
  }

  async reclaim(): Promise<string[]> {
    return [];
  }

  close(): void {
    this.cluster.handlers.delete(this.nodeId);
  }
}
