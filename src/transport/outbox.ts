/**
 * One write per socket per turn of the event loop. What a socket is sent during a turn (replies that
 * follow the same group commit, the events that commit delivered, a pong) is queued here and
 * written once, corked, when the turn's I/O is done (setImmediate: after the poll phase that ran
 * the commit callbacks and the socket messages), instead of a write per reply. One immediate serves
 * every socket that has something queued.
 */

/** What an outbox writes to: the socket, corked around `write`. */
export interface OutboxTarget {
  /** Writes the turn's frames; a frame the socket refuses ends the socket there. Must not throw: the other sockets' writes come after it. */
  flush(frames: Uint8Array[]): void;
}

const waiting = new Set<Outbox>();
let scheduled = false;

function flushAll(): void {
  scheduled = false;
  // Taken out of the set first: what a flush queues (a resumed subscription) waits for the next turn.
  const outboxes = [...waiting];
  waiting.clear();
  for (const outbox of outboxes) outbox.flush();
}

export class Outbox {
  readonly #target: OutboxTarget;
  #frames: Uint8Array[] = [];
  #bytes = 0;
  /** In `waiting`: a flag, so that a push costs no lookup in the set. */
  #queued = false;

  constructor(target: OutboxTarget) {
    this.#target = target;
  }

  /** Bytes queued and not yet written. */
  get bytes(): number {
    return this.#bytes;
  }

  push(frame: Uint8Array): void {
    this.#frames.push(frame);
    this.#bytes += frame.length;
    if (this.#queued) return;
    this.#queued = true;
    waiting.add(this);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flushAll);
    }
  }

  /** Writes what is queued now (the scheduled flush, or a caller that cannot wait for it). */
  flush(): void {
    waiting.delete(this);
    this.#queued = false;
    if (this.#frames.length === 0) return;
    const frames = this.#frames;
    this.#frames = [];
    this.#bytes = 0;
    this.#target.flush(frames);
  }

  /** The socket is gone: what is queued is dropped. */
  discard(): void {
    waiting.delete(this);
    this.#queued = false;
    this.#frames = [];
    this.#bytes = 0;
  }
}
