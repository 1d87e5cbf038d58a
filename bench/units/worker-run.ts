/**
 * Unit bench of one pool worker (dist/src/pool/worker-main.js) without the rest of the server: how
 * many executions per second a worker thread runs when the main thread costs nothing, and (with
 * --profile DIR) where the worker's time goes. The server's pool gives its workers fixed execArgv,
 * so `npm run bench -- --profile` cannot profile them; this can.
 *
 *   node dist/bench/units/worker-run.js [--sessions 64] [--seconds 5] [--code '1 + 1'] [--profile DIR]
 *
 * The main side here does what the pool does per message (credit back, next run batched per tick)
 * and nothing else: no store, no encoding, no sockets.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import type { FromWorker, ToWorker, WorkerBootData } from '../../src/pool/messages.js';
import { formatProfile, summarizeProfile } from '../harness/cpuprofile.js';

/** ItemKind.Done and ITEM_WIDTH of src/pool/messages.ts (a const enum: not importable at run time). */
const DONE = 3;
const ITEM_WIDTH = 6;

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '64' },
    seconds: { type: 'string', default: '5' },
    code: { type: 'string', default: '1 + 1' },
    profile: { type: 'string' },
  },
});
const sessions = Number(values.sessions);
const seconds = Number(values.seconds);
const profileDir = values.profile ? resolve(values.profile) : null;
if (profileDir) mkdirSync(profileDir, { recursive: true });

const inFlight = new Int32Array(new SharedArrayBuffer(4));
const boot: WorkerBootData = { limits: { maxText: 65_536, maxPreview: 16_384 }, inFlight: inFlight.buffer as SharedArrayBuffer };
const worker = new Worker(new URL('../../src/pool/worker-main.js', import.meta.url), {
  workerData: boot,
  env: {},
  execArgv: ['--experimental-vm-modules', '--no-warnings', ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', 'worker.cpuprofile'] : [])],
  stdout: false,
  stderr: false,
});

let outbox: ToWorker[] = [];
let next = 0;
let done = 0;
let doneAtStart = 0;
let measuring = false;
const sessionOf = new Map<string, string>();

function send(message: ToWorker): void {
  if (outbox.push(message) === 1) setImmediate(flush);
}
function flush(): void {
  const messages = outbox;
  outbox = [];
  worker.postMessage(messages);
}
function run(sid: string): void {
  const xid = `x${++next}`;
  sessionOf.set(xid, sid);
  send({ t: 'run', sid, xid, kind: 'repl', code: values.code!, filename: `REPL${next}` });
}

worker.on('message', (message: FromWorker) => {
  if (message.t !== 'out') return;
  const items = message.items;
  for (let i = 0; i < items.length; i += ITEM_WIDTH) {
    if (items[i + 1] !== DONE) continue;
    done++;
    const xid = items[i] as string;
    const sid = sessionOf.get(xid)!;
    sessionOf.delete(xid);
    if (measuring || done < 1_000) run(sid);
  }
  Atomics.sub(inFlight, 0, items.length / ITEM_WIDTH);
  Atomics.notify(inFlight, 0);
});

for (let s = 0; s < sessions; s++) send({ t: 'open', sid: `s${s}` });
for (let s = 0; s < sessions; s++) run(`s${s}`);
measuring = true;
await new Promise((r) => setTimeout(r, 1_000)); // warm-up
doneAtStart = done;
const t0 = performance.now();
await new Promise((r) => setTimeout(r, seconds * 1000));
const rate = (done - doneAtStart) / ((performance.now() - t0) / 1000);
measuring = false;
process.stdout.write(`worker: ${sessions} sessions, ${JSON.stringify(values.code)}: ${Math.round(rate).toLocaleString('en-US')} executions/s (${(1e6 / rate).toFixed(1)} µs each)\n`);
if (profileDir) {
  // The worker writes its profile when it exits normally; terminate() would lose it.
  worker.postMessage([]);
  process.exitCode = 0;
  await new Promise((r) => setTimeout(r, 200));
  worker.unref();
  await worker.terminate().catch(() => {});
  const file = `${profileDir}/worker.cpuprofile`;
  try {
    process.stdout.write(`${formatProfile(file, summarizeProfile(file))}\n`);
  } catch (error) {
    process.stdout.write(`no worker profile (${(error as Error).message})\n`);
  }
} else {
  await worker.terminate();
}
