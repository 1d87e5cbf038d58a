/**
 * Unit bench of one pool worker (dist/src/pool/worker-main.js) without the rest of the server: how
 * many executions per second a worker thread runs when the main thread costs nothing, and (with
 * --profile DIR) where the worker's time goes. The server's pool gives its workers fixed execArgv,
 * so `npm run bench -- --profile` cannot profile them; this can.
 *
 *   node dist/bench/units/worker-run.js [--sessions 64] [--seconds 5] [--code '1 + 1'] [--profile DIR]
 *
 * The main side here does what the pool does with the output (read the ring, decode each record,
 * start the session's next run, batched per tick) and nothing else: no store, no encoding, no sockets.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { Packr } from 'msgpackr';
import type { FromWorker, OutputItem, ToWorker, WorkerBootData } from '../../src/pool/messages.js';
import { createRing, RingReader } from '../../src/pool/output-ring.js';
import { formatProfile, summarizeProfile } from '../harness/cpuprofile.js';

/** ItemKind.Done of src/pool/messages.ts (a const enum: not importable at run time). */
const DONE = 3;
/** What the pool decodes ring records with (worker-pool.ts). */
const packr = new Packr({ useRecords: false });

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

const ring = createRing();
const reader = new RingReader(ring);
const boot: WorkerBootData = { limits: { maxText: 65_536, maxPreview: 16_384 }, ring };
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
const READ_PER_TURN = 4096;

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

function onRecord(record: Uint8Array): void {
  const [xid, kind] = packr.unpack(record) as OutputItem;
  if (kind !== DONE) return;
  done++;
  const sid = sessionOf.get(xid)!;
  sessionOf.delete(xid);
  if (measuring || done < 1_000) run(sid);
}

/** As the pool does: a bounded number of records per turn, the rest on the next one. */
function read(): void {
  if (reader.read(READ_PER_TURN, onRecord)) setImmediate(read);
}

worker.on('message', (message: FromWorker) => {
  if (message.t === 'out') read();
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
