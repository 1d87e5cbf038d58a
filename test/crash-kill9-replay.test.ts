/**
 * kill -9 in the middle of ~20 streaming executions (several sessions, several sockets), then a
 * restart over the same data folder: every event any client saw is in the replay with the same seq
 * and content, every execution has exactly one terminal done (the ones cut off: crashed), and seqs
 * run contiguously from 1. Repeated over the same data: 3 rounds, 6 under VMSTREAM_HEAVY=1, each
 * round re-checking every execution of every earlier round.
 */
import t from 'tap';
import { startServer, tempDir, removeDir, type TestServer } from './helpers/server.js';
import { TestClient } from './helpers/client.js';
import { runRepl, type AnyEvent } from './helpers/loose.js';

const HEAVY = process.env.VMSTREAM_HEAVY === '1';
const CLUSTER = process.env.VMSTREAM_TEST_TARGET === 'cluster';
const ROUNDS = HEAVY ? 6 : 3;
const SOCKETS = 3;
const SESSIONS = 6;
const EXECUTIONS = 20;
/** Events each session's streaming execution must have delivered before the kill. */
const SEEN_BEFORE_KILL = 100;

interface Tracked {
  executionId: string;
  sessionId: string;
  round: number;
  /** 'short' ends on its own within moments; 'stream' runs until it is cut off. */
  kind: 'short' | 'stream';
  /** Everything a client received for it before the kill, in arrival order. */
  seen: AnyEvent[];
}

const SHORT = (tag: string) => `for (let i = 0; i < 25; i++) console.log('${tag} short ' + i); '${tag} done'`;
const STREAM = (tag: string) =>
  `for (let i = 0; ; i++) { console.log('${tag} stream ' + i); if (i % 10 === 9) await new Promise((r) => setTimeout(r, 2)); }`;

function checkLog(t: any, tracked: Tracked, replay: AnyEvent[], lastSeq: number): void {
  const label = `r${tracked.round} ${tracked.kind} ${tracked.executionId.slice(0, 8)}`;
  const problems: string[] = [];
  replay.forEach((event, index) => {
    if (event.seq !== index + 1) problems.push(`seq ${event.seq} at position ${index + 1}`);
  });
  const dones = replay.filter((e) => e.type === 'done');
  if (dones.length !== 1) problems.push(`${dones.length} done events`);
  if (replay[replay.length - 1]?.type !== 'done') problems.push('the last event is not done');
  if (lastSeq !== replay.length) problems.push(`subscribed.last_seq ${lastSeq} but ${replay.length} events`);
  const bySeq = new Map(replay.map((event) => [event.seq, event]));
  let missing = 0;
  let changed = 0;
  for (const event of tracked.seen) {
    const stored = bySeq.get(event.seq);
    if (!stored) missing++;
    else if (JSON.stringify(stored) !== JSON.stringify(event)) changed++;
  }
  if (missing) problems.push(`${missing} events a client saw are missing`);
  if (changed) problems.push(`${changed} events differ from what a client saw`);
  const done = dones[dones.length - 1];
  const sawDone = tracked.seen.find((e) => e.type === 'done');
  if (done && !sawDone) {
    // Cut off by the kill: recovery marks it. A short one may have ended just before the kill. On a
    // cluster the restarted nodes come up one by one: a node up a lease before the owner of a session
    // takes it over and ends what the owner had with `node_lost` (what decides which is the machine's
    // load, not the code under test).
    const reasons = CLUSTER ? ['server_restart', 'node_lost'] : ['server_restart'];
    const cutOff = done.payload.status === 'crashed' && reasons.includes(done.payload.reason);
    if (tracked.kind === 'stream' && !cutOff) problems.push(`done ${JSON.stringify(done.payload)}, expected crashed/${reasons.join(' or ')}`);
    if (tracked.kind === 'short' && !cutOff && done.payload.status !== 'ok') problems.push(`done ${JSON.stringify(done.payload)}`);
  }
  t.same(problems, [], `${label}: ${replay.length} events, ${tracked.seen.length} seen before the kill, done ${done?.payload.status}`);
}

/** The execution's events up to its `done`; a replay that stalls shows what the servers logged as failed (a stall's cause is there). */
async function replayOf(t: any, verifier: TestClient, server: TestServer, executionId: string): Promise<AnyEvent[]> {
  try {
    return (await verifier.untilDone(executionId)) as AnyEvent[];
  } catch (error) {
    t.comment(`the servers' failures:\n${server.stderr().split('\n').filter((line) => /failed/.test(line)).slice(-40).join('\n')}`);
    throw error;
  }
}

t.test(`kill -9 mid-stream, ${ROUNDS} rounds over the same data`, async (t) => {
  const dataDir = tempDir('crash');
  const workspaceDir = `${dataDir}-ws`;
  t.teardown(() => {
    removeDir(dataDir);
    removeDir(workspaceDir);
  });
  const tracked: Tracked[] = [];
  let sessions: string[] = [];
  let server: TestServer | null = null;
  t.teardown(() => server?.kill());

  for (let round = 1; round <= ROUNDS; round++) {
    server = await startServer({ dataDir, workspaceDir, env: { VMSTREAM_WORKERS: '2' } });
    const verifier = await TestClient.connect(server.url, server.token);

    // After a restart: everything of every earlier round replays intact.
    if (round > 1) {
      for (const item of tracked) {
        const sub = await verifier.expect('subscribed', { op: 'subscribe', execution_id: item.executionId, after_seq: 0 });
        const replay = await replayOf(t, verifier, server, item.executionId);
        checkLog(t, item, replay, sub.last_seq);
        const record = (await verifier.expect('execution', { op: 'execution.get', execution_id: item.executionId })).execution;
        t.equal(record.last_seq, replay.length, 'the stored record agrees with its log', { diagnostic: false } as any);
        t.equal(record.status, replay[replay.length - 1]!.payload.status, 'and with its done', { diagnostic: false } as any);
      }
      const listed = (await verifier.expect('sessions', { op: 'session.list' })).items.map((s: any) => s.session_id).sort();
      t.same(listed, [...sessions].sort(), 'the sessions survived the kill');
    }

    const clients: TestClient[] = [];
    for (let i = 0; i < SOCKETS; i++) clients.push(await TestClient.connect(server.url, server.token));
    if (round === 1) {
      for (let i = 0; i < SESSIONS; i++) sessions.push(await clients[i % SOCKETS]!.createSession(`crash-${i}`));
    }

    // Per session: a short one first, then streaming ones (the first runs, the rest queue behind it).
    const started: Array<{ item: Tracked; client: TestClient }> = [];
    for (let k = 0; k < EXECUTIONS; k++) {
      const sessionIndex = k % SESSIONS;
      const kind: Tracked['kind'] = k < SESSIONS ? 'short' : 'stream';
      const client = clients[k % SOCKETS]!;
      const tag = `r${round}e${k}`;
      const reply = await client.expect('execution', {
        op: 'execute',
        session_id: sessions[sessionIndex],
        kind: 'repl',
        code: kind === 'short' ? SHORT(tag) : STREAM(tag),
        timeout_ms: 120_000,
      });
      const item: Tracked = { executionId: reply.execution.execution_id, sessionId: sessions[sessionIndex]!, round, kind, seen: [] };
      tracked.push(item);
      started.push({ item, client });
    }

    // Wait until the first streaming execution of every session is well under way.
    const firstStreams = started.filter(({ item }) => item.kind === 'stream').slice(0, SESSIONS);
    await Promise.all(firstStreams.map(({ item, client }) =>
      client.waitFor((f) => f.op === 'event' && f.execution_id === item.executionId && f.seq >= SEEN_BEFORE_KILL, 30_000)));

    await server.kill();
    for (const { item, client } of started) item.seen = [...((client.events.get(item.executionId) ?? []) as AnyEvent[])];
    const seenTotal = started.reduce((sum, { item }) => sum + item.seen.length, 0);
    t.comment(`round ${round}: killed with ${seenTotal} events delivered across ${EXECUTIONS} executions`);
    for (const client of clients) client.socket.terminate();
    verifier.socket.terminate();

    // A reused session announces its rebuild (after the restart) in the first execution it ran.
    if (round > 1) {
      for (const sessionId of sessions) {
        const first = started.find(({ item }) => item.sessionId === sessionId)!.item;
        const nonDone = first.seen.filter((e) => e.type !== 'done' && e.type !== 'session.restoring');
        if (nonDone.length > 0) t.equal(nonDone[0]!.type, 'session.restored', `round ${round}: session ${sessionId.slice(0, 8)} announced its rebuild first`);
      }
    }
  }

  // The last restart: every execution of every round, checked once more.
  server = await startServer({ dataDir, workspaceDir, env: { VMSTREAM_WORKERS: '2' } });
  const verifier = await TestClient.connect(server.url, server.token);
  t.teardown(() => verifier.close());
  for (const item of tracked) {
    const sub = await verifier.expect('subscribed', { op: 'subscribe', execution_id: item.executionId, after_seq: 0 });
    checkLog(t, item, await replayOf(t, verifier, server, item.executionId), sub.last_seq);
  }
  // And the sessions still work.
  const after = await runRepl(verifier, sessions[0]!, '1 + 1');
  t.equal(after.done.payload.status, 'ok');
  await server.stop();
  server = null;
});
