/**
 * One output fd written by every thread of a sandbox process, so that a run's output goes from its
 * worker thread straight to the server, without waking the process's main thread: that hop cost
 * each trivial run about a third of its round trip (bench/units/sandbox-run.ts).
 *
 * - A worker writes its own ring's bytes (records, each already a whole frame: output-ring.ts's
 *   `drain`) once per turn of its event loop in which it wrote output (`WorkerOutput.flush`), and
 *   once more in a run that prints without yielding, its first lines, if it can without waiting
 *   (`WorkerOutput.tryFlush`).
 * - The main thread writes its own frames (`MainOutput.send`), and drains the rings of workers that
 *   cannot: one in a loop that prints without yielding (its ring past a threshold, after its first lines: worker-main.ts),
 *   one stuck after printing (found by a periodic check), or one that died (before its sessions
 *   are reported lost, so that nothing it wrote comes after).
 *
 * A lock in shared memory keeps every frame whole: its holder writes until all it began is written.
 * The fd is non-blocking: when the pipe is full (the server is not reading) a worker tries again
 * every SLICE_MS (nothing tells it when the server reads), and the main thread's write waits in its
 * event loop. A thread waiting for the lock sleeps until it is let go (no polling). A worker
 * terminated while holding the lock leaves the rest of its frame in its ring, and the main thread
 * takes the lock over and drains that ring first. (Terminated in the instant between a write
 * returning and the ring counting it taken, it would have those bytes written twice: the server
 * then finds a broken frame and ends the process, as it ends any that breaks the protocol.)
 */
import { writeSync } from 'node:fs';
import type { Writable } from 'node:stream';
import type { RingReader } from './output-ring.js';
import { whenChanged } from './wait-async.js';

const LOCK = 0;
/** A word nobody notifies: waiting on it is a sleep that termination can interrupt. */
const NAP = 1;
const FREE = 0;
const MAIN = 1;
/** How often a worker whose write found the pipe full tries again. */
const SLICE_MS = 1;

/** What a worker needs to write to the process's output (in its workerData). */
export interface OutputLink {
  fd: number;
  lock: SharedArrayBuffer;
  /** This worker's id in the lock (never MAIN's). */
  owner: number;
}

/** Bytes of `bytes` the fd took: 0 when the pipe is full; all of them when the reader is gone (nothing is read any more). */
function writeSome(fd: number, bytes: Uint8Array): number {
  try {
    return writeSync(fd, bytes);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EAGAIN') return 0;
    return bytes.length;
  }
}

/** A worker's side: its ring, written out whole while it holds the lock. */
export class WorkerOutput {
  readonly #fd: number;
  readonly #lock: Int32Array;
  readonly #owner: number;
  readonly #ring: RingReader;
  readonly #write: (bytes: Uint8Array) => number;

  constructor(link: OutputLink, ring: RingReader) {
    this.#fd = link.fd;
    this.#lock = new Int32Array(link.lock);
    this.#owner = link.owner;
    this.#ring = ring;
    this.#write = (bytes) => writeSome(this.#fd, bytes);
  }

  /** Writes everything the ring holds, waiting for the lock and for room in the pipe. */
  flush(): void {
    if (!this.#ring.pending) return;
    this.#acquire();
    try {
      this.#writeOut();
    } finally {
      this.#release();
    }
  }

  /**
   * Writes everything the ring holds now, from inside a run that is still printing (its ring past
   * the help threshold), unless that means waiting: another thread holds the lock, or the pipe
   * takes none of it (the server has not read what came before). Then false: the main thread is to
   * be asked. A hop less for a run's first lines: asking the main thread cost them 1.5–17 ms on a
   * busy machine (traced), a write here tens of µs.
   */
  tryFlush(): boolean {
    if (Atomics.compareExchange(this.#lock, LOCK, FREE, this.#owner) !== FREE) return false;
    try {
      const span = this.#ring.span();
      if (span === null) return true;
      const taken = this.#write(span);
      if (taken === 0) return false;
      this.#ring.consume(taken);
      // Begun, maybe mid-record: the rest follows before the lock goes, as in `flush`. This thread
      // is the ring's only writer, so the ring does not grow meanwhile.
      this.#writeOut();
      return true;
    } finally {
      this.#release();
    }
  }

  /** Drains the ring to its end, waiting for room in the pipe; the lock is held. */
  #writeOut(): void {
    while (!this.#ring.drain(this.#write)) Atomics.wait(this.#lock, NAP, 0, SLICE_MS);
  }

  #release(): void {
    Atomics.store(this.#lock, LOCK, FREE);
    Atomics.notify(this.#lock, LOCK);
  }

  /** Takes the lock, sleeping while another thread holds it (woken when it is let go). */
  #acquire(): void {
    for (;;) {
      const holder = Atomics.compareExchange(this.#lock, LOCK, FREE, this.#owner);
      if (holder === FREE) return;
      // No timeout: whoever lets the lock go notifies, and terminating this thread interrupts the wait.
      Atomics.wait(this.#lock, LOCK, holder);
    }
  }
}

/** A ring job is `whole` when its writer is dead: it is drained to the end before anything after it. */
type Job = { frame: Uint8Array; done: () => void } | { ring: RingReader; whole: boolean };

/**
 * The main thread's side: its frames and the rings it drains, written in the order they were
 * asked for, each whole, through `stream` (a libuv stream on the same fd): it never blocks, and a
 * full pipe is waited out by the event loop, which writes the rest when the server reads again.
 */
export class MainOutput {
  readonly #fd: number;
  readonly #stream: Writable;
  readonly #buffer = new SharedArrayBuffer(8);
  readonly #lock = new Int32Array(this.#buffer);
  readonly #jobs: Job[] = [];
  /** A write of ours is under way (the lock is ours until it completes). */
  #writing = false;
  /** Waiting for a worker to let the lock go. */
  #waiting = false;

  constructor(fd: number, stream: Writable) {
    this.#fd = fd;
    this.#stream = stream;
  }

  /** The link for the worker `owner` (a small number, one per worker slot, never reused for another slot). */
  link(owner: number): OutputLink {
    return { fd: this.#fd, lock: this.#buffer, owner: owner + MAIN + 1 };
  }

  /** Writes `frame` whole, after everything asked for before; `done` once it is written. */
  send(frame: Uint8Array, done: () => void): void {
    this.#jobs.push({ frame, done });
    this.#pump();
  }

  /**
   * Writes what `ring` holds now, after everything asked for before. An empty ring's wake-up is
   * taken as answered (`span` clears the flag): its writer asks again when it next needs help,
   * where a flag left set would have it ask nobody, and a loop printing into a full ring would wait
   * for ever.
   */
  drain(ring: RingReader): void {
    if (this.#jobFor(ring) || ring.span() === null) return;
    this.#jobs.push({ ring, whole: false });
    this.#pump();
  }

  /**
   * A worker that will write no more (it has exited): all its ring holds is written before
   * anything asked for after this (its sessions' loss above all), and first of all if it died
   * holding the lock (the rest of its frame is in the ring).
   */
  drainDead(link: OutputLink, ring: RingReader): void {
    if (Atomics.compareExchange(this.#lock, LOCK, link.owner, MAIN) === link.owner) {
      this.#jobs.unshift({ ring, whole: true });
      // A pump waiting for the dead holder to let go (#pump's whenChanged) is woken: the lock
      // changed hands without the notify a release makes, and it would wait for ever.
      Atomics.notify(this.#lock, LOCK);
    } else {
      const queued = this.#jobFor(ring);
      if (queued) queued.whole = true;
      else this.#jobs.push({ ring, whole: true });
    }
    this.#pump();
  }

  #jobFor(ring: RingReader): Extract<Job, { ring: RingReader }> | undefined {
    return this.#jobs.find((job): job is Extract<Job, { ring: RingReader }> => 'ring' in job && job.ring === ring);
  }

  #pump(): void {
    if (this.#writing || this.#waiting) return;
    const job = this.#jobs[0];
    if (!job) return;
    const holder = Atomics.compareExchange(this.#lock, LOCK, FREE, MAIN);
    if (holder !== FREE && holder !== MAIN) {
      // A worker is writing (for long only when the pipe is full): this thread's loop carries on, and
      // pumps again when the worker lets the lock go.
      this.#waiting = true;
      whenChanged(this.#lock, LOCK, holder, () => {
        this.#waiting = false;
        this.#pump();
      });
      return;
    }
    const bytes = 'ring' in job ? job.ring.span() : job.frame;
    if (bytes === null) return this.#finish();
    this.#writing = true;
    this.#stream.write(bytes, () => {
      this.#writing = false;
      if (!('ring' in job)) {
        // Finished before its writer hears of it: `done` may send the writer's next frame at once,
        // which must find this job gone (it found it first in line and wrote it again, and the
        // writer, told of that write, took it for the next frame's: that one never left).
        this.#finish();
        return job.done();
      }
      job.ring.consume(bytes.length);
      // A piece that ended where the ring wraps may end mid-record: the rest must follow before
      // the lock goes. One that ended at the ring's head ended a record: others may write now,
      // and a ring still filling (a loop printing) is drained again after them; a dead worker's
      // is not, as nothing of it may come after what was asked for after it.
      if (job.whole || job.ring.atWrap(bytes)) return this.#pump();
      this.#finish();
      this.drain(job.ring);
    });
  }

  /** The first job is done: the lock goes back, and the next job is taken up. */
  #finish(): void {
    this.#jobs.shift();
    Atomics.store(this.#lock, LOCK, FREE);
    Atomics.notify(this.#lock, LOCK);
    this.#pump();
  }
}
