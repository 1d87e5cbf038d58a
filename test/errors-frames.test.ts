import t from 'tap';
import fc from 'fast-check';
import { decodeValue } from '../protocol/codec.js';
import { pack, TestClient } from './helpers/client.js';
import { clientFor, serverFor, sync, sharedServer } from './helpers/util.js';

const shared = sharedServer(t);

const MIB = 1024 * 1024;

/** Sends raw bytes, then a ping; returns the frames that arrived before the pong. */
async function repliesTo(client: TestClient, data: Buffer | string): Promise<Array<Record<string, any>>> {
  const start = client.frames.length;
  client.sendRaw(data);
  const pong = await client.expect('pong', { op: 'ping' });
  return client.frames.slice(start, client.frames.indexOf(pong));
}

t.test('garbage frames get one error frame each and the socket keeps working', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const truncated = pack({ op: 'session.create', name: 'truncated name here' });
  const cases: Array<[string, Buffer | string, string]> = [
    ['text frame', JSON.stringify({ op: 'ping' }), 'BAD_FRAME'],
    ['random bytes', Buffer.from([0xc1, 0x13, 0x37, 0xde, 0xad, 0xbe, 0xef]), 'BAD_FRAME'],
    ['truncated msgpack', truncated.subarray(0, truncated.length - 4), 'BAD_FRAME'],
    ['trailing bytes', Buffer.concat([pack({ op: 'ping' }), Buffer.from([0x01])]), 'BAD_FRAME'],
    ['msgpack array', pack([{ op: 'ping' }]), 'BAD_FRAME'],
    ['msgpack number', pack(42), 'BAD_FRAME'],
    ['msgpack string', pack('ping'), 'BAD_FRAME'],
    ['msgpack nil', pack(null), 'BAD_FRAME'],
    ['msgpack binary', pack(Buffer.from('op')), 'BAD_FRAME'],
    ['empty binary frame', Buffer.alloc(0), 'BAD_FRAME'],
    ['map without op', pack({ id: 1, session_id: 'x' }), 'BAD_FRAME'],
    ['op of wrong type (number)', pack({ op: 7 }), 'BAD_FRAME'],
    ['op of wrong type (map)', pack({ op: { name: 'ping' } }), 'BAD_FRAME'],
    ['op of wrong type (nil)', pack({ op: null }), 'BAD_FRAME'],
    ['unknown op', pack({ op: 'launch.missiles' }), 'UNKNOWN_OP'],
    ['empty op', pack({ op: '' }), 'UNKNOWN_OP'],
  ];
  for (const [name, data, code] of cases) {
    const replies = await repliesTo(client, data);
    t.equal(replies.length, 1, `${name}: exactly one reply`);
    t.equal(replies[0]?.op, 'error', `${name}: an error frame`);
    t.equal(replies[0]?.code, code, `${name}: ${code}`);
    t.type(replies[0]?.message, 'string');
  }
  // Unknown op with an id: the id is echoed.
  const unknown = await client.request({ op: 'frobnicate' });
  t.equal(unknown.code, 'UNKNOWN_OP');
  t.type(unknown.id, 'number');
  // Still a working socket, for real work too.
  const session = await client.createSession('after-garbage');
  t.equal((await client.run(session, '1 + 1')).done.payload.status, 'ok');
});

t.test('random bytes: error frame with the code their decoding implies, socket stays open', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const known = new Set(['session.create', 'session.list', 'session.close', 'execute', 'subscribe', 'unsubscribe', 'cancel', 'execution.get', 'execution.list', 'ping']);
  let failures: string[] = [];
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 64 }), async (bytes) => {
      const data = Buffer.from(bytes);
      let expected: string;
      try {
        const value = decodeValue(data) as unknown;
        if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array || value instanceof Date || value instanceof Map) expected = 'BAD_FRAME';
        else if (typeof (value as { op?: unknown }).op !== 'string') expected = 'BAD_FRAME';
        else if (!known.has((value as { op: string }).op)) expected = 'UNKNOWN_OP';
        else expected = 'BAD_REQUEST|other';
      } catch {
        expected = 'BAD_FRAME';
      }
      const replies = await repliesTo(client, data);
      if (replies.length !== 1 || replies[0]!.op !== 'error') {
        failures.push(`${data.toString('hex')}: ${JSON.stringify(replies)}`);
        return;
      }
      if (expected !== 'BAD_REQUEST|other' && replies[0]!.code !== expected) {
        failures.push(`${data.toString('hex')}: expected ${expected}, got ${replies[0]!.code}`);
      }
    }),
    { numRuns: 300, seed: 20240611 },
  );
  t.same(failures, [], 'every random frame got the right error and the socket survived');
  failures = [];
  await sync(client);
});

t.test('frame size: exactly 1 MiB is processed, over 1 MiB closes with 1009', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);

  // Build an execute frame of exactly 1 MiB.
  const session = await client.createSession('size');
  const base = { op: 'execute', id: 'exact', session_id: session, kind: 'repl', code: '' };
  // An empty code is a 1-byte fixstr header; a code of 64 KiB or more has a 5-byte str32 header.
  const length = MIB - pack(base).length - 4;
  const frame = pack({ ...base, code: `/*${'x'.repeat(length - 5)}*/1` });
  t.equal(frame.length, MIB, 'the frame is exactly 1 MiB');
  client.sendRaw(frame);
  const reply = await client.waitFor((f) => f.id === 'exact');
  t.equal(reply.op, 'execution', 'a frame of exactly 1 MiB is accepted');
  await client.untilDone(reply.execution.execution_id);
  await sync(client);

  const over = await clientFor(t, server);
  over.sendRaw(pack({ op: 'ping', pad: 'y'.repeat(MIB) }));
  const closed = await over.closed;
  t.equal(closed.code, 1009, 'just over 1 MiB closes with 1009');

  const huge = await clientFor(t, server);
  huge.sendRaw(pack({ op: 'ping', pad: 'z'.repeat(20 * MIB) }));
  const hugeClosed = await huge.closed;
  // Past the hard cap uWS keeps (16 MiB here) it drops the connection itself, before our check,
  // with no close frame: 1006 (protocol/README.md, "Frames").
  t.equal(hugeClosed.code, 1006, 'a 20 MiB frame is dropped by the WebSocket layer');

  // The server and other sockets are fine.
  await sync(client);
});

t.test('BAD_REQUEST names the field; wrong-typed id', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const replies = await repliesTo(client, pack({ op: 'session.create', name: ['not', 'a', 'string'] }));
  t.equal(replies[0]?.code, 'BAD_REQUEST');
  t.match(replies[0]?.message, /name/);
  const badId = await repliesTo(client, pack({ op: 'ping', id: { nested: true } }));
  t.equal(badId.length, 1);
  t.equal(badId[0]?.op, 'error');
  t.equal(badId[0]?.code, 'BAD_REQUEST');
  t.match(badId[0]?.message, /id/);
  await sync(client);
});
