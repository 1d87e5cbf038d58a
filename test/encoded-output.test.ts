/**
 * Console lines a worker encoded (src/pool/console-frame.ts) through a real server: the bytes a
 * client receives live are the bytes a replay sends, frame for frame, and a batched subscriber's
 * events are the same events; seqs stay contiguous where the server's own events (value, done)
 * come between worker-encoded lines and structured ones (console.log of an object: an OutputItem).
 */
import t from 'tap';
import { decodeValue } from '../protocol/codec.js';
import type { EventFrame } from '../protocol/types.js';
import { clientFor, serverFor, waitEvent } from './helpers/util.js';
import type { TestClient } from './helpers/client.js';

/** Every binary message `client` receives from now on, as it came. */
function rawFrames(client: TestClient): Buffer[] {
  const frames: Buffer[] = [];
  client.socket.on('message', (data: Buffer) => frames.push(Buffer.from(data)));
  return frames;
}

/** The `event` frames of `executionId` among `frames`, by seq. */
function eventBytes(frames: Buffer[], executionId: string): Map<number, Buffer> {
  const bySeq = new Map<number, Buffer>();
  for (const frame of frames) {
    const event = decodeValue(frame) as EventFrame;
    if (event.op === 'event' && event.execution_id === executionId) bySeq.set(event.seq, frame);
  }
  return bySeq;
}

// Through a sandbox process's pipe (the default), and read from the worker's ring by the server itself.
for (const sandbox of ['auto', 'in-process']) t.test(`${sandbox}: live and replayed frames are byte-identical; seqs contiguous across worker- and server-encoded events`, async (t) => {
  const server = await serverFor(t, { env: { VMSTREAM_MAX_TEXT_CHARS: '64', VMSTREAM_SANDBOX: sandbox } });
  const live = await clientFor(t, server);
  const liveRaw = rawFrames(live);
  const session = await live.createSession('encoded');
  const code = [
    'console.log("plain")',
    'console.warn("é✓ 𝄞")',
    'console.error("y".repeat(200))',
    'console.log({ a: 1 })',
    'console.debug("")',
    'console.info("last")',
    '42',
  ].join('; ');
  const run = await live.run(session, code);
  const id = run.execution.execution_id;
  t.same(run.events.map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7, 8], 'contiguous seqs');
  t.same(run.events.map((e) => e.type), ['console', 'console', 'console', 'console', 'console', 'console', 'value', 'done']);
  t.same(run.events.slice(0, 6).map((e) => (e.payload as { level: string }).level), ['log', 'warn', 'error', 'log', 'debug', 'info']);
  t.same(run.events[1]!.payload, { level: 'warn', text: 'é✓ 𝄞' });
  t.match(run.events[2]!.payload, { level: 'error', truncated: true }, 'a clipped line says so');
  t.ok((run.events[3]!.payload as { data?: unknown }).data, 'a structured line keeps its data (an OutputItem, server-encoded)');

  const replay = await clientFor(t, server);
  const replayRaw = rawFrames(replay);
  await replay.expect('subscribed', { op: 'subscribe', execution_id: id, after_seq: 0 });
  await waitEvent(replay, id, (e) => e.type === 'done');
  const liveBytes = eventBytes(liveRaw, id);
  const replayBytes = eventBytes(replayRaw, id);
  t.equal(replayBytes.size, 8);
  for (const [seq, bytes] of liveBytes) t.ok(bytes.equals(replayBytes.get(seq)!), `seq ${seq}: the replayed bytes are the live ones`);

  const batched = await clientFor(t, server);
  await batched.expect('subscribed', { op: 'subscribe', execution_id: id, after_seq: 0, batch: true });
  await waitEvent(batched, id, (e) => e.type === 'done');
  t.same(batched.events.get(id), run.events, 'an events frame carries the same events');
});
