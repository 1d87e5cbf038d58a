/**
 * Hostile input, property-based (fast-check): random msgpack values, maps with real op names and
 * wrong field types, truncated frames, frames with trailing bytes, random bytes, text frames, deeply
 * nested structures. Each frame gets exactly one reply — an `error` with the code the protocol gives
 * that kind of frame — the server never crashes or fails internally, and a well-behaved client on
 * another socket keeps working throughout.
 */
import t from 'tap';
import fc from 'fast-check';
import { decodeValue, encodeFrame } from '../protocol/codec.js';
import { removeDir, startServer, type TestServer } from './helpers/server.js';
import { TestClient } from './helpers/client.js';
import { runRepl } from './helpers/loose.js';

const KNOWN_OPS = ['session.create', 'session.list', 'session.close', 'execute', 'subscribe', 'unsubscribe', 'cancel', 'execution.get', 'execution.list', 'ping'];
const HEAVY = process.env.VMSTREAM_HEAVY === '1';
const RUNS = HEAVY ? 1000 : 150;

type Frame = Record<string, any>;

let server: TestServer;
let hostile: TestClient;
let good: TestClient;
let goodSession: string;
let goodCounter = 0;
let sent = 0;

/** Sends one frame on the hostile socket and resolves with the next frame it receives. */
async function exchange(data: Uint8Array | string): Promise<Frame> {
  const index = hostile.frames.length;
  hostile.sendRaw(data);
  sent++;
  await hostile.waitFor(() => hostile.frames.length > index, 10_000);
  return hostile.frames[index]!;
}

/** The well-behaved client: a ping every time, a real execution every few times. */
async function goodClientWorks(): Promise<void> {
  const pong = await good.request({ op: 'ping' });
  if (pong.op !== 'pong') throw new Error(`good client's ping got ${JSON.stringify(pong)}`);
  if (++goodCounter % 10 === 0) {
    const run = await runRepl(good, goodSession, `n += 1`);
    const value = run.events.find((e) => e.type === 'value')?.payload as { preview: string } | undefined;
    if (run.done.payload.status !== 'ok' || value?.preview !== String(goodCounter / 10)) {
      throw new Error(`good client's execution went wrong: ${JSON.stringify(run.events)}`);
    }
  }
}

function expectError(reply: Frame, codes: string[], what: string): void {
  if (reply.op !== 'error') throw new Error(`${what}: expected an error, got ${JSON.stringify(reply).slice(0, 300)}`);
  if (!codes.includes(reply.code)) throw new Error(`${what}: expected ${codes.join('|')}, got ${reply.code}: ${reply.message}`);
  if (typeof reply.message !== 'string' || reply.message.length === 0) throw new Error(`${what}: error without a message`);
}

function validId(id: unknown): boolean {
  return (typeof id === 'string' && id.length <= 128) || Number.isSafeInteger(id);
}

function isMapHeader(byte: number | undefined): boolean {
  return byte !== undefined && ((byte >= 0x80 && byte <= 0x8f) || byte === 0xde || byte === 0xdf);
}

t.before(async () => {
  server = await startServer({ env: { VMSTREAM_MAX_FRAMES_PER_SEC: '1000000' } });
  hostile = await TestClient.connect(server.url, server.token);
  good = await TestClient.connect(server.url, server.token);
  goodSession = await good.createSession('well-behaved');
  await runRepl(good, goodSession, 'let n = 0');
});

t.teardown(async () => {
  await Promise.all([hostile?.close(), good?.close()]);
  await server?.stop();
  if (server) {
    removeDir(server.dataDir);
    removeDir(server.workspaceDir);
  }
});

t.test('random msgpack values', async (t) => {
  const value = fc.anything({
    key: fc.oneof(fc.constantFrom('op', 'id'), fc.string()),
    maxDepth: 4,
    withMap: true,
    withSet: true,
    withDate: true,
    withTypedArray: true,
    withSparseArray: true,
    withNullPrototype: true,
    withObjectString: true,
  });
  await fc.assert(
    fc.asyncProperty(value, async (input) => {
      let bytes: Uint8Array;
      try {
        bytes = encodeFrame(input as object);
      } catch {
        return; // not packable: nothing to send
      }
      // What the bytes are, as msgpack: undecodable as a plain map (e.g. a map with non-string keys) → BAD_FRAME.
      let decoded: any;
      let isMap = false;
      try {
        decoded = decodeValue(bytes);
        isMap = isMapHeader(bytes[0]) && decoded !== null && typeof decoded === 'object';
      } catch {
        isMap = false;
      }
      if (isMap && KNOWN_OPS.includes(decoded.op)) return; // a known op is not hostile input
      const reply = await exchange(bytes);
      if (isMap && typeof decoded.op === 'string') {
        expectError(reply, ['UNKNOWN_OP'], 'a map with an unknown op');
        if (validId(decoded.id) && reply.id !== decoded.id) throw new Error(`request id ${JSON.stringify(decoded.id)} not echoed: ${JSON.stringify(reply)}`);
      } else {
        expectError(reply, ['BAD_FRAME'], 'not a map with a string op');
        if (reply.id !== undefined) throw new Error('a BAD_FRAME reply cannot know the request id');
      }
      await goodClientWorks();
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} random values answered correctly`);
});

// Field types of each op, for generating wrong ones.
type FieldType = 'entityId' | 'string' | 'name' | 'path' | 'kind' | 'posInt' | 'nonNegInt' | 'limit' | 'requestId';
interface OpSpec { required: Record<string, FieldType>; optional: Record<string, FieldType> }
const SPECS: Record<string, OpSpec> = {
  'session.create': { required: {}, optional: { name: 'name' } },
  'session.close': { required: { session_id: 'entityId' }, optional: {} },
  execute: { required: { session_id: 'entityId', kind: 'kind' }, optional: { code: 'string', timeout_ms: 'posInt', execution_id: 'entityId' } },
  subscribe: { required: { execution_id: 'entityId' }, optional: { after_seq: 'nonNegInt' } },
  unsubscribe: { required: { execution_id: 'entityId' }, optional: {} },
  cancel: { required: { execution_id: 'entityId' }, optional: {} },
  'execution.get': { required: { execution_id: 'entityId' }, optional: {} },
  'execution.list': { required: { session_id: 'entityId' }, optional: { limit: 'limit' } },
  ping: { required: {}, optional: {} },
  'session.list': { required: {}, optional: {} },
};

const notString = fc.oneof(fc.integer(), fc.double({ noNaN: false }), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 3 }));
const notInteger = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.boolean(),
  fc.constant(null),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Number.isInteger(x)),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 3 }),
);
const WRONG: Record<FieldType, fc.Arbitrary<unknown>> = {
  entityId: fc.oneof(notString, fc.constant(''), fc.string({ minLength: 129, maxLength: 200 }), fc.string({ maxLength: 20 }).map((s) => `${s}!bad/`)),
  string: notString,
  name: fc.oneof(notString, fc.string({ minLength: 201, maxLength: 260 })),
  path: fc.oneof(notString, fc.constant('')),
  kind: fc.oneof(notString, fc.string({ maxLength: 10 }).filter((s) => s !== 'repl' && s !== 'run-file')),
  posInt: fc.oneof(notInteger, fc.integer({ min: -1000, max: 0 })),
  nonNegInt: fc.oneof(notInteger, fc.integer({ min: -1000, max: -1 })),
  limit: fc.oneof(notInteger, fc.integer({ min: -1000, max: 0 }), fc.integer({ min: 101, max: 100000 })),
  requestId: fc.oneof(fc.boolean(), fc.constant(null), fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Number.isInteger(x)), fc.string({ minLength: 129, maxLength: 160 }), fc.array(fc.integer(), { maxLength: 2 })),
};
const VALID: Record<FieldType, unknown> = {
  entityId: 'no-such-id', string: '1 + 1', name: 'n', path: 'f.js', kind: 'repl', posInt: 1000, nonNegInt: 0, limit: 5, requestId: 1,
};

const wrongRequest = fc
  .constantFrom(...Object.keys(SPECS))
  .chain((op) => {
    const spec = SPECS[op]!;
    const fields: Record<string, FieldType> = { ...spec.required, ...spec.optional, id: 'requestId' };
    const names = Object.keys(fields);
    return fc.record({
      op: fc.constant(op),
      wrong: fc.subarray(names, { minLength: 1 }),
      optionalPresent: fc.subarray(Object.keys(spec.optional)),
      values: fc.record(Object.fromEntries(names.map((name) => [name, WRONG[fields[name]!]])) as Record<string, fc.Arbitrary<unknown>>),
    });
  });

t.test('real op names with wrong field types', async (t) => {
  let nextId = 1_000_000;
  await fc.assert(
    fc.asyncProperty(wrongRequest, async ({ op, wrong, optionalPresent, values }) => {
      const spec = SPECS[op]!;
      const id = nextId++;
      const frame: Record<string, unknown> = { op, id };
      for (const [name, type] of Object.entries(spec.required)) frame[name] = wrong.includes(name) ? values[name] : VALID[type];
      for (const [name, type] of Object.entries(spec.optional)) {
        if (wrong.includes(name)) frame[name] = values[name];
        else if (optionalPresent.includes(name)) frame[name] = VALID[type];
      }
      if (wrong.includes('id')) frame.id = values.id;
      // A repl execute with a valid kind needs its code.
      if (op === 'execute' && frame.kind === 'repl' && !('code' in frame)) frame.code = '1';
      const reply = await exchange(encodeFrame(frame));
      expectError(reply, ['BAD_REQUEST'], `${op} with wrong ${wrong.join(', ')}`);
      const named = wrong.some((field) => reply.message.includes(`\`${field}\``));
      if (!named) throw new Error(`the message does not name a wrong field (${wrong.join(', ')}): ${reply.message}`);
      if (wrong.includes('id')) {
        if (reply.id !== undefined) throw new Error(`an invalid request id was echoed: ${JSON.stringify(reply.id)}`);
      } else if (reply.id !== id) {
        throw new Error(`request id ${id} not echoed: ${JSON.stringify(reply)}`);
      }
      await goodClientWorks();
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} malformed requests answered with BAD_REQUEST naming the field`);
});

t.test('well-formed requests for things that do not exist', async (t) => {
  const idArb = fc.stringMatching(/^[A-Za-z0-9_.:-]{1,40}$/);
  const request = fc.oneof(
    idArb.map((x) => ({ op: 'session.close', session_id: x })),
    idArb.map((x) => ({ op: 'execute', session_id: x, kind: 'repl', code: 'globalThis.hacked = 1' })),
    idArb.map((x) => ({ op: 'subscribe', execution_id: x, after_seq: 0 })),
    idArb.map((x) => ({ op: 'cancel', execution_id: x })),
    idArb.map((x) => ({ op: 'execution.get', execution_id: x })),
    idArb.map((x) => ({ op: 'execution.list', session_id: x })),
  );
  await fc.assert(
    fc.asyncProperty(request, fc.integer({ min: 1, max: 2 ** 31 }), async (frame, id) => {
      if ((frame as { session_id?: string }).session_id === goodSession) return;
      const reply = await exchange(encodeFrame({ ...frame, id }));
      expectError(reply, ['NOT_FOUND'], `${frame.op} of an unknown id`);
      if (reply.id !== id) throw new Error('request id not echoed');
      await goodClientWorks();
    }),
    { numRuns: RUNS },
  );
  t.pass('NOT_FOUND every time');
});

const validFrames = fc.oneof(
  fc.record({ op: fc.constant('ping'), id: fc.integer({ min: 0, max: 1e9 }) }),
  fc.record({ op: fc.constant('session.list'), id: fc.string({ maxLength: 20 }) }),
  fc.record({ op: fc.constant('execute'), id: fc.integer(), session_id: fc.constant('s-1'), kind: fc.constant('repl'), code: fc.string({ maxLength: 200 }) }),
  fc.record({ op: fc.constant('subscribe'), id: fc.integer(), execution_id: fc.constant('x-1'), after_seq: fc.nat() }),
).map((frame) => encodeFrame(frame));

t.test('truncated frames and frames with trailing bytes', async (t) => {
  await fc.assert(
    fc.asyncProperty(validFrames, fc.double({ min: 0, max: 1, noNaN: true }), async (bytes, cut) => {
      const length = Math.min(bytes.length - 1, Math.floor(cut * bytes.length));
      const reply = await exchange(bytes.subarray(0, length));
      expectError(reply, ['BAD_FRAME'], `a frame cut to ${length} of ${bytes.length} bytes`);
      await goodClientWorks();
    }),
    { numRuns: RUNS },
  );
  await fc.assert(
    fc.asyncProperty(validFrames, fc.uint8Array({ minLength: 1, maxLength: 16 }), async (bytes, extra) => {
      const reply = await exchange(Buffer.concat([bytes, extra]));
      expectError(reply, ['BAD_FRAME'], `a frame with ${extra.length} trailing bytes`);
      await goodClientWorks();
    }),
    { numRuns: RUNS },
  );
  t.pass('BAD_FRAME every time');
});

t.test('random bytes and text frames', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 300 }), async (bytes) => {
      const reply = await exchange(bytes);
      expectError(reply, ['BAD_FRAME', 'UNKNOWN_OP', 'BAD_REQUEST'], `${bytes.length} random bytes`);
      await goodClientWorks();
    }),
    { numRuns: RUNS },
  );
  await fc.assert(
    fc.asyncProperty(fc.string({ maxLength: 200 }), async (text) => {
      const reply = await exchange(text.length > 0 ? text : ' ');
      expectError(reply, ['BAD_FRAME'], 'a text frame');
      await goodClientWorks();
    }),
    { numRuns: Math.min(RUNS, 100) },
  );
  // A text frame carrying a perfectly good request is still not part of the protocol.
  expectError(await exchange(JSON.stringify({ op: 'ping', id: 1 })), ['BAD_FRAME'], 'JSON in a text frame');
  t.pass('all rejected');
});

/** depth levels of [ [ [ … nil ] ] ] or {a: {a: … nil}}, as raw msgpack. */
function nested(depth: number, kind: 'array' | 'map'): Buffer {
  const level = kind === 'array' ? Buffer.from([0x91]) : Buffer.from([0x81, 0xa1, 0x61]);
  return Buffer.concat([Buffer.alloc(depth * level.length).fill(level), Buffer.from([0xc0])]);
}

t.test('deeply nested structures', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 250_000 }), fc.constantFrom<'array' | 'map'>('array', 'map'), fc.boolean(), fc.nat(), async (depth, kind, insidePing, id) => {
      const inner = nested(depth, kind);
      let bytes: Buffer;
      if (insidePing) {
        // {op: 'ping', id, deep: <nested>} — a valid ping if the server can decode that deep.
        const head = encodeFrame({ op: 'ping', id });
        bytes = Buffer.concat([Buffer.from([head[0]! + 1]), head.subarray(1), Buffer.from([0xa4, ...Buffer.from('deep')]), inner]);
      } else {
        bytes = inner;
      }
      const reply = await exchange(bytes);
      if (insidePing && reply.op === 'pong') {
        if (reply.id !== id) throw new Error('pong for the wrong id');
      } else {
        expectError(reply, ['BAD_FRAME'], `nesting ${depth} deep (${kind}${insidePing ? ' inside a ping' : ''})`);
      }
      await goodClientWorks();
    }),
    { numRuns: Math.min(RUNS, 60) },
  );
  for (const kind of ['array', 'map'] as const) {
    expectError(await exchange(nested(kind === 'array' ? 900_000 : 300_000, kind)), ['BAD_FRAME'], `the deepest ${kind} under the frame limit`);
    await goodClientWorks();
  }
  t.pass('answered without crashing');
});

t.test('frames over the size limit close that socket only, with 1009', async (t) => {
  const big = await TestClient.connect(server.url, server.token);
  big.sendRaw(encodeFrame({ op: 'execute', session_id: 'x', kind: 'repl', code: 'x'.repeat(2 * 1024 * 1024) }));
  const closed = await big.closed;
  t.equal(closed.code, 1009, 'closed with 1009 (message too big)');
  await goodClientWorks();
  const pong = await exchange(encodeFrame({ op: 'ping', id: 'after-1009' }));
  t.same([pong.op, pong.id], ['pong', 'after-1009'], 'the hostile socket itself is still open');
});

t.test('afterwards: one reply per frame, no internal errors, server alive', async (t) => {
  // Every hostile frame got exactly one reply.
  t.equal(hostile.frames.length, sent, `${sent} hostile frames, ${hostile.frames.length} replies`);
  t.notOk(hostile.frames.some((f) => f.op === 'error' && f.code === 'INTERNAL'), 'no INTERNAL errors');
  t.notMatch(server.stderr(), /request failed|uncaught|unhandled/i, 'nothing failed inside the server');
  t.equal(server.process.exitCode, null, 'the server is still running');
  await goodClientWorks();
  const n = await runRepl(good, goodSession, 'n');
  t.equal(n.events.find((e) => e.type === 'value')?.payload.preview, String(Math.floor(goodCounter / 10)), 'the good session saw every one of its executions, and only those');
  t.notOk(good.frames.some((f) => f.op === 'error'), 'the good client never saw an error');
});
