/**
 * Unit bench of one pool worker (dist/src/pool/worker-main.js) without the rest of the server: how
 * many executions per second a worker thread runs when the main thread costs nothing, and (with
 * --profile DIR) where the worker's time goes. The server's pool gives its workers fixed execArgv,
 * so `npm run bench -- --profile` cannot profile them; this can.
 *
 *   node dist/bench/units/worker-run.js [--sessions 64] [--seconds 5] [--code '1 + 1'] [--profile DIR]
 *
 * The main side is the server's own WorkerPool (one worker), listened to by a loop that starts each
 * session's next run when the last one is done, and nothing else: no store, no encoding, no sockets.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { DEFAULTS } from '../../src/config.js';
import { WorkerPool } from '../../src/pool/worker-pool.js';
import { formatProfile, summarizeProfile } from '../harness/cpuprofile.js';

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

let next = 0;
let done = 0;
let doneAtStart = 0;
let measuring = false;
const sessionOf = new Map<string, string>();

const pool = new WorkerPool({
  size: 1,
  heapMb: DEFAULTS.workerHeapMb,
  limits: { maxText: DEFAULTS.maxTextChars, maxPreview: DEFAULTS.maxPreviewChars },
  extraExecArgv: profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', 'worker.cpuprofile'] : [],
}, {
  onOutput(output) {
    if (output.kind !== 'done') return;
    done++;
    const sid = sessionOf.get(output.executionId)!;
    sessionOf.delete(output.executionId);
    if (measuring || done < 1_000) run(sid);
  },
  acceptingOutput: () => true,
  onRestored() {},
  onLost(_sessions, reason) {
    process.stderr.write(`the worker was lost (${reason})\n`);
    process.exit(1);
  },
});

function run(sid: string): void {
  const xid = `x${++next}`;
  sessionOf.set(xid, sid);
  pool.run({ sessionId: sid, executionId: xid, kind: 'repl', code: values.code!, filename: `REPL${next}` });
}

for (let s = 0; s < sessions; s++) pool.open({ sessionId: `s${s}`, tenant: 'bench' });
for (let s = 0; s < sessions; s++) run(`s${s}`);
measuring = true;
await new Promise((r) => setTimeout(r, 1_000)); // warm-up
doneAtStart = done;
const t0 = performance.now();
await new Promise((r) => setTimeout(r, seconds * 1000));
const rate = (done - doneAtStart) / ((performance.now() - t0) / 1000);
measuring = false;
process.stdout.write(`worker: ${sessions} sessions, ${JSON.stringify(values.code)}: ${Math.round(rate).toLocaleString('en-US')} executions/s (${(1e6 / rate).toFixed(1)} µs each)\n`);
await pool.shutdown();
if (profileDir) {
  const file = `${profileDir}/worker.cpuprofile`;
  try {
    process.stdout.write(`${formatProfile(file, summarizeProfile(file))}\n`);
  } catch (error) {
    process.stdout.write(`no worker profile (${(error as Error).message})\n`);
  }
}
