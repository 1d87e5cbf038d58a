/**
 * A fixed number of worker threads, each in a slot that outlives it: when a worker dies (it was
 * terminated for a runaway, ran out of memory, crashed) the slot reports why and starts a new one,
 * and the sessions placed on the slot are rebuilt by the layer above. The pool knows threads and
 * messages only; what an execution or a session is, it leaves to sessions/.
 */
import { Worker } from 'node:worker_threads';
import { Packr } from 'msgpackr';
import type { SandboxLimits } from '../sandbox/sandbox.js';
import type { FromWorker, OutputItem, ToWorker, WorkerBootData } from './messages.js';
import { createRing, RingReader } from './output-ring.js';

export interface PoolOptions {
  size: number;
  limits: SandboxLimits;
  /** Old-generation heap per worker, in MiB: past it V8 ends the worker, not the server. */
  heapMb: number;
}

export interface PoolListener {
  /** One output record of a worker, in the order the worker wrote them. */
  onOutput(slot: number, item: OutputItem): void;
  /**
   * Whether to read more output now. When it says no, the rings fill and their workers wait, until
   * `resumeOutput`: the end of the backpressure chain from storage back to the code that prints.
   */
  acceptingOutput(): boolean;
  onMessage(slot: number, message: Exclude<FromWorker, { t: 'out' }>): void;
  /**
   * The worker of `slot` is gone; `reason` says why, and `terminated` whether we ended it (to stop
   * a run) rather than it crashing. A new one is already starting.
   */
  onWorkerExit(slot: number, reason: string, terminated: boolean): void;
}

const WORKER_URL = new URL('./worker-main.js', import.meta.url);
/** Records read per turn of the event loop, so timers (the watchdog among them) still get theirs. */
const READ_PER_TURN = 4096;
const packr = new Packr({ useRecords: false });

interface Slot {
  worker: Worker;
  /** The worker's output ring (output-ring.ts); a new worker gets a new one. */
  ring: SharedArrayBuffer;
  reader: RingReader;
  reading: boolean;
  /** Reading stopped because the listener was not accepting output. */
  stalled: boolean;
  /** Messages of this tick, posted together: one structured clone instead of one per message. */
  outbox: ToWorker[];
  /** Why we terminated it, when we did; otherwise the exit is a crash. */
  terminateReason: string | null;
  errorCode: string | null;
  sessions: number;
  restarts: number;
  /** The thread has started (its 'online' event): for readiness. */
  online: boolean;
}

export class WorkerPool {
  readonly #options: PoolOptions;
  readonly #listener: PoolListener;
  readonly #slots: Slot[] = [];
  #closing = false;

  constructor(options: PoolOptions, listener: PoolListener) {
    this.#options = options;
    this.#listener = listener;
    for (let index = 0; index < options.size; index++) {
      const ring = createRing();
      this.#slots.push({
        worker: this.#spawn(index, ring), ring, reader: new RingReader(ring), reading: false, stalled: false,
        outbox: [], terminateReason: null, errorCode: null, sessions: 0, restarts: 0, online: false,
      });
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

  /** The slot with the fewest sessions, for a new session. */
  place(): number {
    let best = 0;
    for (let index = 1; index < this.#slots.length; index++) {
      if (this.#slots[index]!.sessions < this.#slots[best]!.sessions) best = index;
    }
    this.#slots[best]!.sessions++;
    return best;
  }

  release(slot: number): void {
    this.#slots[slot]!.sessions--;
  }

  send(slot: number, message: ToWorker): void {
    const state = this.#slots[slot]!;
    if (state.outbox.push(message) === 1) setImmediate(() => this.#flush(state));
  }

  #flush(slot: Slot): void {
    const messages = slot.outbox;
    if (messages.length === 0) return;
    slot.outbox = [];
    slot.worker.postMessage(messages);
  }

  /** Ends a worker that cannot be stopped any other way; its exit is reported with `reason`. */
  terminate(slot: number, reason: string): void {
    const state = this.#slots[slot]!;
    if (state.terminateReason !== null) return;
    state.terminateReason = reason;
    void state.worker.terminate();
  }

  async close(): Promise<void> {
    this.#closing = true;
    await Promise.all(this.#slots.map((slot) => slot.worker.terminate()));
  }

  #spawn(index: number, ring: SharedArrayBuffer): Worker {
    const boot: WorkerBootData = { limits: this.#options.limits, ring };
    const worker = new Worker(WORKER_URL, {
      workerData: boot,
      // Nothing of the server's environment or arguments reaches the thread that runs user code.
      env: {},
      argv: [],
      // Lets sandbox/session-context.ts refuse import() with an error of the context's own realm.
      execArgv: ['--experimental-vm-modules', '--no-warnings'],
      stdout: false,
      stderr: false,
      resourceLimits: { maxOldGenerationSizeMb: this.#options.heapMb, maxYoungGenerationSizeMb: 32, stackSizeMb: 4 },
    });
    worker.on('message', (message: FromWorker) => {
      const slot = this.#slots[index];
      if (message.t === 'out') {
        if (slot && slot.worker === worker) this.#read(index, slot, READ_PER_TURN);
      } else {
        this.#listener.onMessage(index, message);
      }
    });
    worker.once('online', () => {
      const slot = this.#slots[index];
      if (slot && slot.worker === worker) slot.online = true;
    });
    worker.on('error', (error: Error & { code?: string }) => {
      const slot = this.#slots[index];
      if (slot && slot.worker === worker) slot.errorCode = error.code ?? error.name;
    });
    worker.on('exit', () => this.#onExit(index, worker));
    return worker;
  }

  /** Reads output again after the listener said it was not accepting any. */
  resumeOutput(): void {
    this.#slots.forEach((slot, index) => {
      if (!slot.stalled) return;
      slot.stalled = false;
      this.#read(index, slot, READ_PER_TURN);
    });
  }

  /** Hands the ring's records to the listener, a bounded number per turn of the event loop. */
  #read(index: number, slot: Slot, limit: number, force = false): void {
    if (slot.reading) return;
    if (!force && !this.#listener.acceptingOutput()) {
      slot.stalled = true;
      return;
    }
    slot.reading = true;
    let more: boolean;
    try {
      more = slot.reader.read(limit, (record) => this.#listener.onOutput(index, packr.unpack(record) as OutputItem));
    } finally {
      slot.reading = false;
    }
    if (more) setImmediate(() => this.#read(index, slot, READ_PER_TURN));
  }

  #onExit(index: number, worker: Worker): void {
    const slot = this.#slots[index];
    if (!slot || slot.worker !== worker || this.#closing) return;
    // Everything the dead worker wrote is still in its ring: read it all before reporting the exit.
    this.#read(index, slot, Infinity, true);
    const terminated = slot.terminateReason !== null;
    const reason = slot.terminateReason ?? (slot.errorCode === 'ERR_WORKER_OUT_OF_MEMORY' ? 'out_of_memory' : 'worker_exit');
    slot.terminateReason = null;
    slot.errorCode = null;
    slot.restarts++;
    // What was queued for the dead worker meant its contexts, which the layer above rebuilds.
    slot.outbox = [];
    slot.ring = createRing();
    slot.reader = new RingReader(slot.ring);
    slot.stalled = false;
    slot.online = false;
    slot.worker = this.#spawn(index, slot.ring);
    this.#listener.onWorkerExit(index, reason, terminated);
  }
}
