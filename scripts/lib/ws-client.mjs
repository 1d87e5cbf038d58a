#!/usr/bin/env node
// A small socket client for scripts/smoke-test.sh and scripts/test-e2e.sh, speaking protocol v1
// with the project's own `ws` and `msgpackr`. Prints `ok - …` / `not ok - …` lines and exits 1 on
// any failure.
//   node scripts/lib/ws-client.mjs <ws-url> <token> smoke
//   node scripts/lib/ws-client.mjs <ws-url> <token> replay <execution_id> <expected seqs, e.g. 1,2,3>
import { Packr } from 'msgpackr';
import WebSocket from 'ws';

const [url, token, mode, ...args] = process.argv.slice(2);
const packr = new Packr({ useRecords: false });
let failures = 0;
const check = (what, good, detail = '') => {
  if (!good) failures++;
  console.log(`${good ? 'ok' : 'not ok'} - socket: ${what}${good || !detail ? '' : `: ${detail}`}`);
};

const socket = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
const frames = [];
const waiters = [];
socket.on('message', (data) => {
  const frame = packr.unpack(data);
  frames.push(frame);
  for (const waiter of [...waiters]) if (waiter.test(frame)) { waiters.splice(waiters.indexOf(waiter), 1); waiter.resolve(frame); }
});
const waitFor = (test) => {
  const seen = frames.find(test);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve) => waiters.push({ test, resolve }));
};
let nextId = 1;
const request = (frame) => {
  const id = nextId++;
  socket.send(packr.pack({ ...frame, id }));
  return waitFor((f) => f.id === id);
};
const eventsOf = (executionId) => frames.filter((f) => f.op === 'event' && f.execution_id === executionId);

const timer = setTimeout(() => {
  check('finished in time', false, `last frames: ${JSON.stringify(frames.slice(-3))}`);
  process.exit(1);
}, 20_000);

await new Promise((resolve, reject) => {
  socket.once('open', resolve);
  socket.once('error', reject);
}).catch((error) => {
  check('connect', false, error.message);
  process.exit(1);
});

if (mode === 'smoke') {
  const pong = await request({ op: 'ping' });
  check('ping answered with pong', pong.op === 'pong');
  const created = await request({ op: 'session.create', name: 'smoke' });
  check('session.create', created.op === 'session', JSON.stringify(created));
  const sessionId = created.session?.session_id;
  const reply = await request({ op: 'execute', session_id: sessionId, kind: 'repl', code: 'let n = 20; console.log("socket"); n + 22' });
  check('execute', reply.op === 'execution', JSON.stringify(reply));
  const executionId = reply.execution?.execution_id;
  await waitFor((f) => f.op === 'event' && f.execution_id === executionId && f.type === 'done');
  const events = eventsOf(executionId);
  check('events console, value, done', events.map((e) => e.type).join() === 'console,value,done', JSON.stringify(events));
  check('value is 42', events[1]?.payload?.preview === '42');
  check('seqs 1..3', events.map((e) => e.seq).join() === '1,2,3');
  const bad = await request({ op: 'execute', session_id: sessionId, kind: 'repl' });
  check('a bad request is BAD_REQUEST', bad.op === 'error' && bad.code === 'BAD_REQUEST', JSON.stringify(bad));
} else if (mode === 'replay') {
  const [executionId, expected] = args;
  const reply = await request({ op: 'subscribe', execution_id: executionId, after_seq: 0 });
  check(`subscribe to ${executionId}`, reply.op === 'subscribed', JSON.stringify(reply));
  if (reply.op === 'subscribed') {
    await waitFor((f) => f.op === 'event' && f.execution_id === executionId && f.type === 'done');
    const seqs = eventsOf(executionId).map((e) => e.seq).join();
    check(`replayed seqs ${expected}`, seqs === expected, seqs);
  }
} else {
  check(`mode ${mode}`, false, 'unknown mode');
}

clearTimeout(timer);
socket.close();
process.exit(failures === 0 ? 0 : 1);
