/**
 * The SDK when the server ends a followed execution's subscription short of its `done` (an `error`
 * frame with the execution_id, LOG_DELETED, LOG_REFUSED or LOG_UNREADABLE): a proxy in front of
 * the real server adds that frame after an event and drops the events the ended subscription would
 * no longer send. A deleted log, or one the store refused the rest of, fails the caller at once; an
 * unreadable one is subscribed again from the last delivered seq, and fails the caller only when
 * that keeps failing.
 */
import t, { type Test } from 'tap';
import { ServerError, type EventFrame } from 'vmstream/client';
import { FrameProxy, seqsOf, serverFrame } from './helpers/proxy.js';
import { connect, linesCode } from './helpers/sdk.js';
import { startServer } from './helpers/server.js';
import type { ServerFrame } from '../protocol/types.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

const server = await startServer();
t.teardown(() => server.stop());

/**
 * A proxy that ends the execution's subscription with `code` once the frame carrying `atSeq` has
 * passed, and (`everySubscribe`) again after each `subscribed` reply; event frames of an ended
 * subscription are dropped until a `subscribed` reply starts a new one.
 */
async function ending(t: Test, executionId: string, code: string, atSeq: number, everySubscribe: boolean) {
  const proxy = await FrameProxy.start(server.port);
  t.teardown(() => proxy.close());
  const seen = { subscribes: 0, errors: 0 };
  let ended = false;
  const end = (raw: Buffer) => {
    ended = true;
    seen.errors++;
    return [raw, serverFrame({ op: 'error', code, message: `${code} (the test's proxy)`, execution_id: executionId })];
  };
  proxy.filter = (frame: ServerFrame, raw) => {
    if (frame.op === 'subscribed' && frame.execution_id === executionId) {
      seen.subscribes++;
      ended = false;
      return everySubscribe ? end(raw) : [raw];
    }
    const seqs = seqsOf(frame);
    if (seqs.length === 0) return [raw];
    if (ended) return [];
    return seen.errors === 0 && seqs.includes(atSeq) ? end(raw) : [raw];
  };
  const { client } = await connect(`ws://127.0.0.1:${proxy.port}/v1/ws`, server.token);
  t.teardown(() => client.close());
  return { proxy, client, seen, session: await client.createSession() };
}

for (const code of ['LOG_DELETED', 'LOG_REFUSED']) {
  t.test(`${code} fails the execution at once, after the events delivered before it`, async (t) => {
    const executionId = code.toLowerCase().replace('_', '-');
    const { proxy, client, seen, session } = await ending(t, executionId, code, 5, false);
    const events: EventFrame[] = [];
    const error = await client.execute(session, linesCode(20), { executionId, onEvent: (e) => events.push(e) }).catch((e: unknown) => e);
    t.type(error, ServerError);
    t.match(error, { code, message: /the test's proxy/ });
    t.same(events.map((e) => e.seq), range(events.length), 'what came before, once, in order');
    t.ok(events.length >= 5 && events.length < 22, `no done: ${events.length} events`);
    t.equal(seen.subscribes, 0, 'not subscribed again');
    t.equal(proxy.upgrades, 1, 'the connection stayed up');
  });
}

t.test('LOG_UNREADABLE once: subscribed again from the last seq, every event once, in order', async (t) => {
  const { client, seen, session } = await ending(t, 'log-unreadable-once', 'LOG_UNREADABLE', 5, false);
  const events: EventFrame[] = [];
  const record = await client.execute(session, linesCode(20), { executionId: 'log-unreadable-once', onEvent: (e) => events.push(e) });
  t.equal(record.status, 'ok');
  t.same(events.map((e) => e.seq), range(22), 'every seq once, in order');
  t.equal(seen.subscribes, 1, 'one subscribe again');
});

t.test('LOG_UNREADABLE every time: fails after 3 subscribes again in a row', async (t) => {
  const { client, seen, session } = await ending(t, 'log-unreadable', 'LOG_UNREADABLE', 5, true);
  const events: EventFrame[] = [];
  const error = await client.execute(session, linesCode(20), { executionId: 'log-unreadable', onEvent: (e) => events.push(e) }).catch((e: unknown) => e);
  t.type(error, ServerError);
  t.match(error, { code: 'LOG_UNREADABLE' });
  t.equal(seen.subscribes, 3, 'subscribed again 3 times');
  t.equal(seen.errors, 4, 'the first end and one after each subscribe');
  t.same(events.map((e) => e.seq), range(events.length), 'what came before, once, in order');
});

const timers = () => process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;

t.test('a follow that ends while a subscribe again waits leaves no timer and sends no subscribe', async (t) => {
  // The error frame after seq 5, and every event after it too: the `done` ends the follow during the wait.
  const { proxy, client, seen, session } = await ending(t, 'log-unreadable-ends', 'LOG_UNREADABLE', 5, false);
  const filter = proxy.filter!;
  proxy.filter = (frame: ServerFrame, raw, connection) => (seen.errors === 0 ? filter(frame, raw, connection) : [raw]);
  const before = timers();
  const record = await client.execute(session, linesCode(20), { executionId: 'log-unreadable-ends' });
  t.equal(record.status, 'ok');
  t.equal(seen.errors, 1, 'the subscription was ended once');
  t.ok(timers() <= before, 'the subscribe again was cleared when the follow ended');
  await client.createSession();
  t.equal(seen.subscribes, 0, 'no subscribe was sent after the follow ended');
});
