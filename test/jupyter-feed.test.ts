/**
 * The Jupyter feed when an execution's events cannot be delivered, at the Feed's own level: a fake
 * ExecutionService whose subscription ends the way the test says (the store faults these stand for
 * are hard to make on a real server). A log that cannot be read ends the connection (1011) so the
 * client's reconnect reads it again, but only a few times: then the feed passes over it, with a
 * note on stderr and the cell's execute_reply and idle, and goes on to the next execution. A
 * deleted log, or one the store refused the rest of, is passed over at once, with its reply too.
 */
import t from 'tap';
import type { EventFrame, ExecutionRecord } from '../protocol/types.js';
import { encodeFrame } from '../protocol/codec.js';
import type { EndReason, EventSink } from '../src/events/subscription-hub.js';
import { Feed, type FeedConnection, type FeedContext } from '../src/jupyter/feed.js';
import type { Message } from '../src/jupyter/messages.js';
import type { ExecutionService } from '../src/sessions/service.js';
import type { JupyterState } from '../src/jupyter/state.js';

const record = (number: number): ExecutionRecord => ({
  execution_id: `x${number}`, session_id: 'k', number, kind: 'repl', status: 'ok', created_at: 1, last_seq: 2, timeout_ms: 1000, code: `${number}`,
});

const done = (seq: number): EventFrame => ({ op: 'event', execution_id: '', seq, ts: 1, type: 'done', payload: { status: 'ok', duration_ms: 1 } } as EventFrame);

/** A service of two finished executions; `endOf(id)` says how a subscription to one ends (after its first event when 'complete'). */
function fakeService(endOf: (executionId: string) => EndReason) {
  const records = [record(1), record(2)];
  const subscribes: string[] = [];
  const service = {
    getSession: async () => ({ execution_count: records.length }),
    listExecutions: async (_tenant: string, _kernel: string, limit: number) => records.slice(-limit).reverse(),
    subscribe(sink: EventSink, _tenant: string, executionId: string) {
      subscribes.push(executionId);
      setImmediate(() => {
        const reason = endOf(executionId);
        if (reason === 'complete') sink.send(encodeFrame({ ...done(1), execution_id: executionId }));
        sink.ended!(executionId, reason);
      });
    },
    unsubscribe() {},
    resume: async () => {},
  };
  return { service: service as unknown as ExecutionService, subscribes };
}

/** A channel that keeps what was written; `closed` resolves when the feed fails it, `served` once x2 (the last execution) is delivered. */
function connection() {
  const written: Message[] = [];
  let fail!: (reason: string) => void;
  let serve!: () => void;
  const closed = new Promise<string>((resolve) => { fail = resolve; });
  const served = new Promise<void>((resolve) => { serve = resolve; });
  const channel: FeedConnection = {
    open: true,
    write: (messages) => {
      written.push(...messages);
      if (messages.some((message) => idleOf(message, 'x2'))) serve();
      return 0;
    },
    ping() {},
    cork: (fn) => fn(),
    replace() {},
    fail,
  };
  return { channel, written, closed, served };
}

function feedOf(service: ExecutionService): Feed {
  const context: FeedContext = {
    service,
    state: { saveCursor: async () => {} } as unknown as JupyterState,
    tenant: 't',
    kernelId: 'k',
    client: 'client',
    identity: { session: 'kernel' },
    originOf: () => null,
    onError: (error) => { throw error; },
  };
  return new Feed('key', context, { number: 0, seq: 0 });
}

/** Whether `message` is execution `id`'s idle status (its last unit). */
const idleOf = (message: Message, id: string) =>
  message.header.msg_type === 'status' && message.content.execution_state === 'idle' && message.header.msg_id.includes(`_${id}_`);

/** Attaches connections until the feed stops failing them (it does UNREADABLE_TRIES - 1 times); returns the reasons and the connection that stayed. */
async function reconnectUntilServed(feed: Feed): Promise<{ reasons: string[]; written: Message[] }> {
  const reasons: string[] = [];
  for (;;) {
    const { channel, closed, written, served } = connection();
    feed.attach(channel);
    const reason = await Promise.race([closed, served.then(() => null)]);
    if (reason === null) return { reasons, written };
    reasons.push(reason);
    feed.detach(channel);
  }
}

const typesOf = (written: Message[], id: string) => written.filter((m) => m.header.msg_id.includes(`_${id}_`)).map((m) => m.header.msg_type);

t.test('an unreadable log ends the connection twice, then is passed over with a note and its reply', async (t) => {
  const { service, subscribes } = fakeService((id) => (id === 'x1' ? 'unreadable' : 'complete'));
  const { reasons, written } = await reconnectUntilServed(feedOf(service));
  t.equal(reasons.length, 2, 'two connections end');
  for (const reason of reasons) t.match(reason, /^LOG_UNREADABLE/);
  t.same(subscribes, ['x1', 'x1', 'x1', 'x2'], 'the third try passes over x1 and goes on to x2');
  t.same(typesOf(written, 'x1'), ['status', 'execute_input', 'stream', 'execute_reply', 'status']);
  const note = written.find((m) => m.header.msg_type === 'stream')!;
  t.same(note.content.name, 'stderr');
  t.match(note.content.text, /could not be read/);
  const reply = written.find((m) => m.header.msg_type === 'execute_reply')!;
  t.match(reply.content, { status: 'ok', execution_count: 1 }, 'the reply says how the execution ended (its record)');
  t.same(typesOf(written, 'x2'), ['status', 'execute_input', 'execute_reply', 'status'], 'the next execution is delivered');
});

t.test('a gap counts as unreadable', async (t) => {
  const { service, subscribes } = fakeService((id) => (id === 'x1' ? 'gap' : 'complete'));
  const { reasons, written } = await reconnectUntilServed(feedOf(service));
  t.equal(reasons.length, 2);
  t.same(subscribes, ['x1', 'x1', 'x1', 'x2']);
  t.ok(typesOf(written, 'x1').includes('execute_reply'));
});

// Reading either again would end at the same place: no connection is ended for it.
for (const [reason, note] of [['deleted', /deleted/], ['refused', /could not be stored/]] as const) {
  t.test(`a ${reason} log is passed over at once, and its cell still gets its execute_reply`, async (t) => {
    const { service, subscribes } = fakeService((id) => (id === 'x1' ? reason : 'complete'));
    const feed = feedOf(service);
    const { channel, written, served } = connection();
    feed.attach(channel);
    await served;
    t.same(subscribes, ['x1', 'x2']);
    t.same(typesOf(written, 'x1'), ['status', 'execute_input', 'stream', 'execute_reply', 'status']);
    t.match(written.find((m) => m.header.msg_type === 'stream')!.content.text, note);
  });
}
