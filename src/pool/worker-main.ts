/**
 * The worker thread: hosts the vm contexts of the sessions placed on it and streams their output
 * through a shared-memory ring, to the main thread or (in a sandbox process) to the fd the process
 * writes to the server. It opens nothing, neither files nor the network; run-file code arrives
 * already read by the main thread.
 */
import net from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { SessionContext, type RunOutput, type RunStatus } from '../sandbox/session-context.js';
import { ItemKind, type FromWorker, type ToWorker, type WorkerBootData } from './messages.js';
import { RingReader, RingWriter } from './output-ring.js';
import { RunOutputs } from './run-output.js';
import { SpareContexts } from './spare-context.js';
import { WorkerOutput } from './shared-output.js';
import { pokeStuckWatch } from './stuck-watch.js';
import { FrameReader, MAX_SERVER_FRAME_BYTES } from './pipe-frames.js';

/** In a sandbox process: ring bytes (~300 short lines) that a run printing without yielding gets written out (see wake). */
const HELP_AT_BYTES = 16 * 1024;
const port = parentPort!;
const { limits, ring, output: link, stuck, requests } = workerData as WorkerBootData;
const stuckWord = stuck && new Int32Array(stuck);
const sessions = new Map<string, SessionContext>();
const running = new Map<string, SessionContext>();
/** Session rebuilds under way: their re-runs are runs too, though not in `running` (nothing aborts them). */
let rebuilds = 0;
const contexts = new SpareContexts(() => new SessionContext(limits), () => running.size > 0 || rebuilds > 0);
// Output goes straight to shared memory, where the main thread reads it even while this thread is
// stuck in a user's loop (output-ring.ts). In a sandbox process, this thread also writes it out
// itself once per turn of its event loop (shared-output.ts); a loop that prints without yielding
// has its first lines written by this thread too, then the main thread's help (see wake).
// A record landing in an empty ring wakes the main thread's check for stuck rings (stuck-watch.ts),
// in case this thread gets stuck before it writes the record out itself.
const output = new RingWriter(ring, wake, {
  wakeAtBytes: link === undefined ? 0 : HELP_AT_BYTES,
  ...(stuckWord ? { filled: () => pokeStuckWatch(stuckWord) } : {}),
});
const selfOutput = link && new WorkerOutput(link, new RingReader(ring));
const outputs = new RunOutputs(output, written);
let flushQueued = false;
/** In a sandbox process, the run started last has not had its ring written out for it yet: see wake. */
let firstHelp = false;
/** True while a run's synchronous part runs (`context.start`): see written. */
let starting = false;

function flushOutput(): void {
  flushQueued = false;
  selfOutput!.flush();
}

/**
 * A run printing without yielding needs its ring written out for it. The first time, this thread
 * writes it itself (when it can at once): its first lines then leave without waiting for the
 * process's main thread to wake, which took 1.5–17 ms on a busy machine (traced: the most of a
 * 100 000-line run's first event). Later the main thread writes while this one goes on printing.
 */
function wake(): void {
  if (firstHelp) {
    firstHelp = false;
    if (selfOutput!.tryFlush()) return;
  }
  post({ t: 'out' });
}

function post(message: FromWorker): void {
  port.postMessage(message);
}

/** A record landed in the ring: in a sandbox process, this thread writes it out at the end of the turn. */
function written(): void {
  if (selfOutput && !flushQueued) {
    flushQueued = true;
    // At the end of this turn's check phase, not of this task: the runs a message started end in
    // immediates of one phase (session-context.ts), and their records then leave in one write.
    // Records a run wrote while it started (a trivial run's value) wait for the phase after that
    // one, in which the `done` of a run that ended at once is written: one write, one commit of
    // the whole run on the server, instead of its value and its end apart.
    if (starting) setImmediate(() => setImmediate(flushOutput));
    else setImmediate(flushOutput);
  }
}

function ended(xid: string): void {
  running.delete(xid);
  contexts.touch();
}

const SILENT: Omit<RunOutput, 'done'> = { console() {}, value() {}, exception() {} };

/** Re-runs a session's completed inputs, in order and silently, into a fresh context; no spare is made meanwhile. */
async function restore(sid: string, inputs: Extract<ToWorker, { t: 'restore' }>['inputs']): Promise<void> {
  rebuilds++;
  try {
    await rebuild(sid, inputs);
  } finally {
    rebuilds--;
    contexts.touch();
  }
}

async function rebuild(sid: string, inputs: Extract<ToWorker, { t: 'restore' }>['inputs']): Promise<void> {
  // Replaces the empty context the session was (re)opened with.
  sessions.get(sid)?.dispose();
  const context = new SessionContext(limits);
  sessions.set(sid, context);
  for (let index = 0; index < inputs.length; index++) {
    const input = inputs[index]!;
    // Timers fire without waiting while restoring (in their order): the rebuild does not wait out the inputs' delays again.
    const status = await new Promise<RunStatus>((resolve) => context.start(input.kind, input.code, input.filename, { ...SILENT, done: resolve }, { restoring: true }));
    // An input that threw the first time may throw again; one that succeeded must succeed again,
    // and none may have to be stopped.
    if (status !== 'ok' && !(status === 'error' && input.ended === 'error')) {
      post({ t: 'restored', sid, ok: false, replayed: index, reason: `input ${index + 1} of ${inputs.length} ended with ${status}` });
      return;
    }
    post({ t: 'restoring', sid, replayed: index + 1, inputs: inputs.length });
  }
  post({ t: 'restored', sid, ok: true, replayed: inputs.length });
}

port.on('message', (messages: ToWorker[]) => {
  for (const message of messages) handle(message);
});

/** The server's requests, read from the fd it writes them to (sandbox-process/messages.ts's REQUEST_FD). */
function readRequests(fd: number): void {
  const reader = new FrameReader(MAX_SERVER_FRAME_BYTES);
  const socket = new net.Socket({ fd, readable: true, writable: false });
  socket.on('data', (chunk: Buffer) => {
    for (const message of reader.push(chunk)) handle(message as ToWorker);
  });
  // The server is gone: the process's main thread ends everything.
  socket.on('error', () => {});
}

if (requests !== undefined) readRequests(requests);

function handle(message: ToWorker): void {
  contexts.touch();
  switch (message.t) {
    case 'open':
      sessions.set(message.sid, contexts.take());
      break;
    case 'close':
      sessions.get(message.sid)?.dispose();
      sessions.delete(message.sid);
      break;
    case 'run': {
      const context = sessions.get(message.sid);
      if (!context) {
        outputs.push(message.xid, ItemKind.Exception, 'Error', 'session context is gone', '');
        outputs.push(message.xid, ItemKind.Done, 'error', 0, 0);
        break;
      }
      running.set(message.xid, context);
      firstHelp = selfOutput !== undefined;
      starting = true;
      try {
        context.start(message.kind, message.code, message.filename, outputs.for(message.xid, ended));
      } finally {
        starting = false;
      }
      break;
    }
    case 'restore':
      void restore(message.sid, message.inputs);
      break;
    case 'abort': {
      // Heard a turn later, once the microtasks queued before it have drained: an abort that
      // arrived in the same message as its run would otherwise end the run before its first
      // microtask, and the run (an endless `await` chain) would then hold this thread with its
      // execution reported over, so that no watchdog would ever end it. A thread held by such a
      // chain never reaches this turn, and is terminated by the main thread at the hard timeout.
      const { xid, status } = message;
      setImmediate(() => running.get(xid)?.abort(status));
      break;
    }
    case 'complete': {
      const completion = sessions.get(message.sid)?.complete(message.code, message.cursor) ?? { matches: [], start: message.cursor, end: message.cursor };
      post({ t: 'completion', id: message.id, completion });
      break;
    }
  }
}

// A promise the user's code rejected and never handled belongs to the sandbox, not to this thread:
// without this listener Node would end the worker, and with it every session it holds.
process.on('unhandledRejection', () => {});
