/**
 * Losing a worker (out of memory, or terminated because a synchronous loop cannot hear a stop) costs
 * that worker only: the running execution ends with done {status: "crashed" | "timeout"}, the server
 * and other sockets carry on, and every session the worker held is rebuilt from its successful
 * inputs — silently — announcing `session.restored` on its next execution. Sessions on another
 * worker keep their context and announce nothing.
 */
import t, { type Test } from 'tap';
import type { TestServer } from './helpers/server.js';
import { TestClient, contiguousFrom1, seqs } from './helpers/client.js';
import { clientFor, serverFor } from './helpers/util.js';
import { afterRestoring, runRepl, last, quoted, valueOf, type AnyEvent } from './helpers/loose.js';

const BOMB = 'const a = []; for (;;) a.push(new Array(1e6).fill(1))';

function announcements(events: AnyEvent[]): AnyEvent[] {
  return events.filter((e) => e.type === 'session.restored' || e.type === 'session.lost');
}

async function start(client: TestClient, sessionId: string, code: string, extra: Record<string, unknown> = {}): Promise<string> {
  const reply = await client.expect('execution', { op: 'execute', session_id: sessionId, kind: 'repl', code, ...extra });
  return reply.execution.execution_id as string;
}

/** Every console text any of these clients ever received, with the execution it came in. */
function allConsole(clients: TestClient[]): Array<{ execution_id: string; seq: number; text: string }> {
  const out: Array<{ execution_id: string; seq: number; text: string }> = [];
  for (const client of clients) {
    for (const frame of client.frames) {
      if (frame.op === 'event' && frame.type === 'console') out.push({ execution_id: frame.execution_id, seq: frame.seq, text: (frame.payload as any).text });
    }
  }
  return out;
}

async function serverWith(t: Test, env: Record<string, string>): Promise<TestServer> {
  return serverFor(t, { env });
}

async function connect(t: Test, server: TestServer): Promise<TestClient> {
  return clientFor(t, server);
}

t.test('out of memory: crashed, server up, every session of the worker rebuilt silently (1 worker)', async (t) => {
  const server = await serverWith(t, { VMSTREAM_WORKERS: '1', VMSTREAM_WORKER_HEAP_MB: '96' });
  const owner = await connect(t, server);
  const other = await connect(t, server);
  const watcher = await connect(t, server);

  const a = await owner.createSession('bomber');
  const b = await other.createSession('neighbour');
  const d = await other.createSession('busy-neighbour');
  const a1 = await runRepl(owner, a, "let x = 41; console.log('replay-marker-a1'); 'a1'");
  t.equal(a1.done.payload.status, 'ok');
  // An input that threw ran to its end: what it did before throwing is part of the session.
  const a2 = await runRepl(owner, a, "globalThis.thrownSideEffect = 'kept'; console.log('replay-marker-a2'); throw new Error('after the side effect')");
  t.equal(a2.done.payload.status, 'error');
  // A cancelled input did not: it is not re-run.
  const a3 = await start(owner, a, "globalThis.cancelledSideEffect = 1; console.log('replay-marker-a3'); await new Promise((r) => setTimeout(r, 60000))");
  await owner.waitFor((f) => f.op === 'event' && f.execution_id === a3 && f.type === 'console');
  t.equal((await owner.expect('execution', { op: 'cancel', execution_id: a3 })).execution.status, 'cancelled');
  const b1 = await runRepl(other, b, "let y = 'b'; console.log('replay-marker-b1'); 'b1'");
  t.equal(b1.done.payload.status, 'ok');
  await runRepl(other, d, "let z = 'd'; console.log('replay-marker-d1')");
  // d is awaiting a timer on the same worker when the bomb goes off.
  const dBusy = await start(other, d, "console.log('d waiting'); await new Promise((r) => setTimeout(r, 30000)); 'never'");
  await other.waitFor((f) => f.op === 'event' && f.execution_id === dBusy && f.type === 'console');

  const bomb = await start(owner, a, BOMB);
  // The server and the other sockets keep working meanwhile.
  t.equal((await watcher.request({ op: 'ping' })).op, 'pong', 'a ping is answered while the worker fills its heap');
  const events = (await owner.untilDone(bomb, 60_000)) as AnyEvent[];
  const done = last(events);
  t.equal(done.type, 'done');
  t.equal(done.payload.status, 'crashed', 'the memory bomb ends as crashed');
  t.equal(done.payload.reason, 'out_of_memory', 'because it ran out of memory');
  t.equal(done.payload.session, 'rebuilt');
  t.ok(contiguousFrom1(seqs(events)));
  const record = (await owner.expect('execution', { op: 'execution.get', execution_id: bomb })).execution;
  t.equal(record.status, 'crashed');
  t.equal(record.reason, 'out_of_memory');

  const dEvents = (await other.untilDone(dBusy)) as AnyEvent[];
  t.equal(last(dEvents).payload.status, 'crashed', 'the execution running in another session of the lost worker ends as crashed');
  t.equal(last(dEvents).payload.session, 'rebuilt');

  t.equal(server.process.exitCode, null, 'the server is still up');
  t.equal((await watcher.request({ op: 'ping' })).op, 'pong', 'other sockets keep working');
  const fresh = await watcher.createSession('after');
  const freshRun = await runRepl(watcher, fresh, '6 * 7');
  t.equal(valueOf(freshRun.events as AnyEvent[]), '42', 'new sessions run on the replacement worker');
  t.same(announcements(freshRun.events as AnyEvent[]), [], 'a session created after the loss has nothing to restore');

  const aNext = await runRepl(owner, a, 'x + 1');
  const aEvents = aNext.events as AnyEvent[];
  t.same([aEvents[0]!.type, aEvents[0]!.payload], ['session.restoring', { session_id: a, inputs: 2, replayed: 0 }], 'the rebuild is said as it starts, with its number of inputs');
  t.equal(afterRestoring(aEvents)!.type, 'session.restored', 'then how it went');
  t.same(afterRestoring(aEvents)!.payload, { session_id: a, replayed: 2 }, 'the two inputs that ran to their end were re-run');
  t.equal(valueOf(aEvents), '42', 'state from before the crash is back');
  t.equal(announcements(aEvents).length, 1, 'announced once');
  const aAgain = await runRepl(owner, a, "thrownSideEffect + '/' + typeof cancelledSideEffect");
  t.same(announcements(aAgain.events as AnyEvent[]), [], 'only the first execution after the rebuild announces it');
  t.equal(valueOf(aAgain.events as AnyEvent[]), quoted('kept/undefined'), 'the input that threw was re-run, the cancelled one was not');

  const bNext = await runRepl(other, b, 'y');
  t.equal(afterRestoring(bNext.events)!.type, 'session.restored', 'another session of the same worker was rebuilt too');
  t.same(afterRestoring(bNext.events as AnyEvent[])!.payload, { session_id: b, replayed: 1 });
  t.equal(valueOf(bNext.events as AnyEvent[]), quoted('b'));
  const dNext = await runRepl(other, d, 'z');
  t.equal(afterRestoring(dNext.events)!.type, 'session.restored');
  t.equal(valueOf(dNext.events as AnyEvent[]), quoted('d'));

  // Replayed inputs are silent: each marker was seen exactly once, in its original execution.
  const consoles = allConsole([owner, other, watcher]);
  for (const [marker, executionId] of [['replay-marker-a1', a1.execution.execution_id], ['replay-marker-a2', a2.execution.execution_id], ['replay-marker-a3', a3], ['replay-marker-b1', b1.execution.execution_id], ['replay-marker-d1', null]] as const) {
    const seen = consoles.filter((c) => c.text === marker);
    t.equal(seen.length, 1, `${marker} appeared exactly once`);
    if (executionId) t.equal(seen[0]?.execution_id, executionId, `${marker} only in its own execution`);
  }
  t.notMatch(server.stderr(), /replay-marker/, 'nor did replayed output reach the server log');
  // The original executions' logs were not touched by the replay.
  const replay = await watcher.expect('subscribed', { op: 'subscribe', execution_id: a1.execution.execution_id, after_seq: 0 });
  t.equal(replay.last_seq, a1.events.length, 'the replayed input\'s log did not grow');
  const replayed = (await watcher.untilDone(a1.execution.execution_id)) as AnyEvent[];
  t.same(replayed.map((e) => e.type), a1.events.map((e) => e.type));
});

t.test('a synchronous loop past its timeout costs its worker only (2 workers)', async (t) => {
  const server = await serverWith(t, { VMSTREAM_WORKERS: '2', VMSTREAM_WORKER_HEAP_MB: '96' });
  const client = await connect(t, server);
  // Placement is least-loaded: s1 → worker 0, s2 → worker 1, s3 → worker 0.
  const s1 = await client.createSession('looper');
  const s2 = await client.createSession('other-worker');
  const s3 = await client.createSession('same-worker');
  await runRepl(client, s1, "let one = 1; console.log('replay-marker-s1')");
  await runRepl(client, s2, "let two = 2; globalThis.notReplayed = 'still-here'; 'x'");
  await runRepl(client, s3, "let three = 3; console.log('replay-marker-s3')");

  const loop = await start(client, s1, "globalThis.partial = 'loop'; while (true) {}", { timeout_ms: 400 });
  const during = await runRepl(client, s2, 'two * 10');
  t.equal(valueOf(during.events as AnyEvent[]), '20', 'the other worker answers while the loop spins');
  const events = (await client.untilDone(loop)) as AnyEvent[];
  const done = last(events);
  t.equal(done.payload.status, 'timeout');
  t.equal(done.payload.reason, 'timeout');
  t.equal(done.payload.session, 'rebuilt', 'a synchronous loop cannot hear a stop: its worker is replaced');
  t.ok(done.payload.duration_ms >= 400);

  const n1 = await runRepl(client, s1, 'one + (typeof partial)');
  t.equal(afterRestoring(n1.events)!.type, 'session.restored');
  t.same(afterRestoring(n1.events as AnyEvent[])!.payload, { session_id: s1, replayed: 1 });
  t.equal(valueOf(n1.events as AnyEvent[]), quoted('1undefined'), 'state back, nothing of the stopped run');
  const n3 = await runRepl(client, s3, 'three');
  t.equal(afterRestoring(n3.events)!.type, 'session.restored', 'the other session on the lost worker was rebuilt');
  t.equal(valueOf(n3.events as AnyEvent[]), '3');
  const n2 = await runRepl(client, s2, 'two + notReplayed');
  t.same(announcements(n2.events as AnyEvent[]), [], 'the session on the other worker announces nothing');
  t.equal(valueOf(n2.events as AnyEvent[]), quoted('2still-here'), 'and kept its very context (a global no replay would bring back)');

  // Out of memory on worker 0 does not touch worker 1 either.
  const bomb = await start(client, s1, BOMB);
  const bombEvents = (await client.untilDone(bomb, 60_000)) as AnyEvent[];
  t.equal(last(bombEvents).payload.status, 'crashed');
  t.equal(last(bombEvents).payload.reason, 'out_of_memory');
  const m2 = await runRepl(client, s2, 'notReplayed');
  t.same(announcements(m2.events as AnyEvent[]), [], 'still no announcement on the other worker');
  t.equal(valueOf(m2.events as AnyEvent[]), quoted('still-here'));
  const m1 = await runRepl(client, s1, 'one');
  t.equal(afterRestoring(m1.events)!.type, 'session.restored');
  t.same(afterRestoring(m1.events as AnyEvent[])!.payload, { session_id: s1, replayed: 2 }, 'both successful inputs of s1 replayed');
  t.equal(valueOf(m1.events as AnyEvent[]), '1');

  const consoles = allConsole([client]);
  t.equal(consoles.filter((c) => c.text === 'replay-marker-s1').length, 1, 'replays of s1 were silent');
  t.equal(consoles.filter((c) => c.text === 'replay-marker-s3').length, 1, 'the replay of s3 was silent');
  t.equal(server.process.exitCode, null);
});

t.test('a stuck run on a shared worker: the neighbour that had not started yet runs after the rebuild, the one mid-way is crashed (1 worker)', async (t) => {
  const server = await serverWith(t, { VMSTREAM_WORKERS: '1' });
  const client = await connect(t, server);
  const a = await client.createSession('stuck');
  const b = await client.createSession('waiting-neighbour');
  const c = await client.createSession('busy-neighbour');
  await runRepl(client, b, "let bState = 'b'");
  await runRepl(client, c, "let cState = 'c'");
  const busy = await start(client, c, "console.log('c started'); await new Promise((r) => setTimeout(r, 30000)); 'never'");
  await client.waitFor((f) => f.op === 'event' && f.execution_id === busy && f.type === 'console');

  const stuck = await start(client, a, 'for (;;) {}', { timeout_ms: 500 });
  // Handed to the worker behind the stuck run: it cannot start, so it produces nothing.
  const waiting = await start(client, b, "console.log('b ran'); bState");
  const stuckDone = last((await client.untilDone(stuck)) as AnyEvent[]);
  t.equal(stuckDone.payload.status, 'timeout');
  t.equal(stuckDone.payload.session, 'rebuilt');

  const busyEvents = (await client.untilDone(busy)) as AnyEvent[];
  t.equal(last(busyEvents).payload.status, 'crashed', 'the neighbour that had produced events is crashed');
  t.equal(last(busyEvents).payload.session, 'rebuilt');

  const waitingEvents = (await client.untilDone(waiting)) as AnyEvent[];
  t.equal(last(waitingEvents).payload.status, 'ok', 'the neighbour that had not started runs after all');
  t.equal(afterRestoring(waitingEvents)!.type, 'session.restored', 'after its session was rebuilt');
  t.same(waitingEvents.filter((e) => e.type === 'console').map((e) => e.payload.text), ['b ran'], 'once');
  t.equal(valueOf(waitingEvents), quoted('b'), 'with its state back');
  t.ok(contiguousFrom1(seqs(waitingEvents)));

  const cNext = await runRepl(client, c, 'cState');
  t.equal(afterRestoring(cNext.events)!.type, 'session.restored');
  t.equal(valueOf(cNext.events), quoted('c'));
});
