/**
 * The server's end of one sandbox process: starts it (confinement.ts's command, an empty
 * environment), writes it one frame of requests per turn (on stdin, or on a worker slot's own
 * pipe: messages.ts's REQUEST_FD), reads its frames, and reports its end
 * once everything it wrote before dying has been read. What it writes is untrusted: a frame that
 * is too big or malformed, or a message of no known shape, ends the process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { FrameReader, FrameWriter } from '../pool/pipe-frames.js';
import type { SandboxOutput } from '../sandbox/sandbox.js';
import { fromHostReader, OUTPUT_FD, REQUEST_FD, type FromHost, type HostBoot, type ToHost } from './messages.js';
import type { ToWorker } from '../pool/messages.js';
import type { LaunchCommand } from './confinement.js';

/** Larger than any honest batch (a turn's records at their size limits), small beside the server's heap. */
const MAX_FRAME_BYTES = 64 * 1024 * 1024;
/** The end of its stderr kept to tell why it died ("Reached heap limit", an abort's message). */
const STDERR_TAIL_CHARS = 4096;
/**
 * Output bytes taken in per turn of the event loop; past them, reading waits for the next turn. A
 * pipe that a busy process keeps full is otherwise read chunk after chunk in one go (libuv reads
 * up to 32 × 64 KiB before it looks at anything else), and the store's answer to a commit, the one
 * that lets an execution's first line out, waited behind all of them (measured: 50–60 ms).
 */
const READ_BYTES_PER_TURN = 128 * 1024;
/** How long a process asked to end (its stdin closed) gets before it is killed. */
const END_GRACE_MS = 2000;
/** V8's words for a fatal out-of-memory: a heap past its limit, or address space refused under RLIMIT_AS. */
const OUT_OF_MEMORY = /Reached heap limit|out of memory|Allocation failed|Fatal process OOM/i;

export interface HostEvents {
  /** A well-formed message; the caller still checks what it speaks of. */
  onMessage(host: HostProcess, message: FromHost): void;
  /** A well-formed output record (an `out` message without its wrapper); the caller still checks whose it is. */
  onOutput(host: HostProcess, output: SandboxOutput): void;
  /** Asked after each chunk read: when false, reading stops until `resume`. */
  acceptingOutput(): boolean;
  /** The process is gone and all it wrote has been delivered; `reason` as in onLost. */
  onExit(host: HostProcess, reason: string, killed: boolean, detail: string): void;
}

export class HostProcess {
  readonly tenant: string;
  readonly #child: ChildProcess;
  readonly #input: Writable;
  readonly #output: Readable;
  readonly #writer: FrameWriter<ToHost>;
  /** Each worker slot's request pipe, while its first worker lives (null after: `closeSlot`). */
  readonly #slots: (FrameWriter<ToWorker> | null)[];
  readonly #slotPipes: Writable[];
  readonly #reader = new FrameReader(MAX_FRAME_BYTES);
  /** Each message, checked, to the events; a console record from its bytes to `onOutput`, unwrapped. */
  // Once it has broken the protocol (a forged output, say), nothing more of the chunk is handed on.
  readonly #visitor = fromHostReader({
    output: (output) => {
      if (this.#violation === null) this.#events.onOutput(this, output);
    },
    message: (message) => {
      if (this.#violation === null) this.#events.onMessage(this, message);
    },
  });
  readonly #events: HostEvents;
  #stderrTail = '';
  #paused = false;
  /** Output bytes read in this turn of the event loop, and whether reading waits for the next one. */
  #turnBytes = 0;
  #yielded = false;
  /** Why we killed it, when we did. */
  #killReason: string | null = null;
  #killedRuns = true;
  #violation: string | null = null;
  #exit = '';
  online = false;

  constructor(command: LaunchCommand, tenant: string, boot: HostBoot, events: HostEvents) {
    this.tenant = tenant;
    this.#events = events;
    const slotPipes = Array.from({ length: boot.workers }, () => 'pipe' as const);
    this.#child = spawn(command.file, command.args, { env: {}, stdio: ['pipe', 'ignore', 'pipe', 'pipe', ...slotPipes] });
    this.#input = this.#child.stdin!;
    this.#output = this.#child.stdio[OUTPUT_FD] as Readable;
    this.#writer = new FrameWriter(this.#input);
    this.#slotPipes = slotPipes.map((_, slot) => {
      const pipe = this.#child.stdio[REQUEST_FD + slot] as Readable & Writable;
      // Nothing comes back on it; flowing, it sees the process's end (and so lets 'close' come).
      pipe.on('error', () => {}).resume();
      return pipe;
    });
    this.#slots = this.#slotPipes.map((pipe) => new FrameWriter(pipe));
    // A dead process's pipe refuses writes: its end is reported by 'close', not by these.
    this.#input.on('error', () => {});
    this.#output.on('data', (chunk: Buffer) => this.#read(chunk));
    this.#child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      this.#stderrTail = (this.#stderrTail + text).slice(-STDERR_TAIL_CHARS);
    });
    this.#child.on('error', (error) => {
      this.#exit = error.message;
    });
    this.#child.on('exit', (code, signal) => {
      this.#exit ||= signal ? `signal ${signal}` : `exit ${code}`;
    });
    this.#child.on('close', () => this.#closed());
    this.#writer.push(boot);
  }

  /** The outermost process started (prlimit, setpriv, unshare or bwrap exec or fork Node from it). */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  send(message: ToHost): void {
    this.#writer.push(message);
  }

  /** Writes a request to the pipe of `slot`'s first worker; false when that worker is gone (relay it instead). */
  sendTo(slot: number, message: ToWorker): boolean {
    const writer = this.#slots[slot];
    if (!writer) return false;
    writer.push(message);
    return true;
  }

  /** The slot's first worker is gone, and its pipe with it: what was not read yet meant its contexts. */
  closeSlot(slot: number): void {
    this.#slots[slot] = null;
    this.#slotPipes[slot]?.destroy();
  }

  /** Reads again after `acceptingOutput` said no. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (!this.#yielded) this.#output.resume();
  }

  /**
   * Ends it now (SIGKILL): reported as `reason`, and as killed (the runs it held were collateral of
   * a stop) unless `killed` is false (they end as crashed, with `reason`).
   */
  kill(reason: string, killed = true): void {
    this.#killReason ??= reason;
    this.#killedRuns &&= killed;
    this.#child.kill('SIGKILL');
  }

  /** Asks it to end (its stdin closes; it shuts its pool down and exits), killing it if it does not. */
  end(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), END_GRACE_MS);
      this.#child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.#writer.flush();
      this.#input.end();
    });
  }

  #read(chunk: Buffer): void {
    if (this.#violation !== null) return;
    try {
      this.#reader.read(chunk, this.#visitor);
    } catch (error) {
      this.violated((error as Error).message);
      return;
    }
    if (!this.#events.acceptingOutput()) {
      this.#paused = true;
      this.#output.pause();
    }
    if (this.#turnBytes === 0) setImmediate(() => this.#nextTurn());
    this.#turnBytes += chunk.length;
    if (this.#turnBytes >= READ_BYTES_PER_TURN && !this.#yielded) {
      this.#yielded = true;
      this.#output.pause();
    }
  }

  #nextTurn(): void {
    this.#turnBytes = 0;
    if (!this.#yielded) return;
    this.#yielded = false;
    if (!this.#paused) this.#output.resume();
  }

  /** It broke the protocol (a message about what is not its own, a malformed frame): it is ended. */
  violated(what: string): void {
    this.#violation ??= what;
    this.kill('sandbox_exit');
    // Nothing more it wrote is read, and a paused pipe must not hold its 'close' back.
    this.#output.removeAllListeners('data');
    this.#output.resume();
  }

  #closed(): void {
    const killed = this.#killReason !== null && this.#killedRuns && this.#violation === null;
    const reason = this.#killReason ?? (OUT_OF_MEMORY.test(this.#stderrTail) ? 'out_of_memory' : 'sandbox_exit');
    const detail = [this.#exit, this.#violation && `protocol violation: ${this.#violation}`, this.#stderrTail.trim().slice(-1000)].filter(Boolean).join('; ');
    this.#events.onExit(this, reason, killed, detail);
  }
}
