/**
 * The in-process Sandbox: a fixed number of worker threads, each in a slot that outlives it. The
 * pool places each session on a slot (the one with the fewest sessions), decodes what the workers
 * write to their rings into SandboxOutputs, and when a worker dies (terminated for a runaway, out
 * of memory, crashed) starts a new one, re-opens the slot's sessions there empty and reports them
 * lost, for the engine to rebuild. It knows threads, sessions and messages; what an execution's
 * events or a session's history are, it leaves to sessions/.
 */
import { Worker } from 'node:worker_threads';
import { Packr } from 'msgpackr';
import type {
  AbortStatus, Completion, ReplayInput, RunRequest, Sandbox, SandboxLimits, SandboxListener, SandboxOutput, SessionPlacement,
} from '../sandbox/sandbox.js';
import type { FromWorker, ToWorker, WorkerBootData } from './messages.js';
import { isConsoleRecord, readConsoleRecord } from './console-frame.js';
import { readOutputItem } from './output-item.js';
import { createRing, RingReader } from './output-ring.js';
import type { MainOutput } from './shared-output.js';
import { createStuckWord, StuckWatch } from './stuck-watch.js';

export interface PoolOptions {
  size: number;
  limits: SandboxLimits;
  /** Old-generation heap per worker, in MiB: past it V8 ends the worker, not the server. */
  heapMb: number;
  /** Added to the workers' Node flags (bench/units/worker-run.ts profiles them with it). */
  extraExecArgv?: string[];
  /**
   * In a sandbox process: the workers write their output records to this fd themselves, as frames
   * for the server (shared-output.ts), and the pool only drains the rings of workers that cannot
   * (stuck, or dead); the listener hears everything but output.
   */
  output?: MainOutput;
  /**
   * Requests reach the workers at the end of the current microtask queue, not at the next turn's
   * check phase: in a sandbox process a turn is one frame of the server's requests already.
   */
  flushInMicrotask?: boolean;
  /** In a sandbox process: the server places sessions on slots, and writes their requests itself. */
  placedBy?: ServerPlacement;
}

/**
 * The server places sessions on slots and writes each slot's requests to an fd that the slot's
 * first worker reads itself (the process's main thread is off a run's way: that hop cost a trivial
 * run ~45 µs). A worker's end closes its fd, so a slot's later workers get their requests through
 * `relay`. A worker's death is reported by slot (`onSlotLost`, with the slot's new generation),
 * its replacement starting empty; its workers' answers go to `onAnswer`, as they are.
 */
export interface ServerPlacement {
  /** The request fd of each slot (their number is the pool's size). */
  fds: number[];
  onSlotLost(slot: number, generation: number, reason: string, killed: boolean): void;
  onAnswer(message: Exclude<FromWorker, { t: 'out' }>): void;
}

const WORKER_URL = new URL('./worker-main.js', import.meta.url);
/** Records read per turn of the event loop, so timers (the watchdog among them) still get theirs. */
const READ_PER_TURN = 4096;
/**
 * Records read in the first turn after a wake-up; each further turn of the same burst reads twice
 * as many, up to READ_PER_TURN. Everything one turn reads leaves in one batch that the server
 * takes in whole before it commits: a run that prints 100 000 lines must not have its first line
 * wait behind the 4 095 that followed it into the ring (measured: 57–150 ms to the first event).
 */
const FIRST_READ = 64;
/** A completion always answers: empty when the worker is stuck or gone for this long. */
const COMPLETE_TIMEOUT_MS = 1000;
const packr = new Packr({ useRecords: false });

/** One place for a worker; it outlives the worker, and gets a new one (with a new ring) when it dies. */
class Slot {
  worker!: Worker;
  constructor(readonly index: number, public requestFd: number | undefined) {}
  /** Its workers' deaths so far: requests relayed for an earlier one are dropped. */
  generation = 0;
  /** The worker's output ring (output-ring.ts). */
  ring = createRing();
  reader = new RingReader(this.ring);
  reading = false;
  /** Reading stopped because the listener was not accepting output. */
  stalled = false;
  /** Messages of this tick, posted together: one structured clone instead of one per message. */
  outbox: ToWorker[] = [];
  /** Why we terminated it, when we did; otherwise the exit is a crash. */
  terminateReason: string | null = null;
  errorCode: string | null = null;
  /** The sessions placed here, open on its worker. */
  readonly sessions = new Set<string>();
  restarts = 0;
  /** The thread has started (its 'online' event): for readiness. */
  online = false;
}

interface PendingCompletion {
  slot: Slot;
  resolve(completion: Completion): void;
  timer: NodeJS.Timeout;
  cursor: number;
}

export class WorkerPool implements Sandbox {
  readonly #options: PoolOptions;
  readonly #listener: SandboxListener;
  readonly #slots: Slot[] = [];
  readonly #placement = new Map<string, Slot>();
  readonly #completions = new Map<number, PendingCompletion>();
  #nextRequest = 0;
  #closing = false;
  /** With `output`: finds the rings of workers stuck after printing (stuck-watch.ts). */
  readonly #stuckWord = createStuckWord();
  readonly #stuckWatch: StuckWatch | null;

  constructor(options: PoolOptions, listener: SandboxListener) {
    this.#options = options;
    this.#listener = listener;
    const output = options.output;
    this.#stuckWatch = output ? new StuckWatch(this.#stuckWord, () => this.#drainPending(output)) : null;
    const size = options.placedBy?.fds.length ?? options.size;
    for (let index = 0; index < size; index++) {
      const slot = new Slot(index, options.placedBy?.fds[index]);
      slot.worker = this.#spawn(slot);
      this.#slots.push(slot);
    }
  }

  get size(): number {
    return this.#slots.length;
  }

  get restarts(): number {
    return this.#slots.reduce((sum, slot) => sum + slot.restarts, 0);
  }

  /** How many slots have a started worker; below `size` while a replacement boots. */
  get online(): number {
    return this.#slots.reduce((sum, slot) => sum + (slot.online ? 1 : 0), 0);
  }

  /** On the slot with the fewest sessions. Worker threads share one process: tenants are not kept apart here. */
  open({ sessionId }: SessionPlacement): void {
    let best = this.#slots[0]!;
    for (const slot of this.#slots) if (slot.sessions.size < best.sessions.size) best = slot;
    best.sessions.add(sessionId);
    this.#placement.set(sessionId, best);
    this.#send(best, { t: 'open', sid: sessionId });
  }

  close(sessionId: string): void {
    const slot = this.#placement.get(sessionId);
    if (!slot) return;
    this.#placement.delete(sessionId);
    slot.sessions.delete(sessionId);
    this.#send(slot, { t: 'close', sid: sessionId });
  }

  run({ sessionId, executionId, kind, code, filename }: RunRequest): void {
    this.#send(this.#slotOf(sessionId), { t: 'run', sid: sessionId, xid: executionId, kind, code, filename });
  }

  abort(sessionId: string, executionId: string, status: AbortStatus): void {
    this.#send(this.#slotOf(sessionId), { t: 'abort', xid: executionId, status });
  }

  restore(sessionId: string, inputs: ReplayInput[]): void {
    this.#send(this.#slotOf(sessionId), { t: 'restore', sid: sessionId, inputs });
  }

  complete(sessionId: string, code: string, cursor: number): Promise<Completion> {
    const slot = this.#placement.get(sessionId);
    if (!slot || this.#closing) return Promise.resolve(emptyCompletion(cursor));
    const id = ++this.#nextRequest;
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.#answer(id, emptyCompletion(cursor)), COMPLETE_TIMEOUT_MS);
      this.#completions.set(id, { slot, resolve, timer, cursor });
      this.#send(slot, { t: 'complete', id, sid: sessionId, code, cursor });
    });
  }

  /** Ends the worker hosting `sessionId`; its exit is reported with `reason` and `killed`. */
  kill(sessionId: string, reason: string): void {
    const slot = this.#placement.get(sessionId);
    if (slot) this.#terminate(slot, reason);
  }

  /** Placed by the server: requests for the slot's current worker, unless it has died since they were sent. */
  relay(slot: number, generation: number, messages: ToWorker[]): void {
    const target = this.#slots[slot];
    if (target?.generation !== generation) return;
    for (const message of messages) this.#send(target, message);
  }

  /** Placed by the server: ends the slot's worker, unless it has died since the kill was asked for. */
  killSlot(slot: number, generation: number, reason: string): void {
    const target = this.#slots[slot];
    if (target?.generation === generation) this.#terminate(target, reason);
  }

  /** Ends the slot's worker, once; its exit is reported with `reason`, as killed. */
  #terminate(slot: Slot, reason: string): void {
    if (slot.terminateReason !== null) return;
    slot.terminateReason = reason;
    void slot.worker.terminate();
  }

  /** Reads output again after the listener said it was not accepting any. */
  resumeOutput(): void {
    for (const slot of this.#slots) {
      if (!slot.stalled) continue;
      slot.stalled = false;
      this.#read(slot, READ_PER_TURN);
    }
  }

  async shutdown(): Promise<void> {
    this.#closing = true;
    this.#stuckWatch?.stop();
    for (const id of [...this.#completions.keys()]) this.#answer(id, null);
    await Promise.all(this.#slots.map((slot) => slot.worker.terminate()));
  }

  /** Writes out what the rings hold (their workers have not); whether any held something. */
  #drainPending(output: MainOutput): boolean {
    let pending = false;
    for (const slot of this.#slots) {
      if (!slot.reader.pending) continue;
      pending = true;
      output.drain(slot.reader);
    }
    return pending;
  }

  #slotOf(sessionId: string): Slot {
    const slot = this.#placement.get(sessionId);
    if (!slot) throw new Error(`session ${sessionId} is not open in the pool`);
    return slot;
  }

  #send(slot: Slot, message: ToWorker): void {
    if (slot.outbox.push(message) !== 1) return;
    if (this.#options.flushInMicrotask) queueMicrotask(() => this.#flush(slot));
    else setImmediate(() => this.#flush(slot));
  }

  #flush(slot: Slot): void {
    const messages = slot.outbox;
    if (messages.length === 0) return;
    slot.outbox = [];
    slot.worker.postMessage(messages);
  }

  /** Settles a pending completion once: with the worker's answer, or empty (null: its own cursor). */
  #answer(id: number, completion: Completion | null): void {
    const pending = this.#completions.get(id);
    if (!pending) return;
    this.#completions.delete(id);
    clearTimeout(pending.timer);
    pending.resolve(completion ?? emptyCompletion(pending.cursor));
  }

  #spawn(slot: Slot): Worker {
    const output = this.#options.output;
    const boot: WorkerBootData = {
      limits: this.#options.limits, ring: slot.ring,
      ...(output ? { output: output.link(slot.index), stuck: this.#stuckWord } : {}),
      ...(slot.requestFd === undefined ? {} : { requests: slot.requestFd }),
    };
    const worker = new Worker(WORKER_URL, {
      workerData: boot,
      // Nothing of the server's environment or arguments reaches the thread that runs user code.
      env: {},
      argv: [],
      // Lets sandbox/session-context.ts refuse import() with an error of the context's own realm.
      execArgv: ['--experimental-vm-modules', '--no-warnings', ...(this.#options.extraExecArgv ?? [])],
      stdout: false,
      stderr: false,
      resourceLimits: { maxOldGenerationSizeMb: this.#options.heapMb, maxYoungGenerationSizeMb: 32, stackSizeMb: 4 },
    });
    worker.on('message', (message: FromWorker) => {
      // A message of a worker already replaced speaks of contexts that are gone.
      if (slot.worker !== worker) return;
      if (message.t === 'out') return this.#read(slot, FIRST_READ);
      if (this.#options.placedBy) return this.#options.placedBy.onAnswer(message);
      switch (message.t) {
        case 'restoring':
          if (this.#placement.get(message.sid) === slot) this.#listener.onRestoreProgress?.(message.sid, message.replayed, message.inputs);
          break;
        case 'restored':
          if (this.#placement.get(message.sid) === slot) {
            this.#listener.onRestored(message.sid, { ok: message.ok, replayed: message.replayed, ...(message.reason === undefined ? {} : { reason: message.reason }) });
          }
          break;
        case 'completion':
          this.#answer(message.id, message.completion);
          break;
      }
    });
    worker.once('online', () => {
      if (slot.worker === worker) slot.online = true;
    });
    worker.on('error', (error: Error & { code?: string }) => {
      if (slot.worker === worker) slot.errorCode = error.code ?? error.name;
    });
    worker.on('exit', () => this.#onExit(slot, worker));
    return worker;
  }

  /** Hands the ring's records to the listener, decoded, a bounded number per turn of the event loop. */
  #read(slot: Slot, limit: number, force = false): void {
    if (this.#options.output) return this.#options.output.drain(slot.reader);
    if (slot.reading) return;
    if (!force && !this.#listener.acceptingOutput()) {
      slot.stalled = true;
      return;
    }
    slot.reading = true;
    let more: boolean;
    try {
      more = slot.reader.read(limit, this.#deliver);
    } finally {
      slot.reading = false;
    }
    if (more) setImmediate(() => this.#read(slot, Math.min(limit * 2, READ_PER_TURN)));
  }

  /** A record decoded for the listener; one of no known shape (its worker was escaped) is dropped. */
  readonly #deliver = (record: Uint8Array): void => {
    let output: SandboxOutput | null = null;
    try {
      output = isConsoleRecord(record) ? readConsoleRecord(record) : readOutputItem(packr.unpack(record));
    } catch {
      // not msgpack: dropped as well
    }
    if (output) this.#listener.onOutput(output);
  };

  #onExit(slot: Slot, worker: Worker): void {
    if (slot.worker !== worker || this.#closing) return;
    // Everything the dead worker wrote is still in its ring: read it all before reporting the exit.
    const output = this.#options.output;
    if (output) output.drainDead(output.link(slot.index), slot.reader);
    else this.#read(slot, Infinity, true);
    const killed = slot.terminateReason !== null;
    const reason = slot.terminateReason ?? (slot.errorCode === 'ERR_WORKER_OUT_OF_MEMORY' ? 'out_of_memory' : 'worker_exit');
    slot.terminateReason = null;
    slot.errorCode = null;
    slot.restarts++;
    for (const [id, pending] of this.#completions) if (pending.slot === slot) this.#answer(id, null);
    // What was queued for the dead worker meant its contexts: the new worker starts them again, empty.
    slot.outbox = [];
    slot.ring = createRing();
    slot.reader = new RingReader(slot.ring);
    slot.stalled = false;
    slot.online = false;
    // Its fd closed with it: the next worker's requests are relayed.
    slot.requestFd = undefined;
    slot.generation++;
    slot.worker = this.#spawn(slot);
    const placedBy = this.#options.placedBy;
    if (placedBy) return placedBy.onSlotLost(slot.index, slot.generation, reason, killed);
    const lost = [...slot.sessions];
    for (const sessionId of lost) this.#send(slot, { t: 'open', sid: sessionId });
    this.#listener.onLost(lost, reason, killed);
  }
}

function emptyCompletion(cursor: number): Completion {
  return { matches: [], start: cursor, end: cursor };
}
