/**
 * Where a sandbox process's sessions live: the server places each on one of the process's worker
 * slots (the one with the fewest), and writes the requests for its context straight to that slot's
 * worker (host-process.ts's `sendTo`), so that the process's main thread is not on a run's way. A
 * slot whose first worker died has lost its pipe: its requests are relayed by the main thread from
 * then on, tagged with the slot's generation (its workers' deaths so far), so that a request meant
 * for a dead worker's contexts never reaches its replacement.
 */
import type { ToWorker } from '../pool/messages.js';
import type { HostProcess } from './host-process.js';

interface Slot {
  sessions: Set<string>;
  generation: number;
}

/** What of a sandbox process's pipes the slots write to. */
export type SlotPipes = Pick<HostProcess, 'send' | 'sendTo' | 'closeSlot'>;

export class HostSlots {
  readonly #process: SlotPipes;
  readonly #slots: Slot[];
  readonly #placement = new Map<string, Slot>();

  constructor(process: SlotPipes, workers: number) {
    this.#process = process;
    this.#slots = Array.from({ length: workers }, () => ({ sessions: new Set<string>(), generation: 0 }));
  }

  /** Places the session on the slot with the fewest, and opens its context there. */
  open(sessionId: string): void {
    let best = this.#slots[0]!;
    for (const slot of this.#slots) if (slot.sessions.size < best.sessions.size) best = slot;
    best.sessions.add(sessionId);
    this.#placement.set(sessionId, best);
    this.send(sessionId, { t: 'open', sid: sessionId });
  }

  close(sessionId: string): void {
    this.send(sessionId, { t: 'close', sid: sessionId });
    this.#placement.get(sessionId)?.sessions.delete(sessionId);
    this.#placement.delete(sessionId);
  }

  /** A request for the session's context, to its slot's worker. */
  send(sessionId: string, message: ToWorker): void {
    const slot = this.#placement.get(sessionId);
    if (!slot) return;
    const index = this.#slots.indexOf(slot);
    if (!this.#process.sendTo(index, message)) this.#process.send({ t: 'relay', slot: index, gen: slot.generation, messages: [message] });
  }

  /** Ends the worker holding the session (answered by `lost`). */
  kill(sessionId: string, reason: string): void {
    const slot = this.#placement.get(sessionId);
    if (slot) this.#process.send({ t: 'kill', slot: this.#slots.indexOf(slot), gen: slot.generation, reason });
  }

  /**
   * The slot's worker died, and generation `generation` replaced it, empty: its sessions are opened
   * there again (to be rebuilt when next used) and returned. Null when the process says what cannot
   * be (no such slot, or not its next generation).
   */
  lost(index: number, generation: number): string[] | null {
    const slot = this.#slots[index];
    if (!slot || generation !== slot.generation + 1) return null;
    slot.generation = generation;
    this.#process.closeSlot(index);
    const sessions = [...slot.sessions];
    for (const sessionId of sessions) this.send(sessionId, { t: 'open', sid: sessionId });
    return sessions;
  }
}
