/**
 * The worker thread: hosts the vm contexts of the sessions placed on it and streams their output
 * to the main thread in batches. It never touches the file system or the network; run-file code
 * arrives already read by the main thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SessionContext, type RunOutput, type RunStatus } from '../sandbox/session-context.js';
import { ITEM_WIDTH, ItemKind, OUTPUT_CREDIT, type FromWorker, type OutputItems, type ToWorker, type WorkerBootData } from './messages.js';

/**
 * Flush when this many items wait, or when the oldest waited this long: a synchronous loop never
 * yields to setImmediate. And console output that finds the batch empty, after a quiet
 * millisecond, goes at once: a line printed just before a synchronous loop would otherwise wait
 * for a flush that never comes, and be lost when the stuck worker is terminated.
 */
const FLUSH_ITEMS = 512;
const FLUSH_AGE_MS = 4;
const QUIET_MS = 1;

const port = parentPort!;
const { limits, inFlight: creditBuffer } = workerData as WorkerBootData;
const inFlight = new Int32Array(creditBuffer);
/** How long one wait for credit lasts before it looks again (a notify can race the wait). */
const CREDIT_WAIT_MS = 50;
const sessions = new Map<string, SessionContext>();
const running = new Map<string, SessionContext>();

let items: OutputItems = [];
let oldestItemAt = 0;
let lastFlushAt = 0;
let flushScheduled = false;

function post(message: FromWorker): void {
  port.postMessage(message);
}

function flush(): void {
  flushScheduled = false;
  if (items.length === 0) return;
  Atomics.add(inFlight, 0, items.length / ITEM_WIDTH);
  post({ t: 'out', items });
  items = [];
  lastFlushAt = Date.now();
  waitForCredit();
}

/** Blocks this thread while the main thread is too far behind: output is slowed, never dropped. */
function waitForCredit(): void {
  for (let pending = Atomics.load(inFlight, 0); pending >= OUTPUT_CREDIT; pending = Atomics.load(inFlight, 0)) {
    Atomics.wait(inFlight, 0, pending, CREDIT_WAIT_MS);
  }
}

function push(xid: string, kind: ItemKind, a: string | number | boolean, b: string | number | boolean, c: string | number | boolean): void {
  const now = Date.now();
  const leading = items.length === 0 && kind === ItemKind.Console && now - lastFlushAt >= QUIET_MS;
  if (items.length === 0) oldestItemAt = now;
  items.push(xid, kind, now, a, b, c);
  if (leading || items.length >= FLUSH_ITEMS * ITEM_WIDTH || now - oldestItemAt >= FLUSH_AGE_MS) {
    flush();
  } else if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
}

function outputFor(xid: string): RunOutput {
  return {
    console: (level, text, truncated) => push(xid, ItemKind.Console, level, text, truncated),
    value: (type, preview) => push(xid, ItemKind.Value, type, preview, 0),
    exception: (name, message, stack) => push(xid, ItemKind.Exception, name, message, stack),
    done: (status) => {
      running.delete(xid);
      push(xid, ItemKind.Done, status, 0, 0);
    },
  };
}

const SILENT: Omit<RunOutput, 'done'> = { console() {}, value() {}, exception() {} };

/** Re-runs a session's completed inputs, in order and silently, into a fresh context. */
async function restore(sid: string, inputs: Extract<ToWorker, { t: 'restore' }>['inputs']): Promise<void> {
  const context = new SessionContext(limits);
  sessions.set(sid, context);
  for (let index = 0; index < inputs.length; index++) {
    const input = inputs[index]!;
    const status = await new Promise<RunStatus>((resolve) => context.start(input.kind, input.code, input.filename, { ...SILENT, done: resolve }));
    // An input that threw the first time may throw again; one that succeeded must succeed again,
    // and none may have to be stopped.
    if (status !== 'ok' && !(status === 'error' && input.ended === 'error')) {
      post({ t: 'restored', sid, ok: false, replayed: index, reason: `input ${index + 1} of ${inputs.length} ended with ${status}` });
      return;
    }
  }
  post({ t: 'restored', sid, ok: true, replayed: inputs.length });
}

port.on('message', (messages: ToWorker[]) => {
  for (const message of messages) handle(message);
});

function handle(message: ToWorker): void {
  switch (message.t) {
    case 'open':
      sessions.set(message.sid, new SessionContext(limits));
      break;
    case 'close':
      sessions.get(message.sid)?.dispose();
      sessions.delete(message.sid);
      break;
    case 'run': {
      const context = sessions.get(message.sid);
      if (!context) {
        push(message.xid, ItemKind.Exception, 'Error', 'session context is gone', '');
        push(message.xid, ItemKind.Done, 'error', 0, 0);
        break;
      }
      running.set(message.xid, context);
      context.start(message.kind, message.code, message.filename, outputFor(message.xid));
      break;
    }
    case 'restore':
      void restore(message.sid, message.inputs);
      break;
    case 'abort':
      running.get(message.xid)?.abort(message.status);
      break;
  }
}

// A promise the user's code rejected and never handled belongs to the sandbox, not to this thread:
// without this listener Node would end the worker, and with it every session it holds.
process.on('unhandledRejection', () => {});
