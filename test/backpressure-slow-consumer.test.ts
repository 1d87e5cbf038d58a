/**
 * A client that stops reading while an execution streams a lot of output: the server does not
 * buffer the stream for it in memory (its RSS stays bounded), other clients stay responsive, and once
 * the slow client reads again it receives every event exactly once, in order, ending with done.
 *
 * Default: 50 000 lines of ~400 characters (~25 MB of frames). VMSTREAM_HEAVY=1: 200 000 lines.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import type { EventFrame } from '../protocol/types.js';
import { serverFor } from './helpers/util.js';
import { TestClient } from './helpers/client.js';

const HEAVY = process.env.VMSTREAM_HEAVY === '1';
const LINES = HEAVY ? 200_000 : 50_000;
const LINE_CHARS = 400;
/** Every line, the completion value (undefined) and done. */
const TOTAL = LINES + 2;
/** A generous bound on the server's peak RSS (main thread, workers, LevelDB together). */
const PEAK_RSS_LIMIT_MB = 600;

function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]);
}

t.test(`a paused reader of ${LINES} lines: bounded memory, responsive server, complete stream afterwards`, async (t) => {
  const server = await serverFor(t, {
    env: {
      VMSTREAM_MAX_EVENTS: String(LINES + 100),
      VMSTREAM_MAX_OUTPUT_BYTES: String(4 * 1024 * 1024 * 1024),
      VMSTREAM_MAX_FRAMES_PER_SEC: '100000',
    },
  });
  const pid = server.process.pid!;
  const slow = await TestClient.connect(server.url, server.token);
  const watcher = await TestClient.connect(server.url, server.token);
  const pinger = await TestClient.connect(server.url, server.token);
  t.teardown(() => [slow, watcher, pinger].forEach((client) => client.socket.terminate()));

  const session = await slow.createSession('firehose');
  const baseline = statusKb(pid, 'VmRSS');
  const code = `const pad = 'p'.repeat(${LINE_CHARS}); for (let i = 1; i <= ${LINES}; i++) console.log(i + ' ' + pad)`;
  const reply = await slow.expect('execution', { op: 'execute', session_id: session, kind: 'repl', code, timeout_ms: 300_000 });
  const id = reply.execution.execution_id as string;
  // Stop reading: nothing more leaves the kernel's buffers for the slow client.
  (slow.socket as any)._socket.pause();

  // Another client follows the same execution at full speed.
  await watcher.expect('subscribed', { op: 'subscribe', execution_id: id, after_seq: 0 });
  let watcherDone = false;
  let peakRssKb = baseline;
  const watched = watcher.untilDone(id, 240_000).finally(() => (watcherDone = true));

  // Meanwhile a third client keeps pinging: each ping must be answered.
  let pongs = 0;
  const otherReplies: unknown[] = [];
  let slowestPingMs = 0;
  while (!watcherDone) {
    const sent = performance.now();
    const pong = await pinger.request({ op: 'ping' });
    if (pong.op === 'pong') pongs++;
    else otherReplies.push(pong);
    slowestPingMs = Math.max(slowestPingMs, performance.now() - sent);
    peakRssKb = Math.max(peakRssKb, statusKb(pid, 'VmRSS'));
    await new Promise((resolve) => setTimeout(resolve, 25)); // pacing only
  }
  const watchedEvents = await watched;
  t.equal(watchedEvents.length, TOTAL, 'the fast subscriber got every line and done');
  t.equal((watchedEvents[watchedEvents.length - 1]!.payload as any).status, 'ok');
  t.same(otherReplies, [], 'every ping got a pong');
  t.ok(pongs > 0, `${pongs} pings answered during the stream (slowest ${slowestPingMs.toFixed(0)} ms)`);

  const received = slow.events.get(id)?.length ?? 0;
  t.ok(received < TOTAL, `sanity: the slow client had received only ${received} of ${TOTAL} events while paused`);
  const hwmKb = statusKb(pid, 'VmHWM');
  t.comment(`server RSS: baseline ${(baseline / 1024).toFixed(0)} MB, sampled peak ${(peakRssKb / 1024).toFixed(0)} MB, VmHWM ${(hwmKb / 1024).toFixed(0)} MB`);
  t.ok(hwmKb / 1024 < PEAK_RSS_LIMIT_MB, `peak RSS ${(hwmKb / 1024).toFixed(0)} MB < ${PEAK_RSS_LIMIT_MB} MB`);
  t.equal((await pinger.request({ op: 'ping' })).op, 'pong');

  // Read again: the rest arrives, each event exactly once, in order, ending with done.
  (slow.socket as any)._socket.resume();
  const events = (await slow.untilDone(id, 240_000)) as Array<EventFrame & { payload: any }>;
  t.equal(events.length, TOTAL, 'every event, exactly once');
  let inOrder = true;
  let contentOk = true;
  for (let index = 0; index < events.length; index++) {
    const event = events[index]!;
    if (event.seq !== index + 1) inOrder = false;
    if (index < LINES && (event.type !== 'console' || !event.payload.text.startsWith(`${index + 1} p`))) contentOk = false;
  }
  t.ok(inOrder, 'seqs 1..n in order, no gap, no duplicate');
  t.ok(contentOk, 'each line is the one the code logged at that position');
  t.equal(events[events.length - 1]!.type, 'done');
  t.equal(events[events.length - 1]!.payload.status, 'ok');
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(slow.events.get(id)!.length, TOTAL, 'nothing after done');
  t.equal(server.process.exitCode, null);
});
