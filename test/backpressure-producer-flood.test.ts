/**
 * The other side of backpressure: code that produces output faster than the server can take it in.
 * With the default output limits, an endless loop of large console lines must be cut and stopped
 * (done {status: "error", reason: "output_limit"}) without the server's memory following the
 * flood: whatever the worker produces past the cut is dropped, not queued up in the server.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import type { EventFrame } from '../protocol/types.js';
import { removeDir, startServer } from './helpers/server.js';
import { clientFor } from './helpers/util.js';
import { runRepl } from './helpers/loose.js';

/** A generous bound on the server's peak RSS (main thread, workers, LevelDB together). */
const PEAK_RSS_LIMIT_MB = 600;
/** Long lines (under the default 65 536-character cut) make a flood in few events. */
const LINE_CHARS = 60_000;
/** A guard for the test run, not a performance bound: the stop is due within moments of the cut. */
const END_GUARD_MS = 45_000;

function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]);
}

t.test('an endless loop of long console lines, default limits: cut, stopped, memory bounded', async (t) => {
  const server = await startServer({ env: { VMSTREAM_WORKERS: '2' } });
  // kill -9 at the end: a server still chewing on a flood may not hear SIGTERM soon.
  t.teardown(async () => {
    await server.kill();
    removeDir(server.dataDir);
    removeDir(server.workspaceDir);
  });
  const pid = server.process.pid!;
  const client = await clientFor(t, server);
  const pinger = await clientFor(t, server);
  const flood = await client.createSession('flood');
  const bystander = await client.createSession('bystander');
  await runRepl(client, bystander, "let calm = 'calm'");
  const baselineKb = statusKb(pid, 'VmRSS');

  const reply = await client.expect('execution', {
    op: 'execute', session_id: flood, kind: 'repl', code: `const pad = 'p'.repeat(${LINE_CHARS}); for (;;) console.log(pad)`,
  });
  const id = reply.execution.execution_id as string;
  let ended = false;
  const done = client.untilDone(id, END_GUARD_MS).then((events) => events as Array<EventFrame & { payload: any }>, () => null).finally(() => (ended = true));
  let pongs = 0;
  let unanswered = 0;
  let slowestPingMs = 0;
  while (!ended) {
    const sent = performance.now();
    const pong = await Promise.race([pinger.request({ op: 'ping' }).catch(() => 'unanswered' as const), done.then(() => null)]);
    if (pong === 'unanswered') unanswered++;
    else if (pong?.op === 'pong') pongs++;
    slowestPingMs = Math.max(slowestPingMs, performance.now() - sent);
    await new Promise((resolve) => setTimeout(resolve, 50)); // pacing only
  }
  const events = await done;
  const hwmKb = statusKb(pid, 'VmHWM');
  t.comment(`${events?.length} events; server RSS baseline ${(baselineKb / 1024).toFixed(0)} MB, VmHWM ${(hwmKb / 1024).toFixed(0)} MB; ${pongs} pings answered meanwhile, slowest ${slowestPingMs.toFixed(0)} ms`);
  t.equal(unanswered, 0, 'another socket\'s pings are answered meanwhile (none waited past the client\'s 20 s limit)');
  t.ok(hwmKb / 1024 < PEAK_RSS_LIMIT_MB, `peak RSS ${(hwmKb / 1024).toFixed(0)} MB < ${PEAK_RSS_LIMIT_MB} MB`);
  if (!events) {
    t.fail(`the execution did not end within ${END_GUARD_MS / 1000} s of starting, though it passes its output limit at once`);
    return;
  }
  const last = events[events.length - 1]!;
  t.equal(last.payload.status, 'error');
  t.equal(last.payload.reason, 'output_limit');
  t.ok(events.filter((e) => e.type === 'console').every((e) => e.payload.text.length === LINE_CHARS || /output limit/.test(e.payload.text)));

  t.equal(server.process.exitCode, null, 'the server is still up');
  const after = await runRepl(client, bystander, 'calm');
  t.equal(after.events.find((e) => e.type === 'value')?.payload.preview, "'calm'", 'other sessions carry on');
  const again = await runRepl(client, flood, '1 + 1');
  t.equal(again.done.payload.status, 'ok', 'the flooding session runs again');
});
