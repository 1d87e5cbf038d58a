/**
 * Taking over a lost node's sessions, and letting go of sessions taken from this one.
 *
 * When membership says node X is dead, every live node computes, for each session X owns, a
 * preferred taker by rendezvous hashing over the nodes it takes for alive (so the sessions of one
 * lost node spread over the others, and all observers mostly agree without talking). The preferred
 * node claims at once; the others only after another lease, and only if the session is still X's
 * and X still dead (the preferred one may itself be gone). A claim is a compare-and-set of the
 * owner key against the revision in which X owned it: of any number of claims exactly one wins, and
 * a restarted X that reclaimed it first makes them all fail. The winner ends the session's
 * unfinished executions (`done {status: "crashed", reason: "node_lost"}`, fenced: see
 * sessions/orphans.ts) and hosts the session, to be rebuilt from its inputs before its next run.
 *
 * A session can also have no owner at all (its creator crashed between its session record and its
 * owner key, or the key was lost): nobody's death will ever be reported for it. Every lease each node
 * looks for open sessions without an owner key and claims them as above, except that the claim is
 * the key's create (again exactly one wins): the preferred node at once, the others once the session
 * has stayed ownerless for a whole lease.
 *
 * The other side: a node that sees a session of its own move to another node (it was paused or cut
 * off past its lease, and was taken over) drops it without writing anything more. Before that can
 * happen, a node whose own heartbeat has not been acknowledged for 0.6 × lease (it may be declared
 * dead soon) suspends itself: no new runs, no more output read from its sandbox, until it is current.
 */
import { createHash } from 'node:crypto';
import type { Cluster } from './cluster.js';
import type { OwnerEntry } from './directory.js';

/** What a takeover does to this node's sessions (ExecutionService). */
export interface TakeoverTarget {
  /**
   * Once `claimed` resolves, ends the unfinished executions of these sessions with `reason` and
   * hosts them here, to be rebuilt (rejects when the claim does).
   */
  adopt(sessionIds: string[], reason: string, claimed: Promise<unknown>): Promise<{ crashed: number; sessions: number }>;
  /** Another node owns these sessions now: drop them here, writing nothing more. */
  disown(sessionIds: string[]): void;
  /** This node may be declared dead: start nothing, produce nothing (false: current again). */
  suspend(suspended: boolean): void;
}

export interface TakeoverStats {
  /** Sessions this node claimed from a lost node, and claims another node (or the owner's restart) won. */
  claimed: number;
  claimsLost: number;
  /** Executions this node ended as `node_lost`. */
  executionsEnded: number;
  /** Sessions taken from this node while it lived (it was paused or cut off). */
  disowned: number;
  /** Times this node suspended itself for an overdue heartbeat. */
  suspensions: number;
}

export interface TakeoverHooks {
  onError(context: string, error: unknown): void;
  /** A node was found dead and this node took `sessions` of its sessions, ending `crashed` executions, in `ms`. */
  onTakeover?(nodeId: string, sessions: number, crashed: number, ms: number): void;
}

/** Past this share of the lease without an acknowledged heartbeat, a node stops producing. */
const SUSPEND_AT = 0.6;

export class Takeover {
  readonly stats: TakeoverStats = { claimed: 0, claimsLost: 0, executionsEnded: 0, disowned: 0, suspensions: 0 };
  readonly #cluster: Cluster;
  readonly #target: TakeoverTarget;
  readonly #hooks: TakeoverHooks;
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #unsubscribe: Array<() => void> = [];
  #watchdog: NodeJS.Timeout | undefined;
  #ownerlessScan: NodeJS.Timeout | undefined;
  /** Sessions the last scan found without an owner: the next scan lets any node claim them. */
  #ownerlessBefore = new Set<string>();
  #scanning = false;
  #suspended = false;

  constructor(cluster: Cluster, target: TakeoverTarget, hooks: TakeoverHooks) {
    this.#cluster = cluster;
    this.#target = target;
    this.#hooks = hooks;
  }

  get suspended(): boolean {
    return this.#suspended;
  }

  start(): void {
    const { membership, directory } = this.#cluster;
    this.#unsubscribe.push(
      membership.on({ dead: (nodeId) => this.#lost(nodeId) }),
      directory.onOwnerChange((sessionId, owner, previous) => {
        if (previous?.node === this.#cluster.nodeId && owner?.node !== this.#cluster.nodeId) {
          this.stats.disowned++;
          this.#target.disown([sessionId]);
        }
      }),
    );
    const lease = membership.leaseMs;
    this.#watchdog = setInterval(() => this.#checkHeartbeat(), Math.max(10, Math.floor(lease / 10)));
    this.#ownerlessScan = setInterval(() => void this.#ownerless(), lease);
    this.#later(() => this.#unseenOwners(), lease);
  }

  /** Claims open sessions that have no owner key (see the header); those this node is preferred for at once. */
  async #ownerless(): Promise<void> {
    const { membership, directory } = this.#cluster;
    if (this.#scanning || !this.#cluster.ready) return;
    this.#scanning = true;
    try {
      const alive = membership.alive().map((node) => node.nodeId);
      const ownerless = new Set<string>();
      const mine: Claim[] = [];
      for (const sessionId of directory.ownerless()) {
        // The owners watch may only be behind the sessions watch: KV says.
        if (await directory.refreshOwner(sessionId)) continue;
        ownerless.add(sessionId);
        if (this.#ownerlessBefore.has(sessionId) || preferredTaker(sessionId, alive) === this.#cluster.nodeId) {
          mine.push({ sessionId, take: () => directory.claim(sessionId, { node: this.#cluster.nodeId, epoch: membership.epoch }) });
        }
      }
      this.#ownerlessBefore = ownerless;
      await this.#claim('(no owner)', mine, performance.now());
    } catch (error) {
      this.#hooks.onError('adoption of sessions without an owner', error);
    } finally {
      this.#scanning = false;
    }
  }

  /**
   * Owners this node never saw alive: gone before it started, their heartbeat keys expired, so no
   * `dead` will ever come for them. A lease after start every live node has renewed its heartbeat
   * in this node's view; an owner that has not is lost.
   */
  #unseenOwners(): void {
    const { membership, directory } = this.#cluster;
    // Cut off from NATS, this node has seen nobody's heartbeat: it judges once it is back.
    if (!this.#cluster.ready) return this.#later(() => this.#unseenOwners(), membership.leaseMs);
    // One seen and then lost is `dead`'s to handle.
    for (const nodeId of directory.ownerNodes()) if (nodeId !== this.#cluster.nodeId && membership.epochOf(nodeId) === undefined) this.#lost(nodeId);
  }

  #later(fn: () => void, ms: number): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    this.#timers.add(timer);
  }

  close(): void {
    for (const stop of this.#unsubscribe.splice(0)) stop();
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    clearInterval(this.#watchdog);
    clearInterval(this.#ownerlessScan);
  }

  #checkHeartbeat(): void {
    const { membership } = this.#cluster;
    const overdue = membership.heartbeatAgeMs > SUSPEND_AT * membership.leaseMs;
    if (overdue === this.#suspended) return;
    this.#suspended = overdue;
    if (overdue) this.stats.suspensions++;
    this.#target.suspend(overdue);
  }

  /** Node X is dead to this observer: claim the sessions this node is preferred for, later the rest. */
  #lost(nodeId: string): void {
    const { membership, directory } = this.#cluster;
    const alive = membership.alive().map((node) => node.nodeId);
    const started = performance.now();
    const mine: Array<{ sessionId: string; owner: OwnerEntry }> = [];
    const others: Array<{ sessionId: string; owner: OwnerEntry }> = [];
    for (const owned of directory.ownedBy(nodeId)) (preferredTaker(owned.sessionId, alive) === this.#cluster.nodeId ? mine : others).push(owned);
    // From the revision in which the lost node owned it: a claim after any other move fails.
    const transfers = (owned: typeof mine): Claim[] => owned.map(({ sessionId, owner }) => ({
      sessionId,
      take: () => directory.transfer(sessionId, { node: this.#cluster.nodeId, epoch: membership.epoch }, owner.revision),
    }));
    void this.#claim(nodeId, transfers(mine), started);
    if (others.length === 0) return;
    this.#later(() => {
      if (membership.isAlive(nodeId)) return;
      // Still the lost node's at the revision seen then: its preferred taker did not take it.
      const left = others.filter(({ sessionId, owner }) => directory.owner(sessionId)?.revision === owner.revision);
      void this.#claim(nodeId, transfers(left), performance.now());
    }, membership.leaseMs);
  }

  /** Claims each session; the ones this node wins, it adopts (told before the claim is sent). */
  async #claim(nodeId: string, sessions: Claim[], started: number): Promise<void> {
    if (sessions.length === 0) return;
    const results = await Promise.all(sessions.map(async ({ sessionId, take }) => {
      const claim = take();
      const adoption = this.#target.adopt([sessionId], 'node_lost', claim);
      try {
        await claim;
      } catch {
        // Another node claimed it first, or its owner came back and renewed it: not ours.
        this.stats.claimsLost++;
        adoption.catch(() => undefined);
        return null;
      }
      this.stats.claimed++;
      try {
        return await adoption;
      } catch (error) {
        this.#hooks.onError(`takeover of session ${sessionId} of node ${nodeId}`, error);
        return { crashed: 0, sessions: 0 };
      }
    }));
    const won = results.filter((result) => result !== null);
    if (won.length === 0) return;
    const crashed = won.reduce((sum, result) => sum + result.crashed, 0);
    this.stats.executionsEnded += crashed;
    this.#hooks.onTakeover?.(nodeId, won.length, crashed, performance.now() - started);
  }
}

/** A session to claim, and the compare-and-set of its owner key that claims it. */
interface Claim {
  sessionId: string;
  take(): Promise<OwnerEntry>;
}

/** The node that should take a session over: the highest hash of (session, node) among the live nodes. */
export function preferredTaker(sessionId: string, nodeIds: string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1n;
  for (const nodeId of nodeIds) {
    const score = createHash('sha256').update(sessionId).update('\0').update(nodeId).digest().readBigUInt64BE(0);
    if (score > bestScore) {
      best = nodeId;
      bestScore = score;
    }
  }
  return best;
}
