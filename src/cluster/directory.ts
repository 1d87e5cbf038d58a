/**
 * Every session of the cluster and its owner, kept in memory on every node from two watched KV
 * buckets: `<P>_sessions` (`<tenant>.<sid>` → SessionRecord, written by the store's commits) and
 * `<P>_owners` (`<sid>` → {node, epoch}: the node whose sandbox hosts the session, created at
 * `session.create`, changed only by a takeover's compare-and-set). A session created on one node
 * shows here on the others as soon as the watch brings it (milliseconds); a request that names a
 * session not here yet asks KV once (`lookup`) before anyone answers NOT_FOUND. KV is asked through
 * each bucket's leader (buckets.ts): a replica may answer from before a write another node has had
 * acknowledged.
 *
 * Revisions are kept with owners, so that a takeover can claim with `transfer(sid, to, revision)`:
 * of several nodes claiming the same revision exactly one succeeds.
 */
import type { KV, KvEntry } from '@nats-io/kv';
import { Packr } from 'msgpackr';
import type { SessionRecord } from '../../protocol/types.js';
import { decodeId, encodeId, sessionKey } from '../store/jetstream/names.js';
import { unpackSession } from '../store/jetstream/records.js';

/** Who hosts a session: a node id, and the run (epoch) of that node that took it. */
export interface Owner {
  node: string;
  epoch: string;
}

/** An owner as stored, with the KV revision to compare-and-set against. */
export interface OwnerEntry extends Owner {
  revision: number;
}

/** A session's owner key changed (`owner` undefined: deleted). */
export type OwnerListener = (sessionId: string, owner: OwnerEntry | undefined, previous: OwnerEntry | undefined) => void;

const packr = new Packr({ useRecords: false });

export class SessionDirectory {
  readonly #owners: KV;
  readonly #sessionsKv: KV;
  readonly #ownerOf = new Map<string, OwnerEntry>();
  readonly #sessions = new Map<string, SessionRecord>();
  readonly #listeners = new Set<OwnerListener>();
  /** KV gets made for sessions the watch had not brought yet: for /metrics. */
  lookups = 0;

  constructor(owners: KV, sessions: KV) {
    this.#owners = owners;
    this.#sessionsKv = sessions;
  }

  /** A revision of an `owners` key, from its watch (cluster.ts). */
  observeOwner(entry: KvEntry): void {
    const sessionId = decodeId(entry.key);
    this.#setOwner(sessionId, entry.operation === 'PUT' ? ownerOf(entry) : undefined);
  }

  /** A revision of a `sessions` key, from its watch. */
  observeSession(entry: KvEntry): void {
    if (entry.operation !== 'PUT') return;
    const { record } = unpackSession(entry.value);
    this.#sessions.set(record.session_id, record);
  }

  owner(sessionId: string): OwnerEntry | undefined {
    return this.#ownerOf.get(sessionId);
  }

  session(sessionId: string): SessionRecord | undefined {
    return this.#sessions.get(sessionId);
  }

  /** The tenant's open sessions, cluster-wide, as far as the watch has brought them. */
  openSessions(tenant: string): SessionRecord[] {
    const open: SessionRecord[] = [];
    for (const record of this.#sessions.values()) if (record.tenant === tenant && record.status !== 'closed') open.push(record);
    return open;
  }

  /** The sessions a node owns (in its run `epoch`, when given): what a takeover claims. */
  ownedBy(nodeId: string, epoch?: string): Array<{ sessionId: string; owner: OwnerEntry }> {
    const owned: Array<{ sessionId: string; owner: OwnerEntry }> = [];
    for (const [sessionId, owner] of this.#ownerOf) {
      if (owner.node === nodeId && (epoch === undefined || owner.epoch === epoch)) owned.push({ sessionId, owner });
    }
    return owned;
  }

  /** Open sessions the view holds no owner for (takeover.ts adopts those KV has none for either). */
  ownerless(): string[] {
    const ids: string[] = [];
    for (const record of this.#sessions.values()) if (record.status !== 'closed' && !this.#ownerOf.has(record.session_id)) ids.push(record.session_id);
    return ids;
  }

  /** Every node that owns a session, as far as the view knows. */
  ownerNodes(): Set<string> {
    return new Set([...this.#ownerOf.values()].map((owner) => owner.node));
  }

  /**
   * The session and its owner, from the view or, when the view does not hold them yet (created a
   * moment ago elsewhere), from KV: one get each.
   */
  async lookup(tenant: string, sessionId: string): Promise<{ session: SessionRecord | undefined; owner: OwnerEntry | undefined }> {
    let session = this.#sessions.get(sessionId);
    let owner = this.#ownerOf.get(sessionId);
    if (session && owner) return { session, owner };
    this.lookups++;
    const [sessionEntry, ownerEntry] = await Promise.all([
      session ? undefined : this.#sessionsKv.get(sessionKey(tenant, sessionId)),
      owner ? undefined : this.#owners.get(encodeId(sessionId)),
    ]);
    if (sessionEntry?.operation === 'PUT') this.observeSession(sessionEntry);
    if (ownerEntry) this.#observeIfNewer(ownerEntry);
    session = this.#sessions.get(sessionId);
    owner = this.#ownerOf.get(sessionId);
    return { session: session?.tenant === tenant ? session : undefined, owner };
  }

  /** Reads a session's owner from KV (not the view): after a forward failed, to see whether it moved. */
  async refreshOwner(sessionId: string): Promise<OwnerEntry | undefined> {
    const entry = await this.#owners.get(encodeId(sessionId));
    if (entry) this.#observeIfNewer(entry);
    return this.#ownerOf.get(sessionId);
  }

  /** Records the first owner of a new session (a KV create: fails if the session has one). */
  async claim(sessionId: string, owner: Owner): Promise<OwnerEntry> {
    const revision = await this.#owners.create(encodeId(sessionId), packr.pack(owner));
    return this.#setOwner(sessionId, { ...owner, revision })!;
  }

  /**
   * Moves a session to another owner if its key is still at `revision` (a takeover's claim); rejects
   * when it is not (someone else claimed it first, or its owner renewed it).
   */
  async transfer(sessionId: string, owner: Owner, revision: number): Promise<OwnerEntry> {
    const next = await this.#owners.update(encodeId(sessionId), packr.pack(owner), revision);
    return this.#setOwner(sessionId, { ...owner, revision: next })!;
  }

  onOwnerChange(listener: OwnerListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Resolves with the session's owner once its key is past `revision` (or at once if it is), or
   * with undefined after `timeoutMs`: a forwarder waiting for a lost owner's sessions to be taken.
   */
  ownerChanged(sessionId: string, revision: number, timeoutMs: number): Promise<OwnerEntry | undefined> {
    const now = this.#ownerOf.get(sessionId);
    if (now && now.revision > revision) return Promise.resolve(now);
    return new Promise((resolve) => {
      const done = (owner: OwnerEntry | undefined) => {
        clearTimeout(timer);
        stop();
        resolve(owner);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      const stop = this.onOwnerChange((id, owner) => {
        if (id === sessionId && owner && owner.revision > revision) done(owner);
      });
    });
  }

  #observeIfNewer(entry: KvEntry): void {
    const known = this.#ownerOf.get(decodeId(entry.key));
    if (!known || entry.revision > known.revision) this.observeOwner(entry);
  }

  #setOwner(sessionId: string, owner: OwnerEntry | undefined): OwnerEntry | undefined {
    const previous = this.#ownerOf.get(sessionId);
    // The watch may bring a revision this node already applied from its own write.
    if (owner && previous && previous.revision >= owner.revision) return previous;
    if (owner) this.#ownerOf.set(sessionId, owner);
    else this.#ownerOf.delete(sessionId);
    for (const listener of this.#listeners) listener(sessionId, owner, previous);
    return owner;
  }
}

function ownerOf(entry: KvEntry): OwnerEntry {
  const { node, epoch } = packr.unpack(entry.value) as Owner;
  return { node, epoch, revision: entry.revision };
}
