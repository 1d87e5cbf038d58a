/**
 * SessionRouting (routing.ts) for a node of a JetStream cluster, over the directory, membership and
 * rpc. The service alone decides what may happen; this says where a session lives and carries a
 * request there.
 *
 * `route(sessionId, request, local)` runs `local()` when this node owns the session and otherwise
 * forwards the request to the owner. When the owner does not answer (no responders: its process is
 * gone; timeout: cut off), the forwarder waits for the session's owner key to move (a takeover) and
 * sends it again, to whichever node owns it then, until `forwardTimeoutMs` has passed: then INTERNAL.
 */
import { ProtocolError } from '../../protocol/errors.js';
import type { SessionRecord } from '../../protocol/types.js';
import type { Cluster } from './cluster.js';
import type { OwnerEntry } from './directory.js';
import { OwnerUnreachableError, RpcServer, sendForwarded } from './rpc.js';
import { NotOwnerError, type ForwardedRequest, type SessionRouting } from './routing.js';

export interface RouterStats {
  /** Requests this node forwarded to an owner, by outcome. */
  forwarded: number;
  forwardRetries: number;
  forwardFailures: number;
  /** Requests other nodes forwarded here. */
  served: number;
}

/** A few tries against a node that says it is not the owner while KV says it is (its view lags). */
const NOT_OWNER_BACKOFF_MS = 50;

export class ClusterRouter implements SessionRouting {
  readonly #cluster: Cluster;
  readonly #forwardTimeoutMs: number;
  readonly #onError: (error: unknown) => void;
  #server: RpcServer | undefined;
  readonly stats: RouterStats = { forwarded: 0, forwardRetries: 0, forwardFailures: 0, served: 0 };

  constructor(cluster: Cluster, forwardTimeoutMs: number, onError: (error: unknown) => void) {
    this.#cluster = cluster;
    this.#forwardTimeoutMs = forwardTimeoutMs;
    this.#onError = onError;
  }

  get nodeId(): string {
    return this.#cluster.nodeId;
  }

  openSessions(tenant: string): SessionRecord[] {
    return this.#cluster.directory.openSessions(tenant);
  }

  session(sessionId: string): SessionRecord | undefined {
    return this.#cluster.directory.session(sessionId);
  }

  async findSession(tenant: string, sessionId: string): Promise<SessionRecord | undefined> {
    return (await this.#cluster.directory.lookup(tenant, sessionId)).session;
  }

  ownsSession(sessionId: string): boolean {
    return this.#cluster.directory.owner(sessionId)?.node === this.nodeId;
  }

  async claim(sessionId: string): Promise<void> {
    await this.#cluster.directory.claim(sessionId, { node: this.nodeId, epoch: this.#cluster.epoch });
  }

  async route<T>(sessionId: string, request: ForwardedRequest, local: () => Promise<T>): Promise<T> {
    const directory = this.#cluster.directory;
    const deadline = performance.now() + this.#forwardTimeoutMs;
    let owner = directory.owner(sessionId) ?? (await directory.refreshOwner(sessionId));
    let sent = false;
    for (;;) {
      if (!owner) {
        // No owner key (its creator crashed before writing it, or it was lost): a node adopts it (takeover.ts).
        owner = await directory.ownerChanged(sessionId, 0, Math.max(0, deadline - performance.now()));
        if (!owner) throw new ProtocolError('INTERNAL', `session \`${sessionId}\` has no owner, and no node adopted it in time`);
      }
      if (owner.node === this.nodeId) {
        try {
          return await local();
        } catch (error) {
          // This node's write was fenced: the session moved, and this node's view is behind.
          if (!(error instanceof NotOwnerError) || performance.now() >= deadline) throw error;
          this.stats.forwardRetries++;
          owner = await this.#nextOwner(sessionId, owner, true, deadline);
          continue;
        }
      }
      const remaining = deadline - performance.now();
      if (!sent) this.stats.forwarded++;
      sent = true;
      try {
        return (await sendForwarded(this.#cluster.nc, this.#cluster.names, owner.node, request, Math.max(1, Math.min(remaining, this.#cluster.membership.leaseMs)))) as T;
      } catch (error) {
        if (!isOwnerTrouble(error)) throw error;
        if (performance.now() >= deadline) {
          this.stats.forwardFailures++;
          throw new ProtocolError('INTERNAL', `the node that owns session \`${sessionId}\` did not answer, and no other node took it over in time`, { cause: error });
        }
        this.stats.forwardRetries++;
        owner = await this.#nextOwner(sessionId, owner, error instanceof NotOwnerError, deadline);
      }
    }
  }

  serve(handle: (request: ForwardedRequest) => Promise<unknown>): void {
    this.#server = new RpcServer(this.#cluster.nc, this.#cluster.names, this.nodeId, (request) => {
      this.stats.served++;
      return handle(request);
    }, this.#onError);
  }

  async reclaim(): Promise<string[]> {
    const { directory, membership } = this.#cluster;
    const mine: string[] = [];
    for (const { sessionId, owner } of directory.ownedBy(this.nodeId)) {
      if (owner.epoch === membership.epoch) continue;
      try {
        await directory.transfer(sessionId, { node: this.nodeId, epoch: membership.epoch }, owner.revision);
        mine.push(sessionId);
      } catch {
        // Another node took it over first: it is theirs now.
      }
    }
    return mine;
  }

  close(): void {
    this.#server?.close();
  }

  /**
   * Who to try next after `owner` failed: the owner KV holds now if it moved; if not, the same
   * owner again once the key moves or a lease passes (a cut-off owner may come back; a lost one is
   * taken over), never later than the deadline.
   */
  async #nextOwner(sessionId: string, owner: OwnerEntry, notOwner: boolean, deadline: number): Promise<OwnerEntry | undefined> {
    const directory = this.#cluster.directory;
    const now = await directory.refreshOwner(sessionId).catch(() => owner);
    if (!now || now.revision !== owner.revision) return now;
    const wait = Math.max(0, Math.min(deadline - performance.now(), notOwner ? NOT_OWNER_BACKOFF_MS : this.#cluster.membership.leaseMs));
    return (await directory.ownerChanged(sessionId, owner.revision, wait)) ?? owner;
  }
}

/**
 * The owner could not take the request, but another node will once the session moves: it is gone
 * or cut off, its view is behind, or it is shutting down (its sessions are taken over after the
 * lease; the client on this node should not see that node's shutdown).
 */
function isOwnerTrouble(error: unknown): boolean {
  return error instanceof NotOwnerError || error instanceof OwnerUnreachableError || (error instanceof ProtocolError && error.code === 'SHUTTING_DOWN');
}
