/**
 * src/mcp/follow.ts, the sink a run_code call follows its execution with: it settles when the
 * subscription ends, with the `done` when it came, and with the error to fail the call with when the
 * log was deleted, could not be read or was refused by the store (run_code throws it, so the model
 * sees LOG_DELETED, LOG_UNREADABLE or LOG_REFUSED instead of a result that looks finished).
 */
import t from 'tap';
import { encodeFrame } from '../protocol/codec.js';
import { ExecutionFollower } from '../src/mcp/follow.js';

const frame = (seq: number, type: string, payload: object) => encodeFrame({ op: 'event', execution_id: 'e', seq, type, ts: 0, payload });

t.test('after done: the done, no error', async (t) => {
  const follower = new ExecutionFollower(() => {});
  follower.send(frame(1, 'console', { level: 'log', text: 'hi' }));
  follower.send(frame(2, 'done', { status: 'ok', duration_ms: 1 }));
  follower.ended('default/e', 'complete');
  t.match(await follower.finished, { done: { status: 'ok' }, lastSeq: 2, error: null });
});

t.test('detached (the client went away): no done, no error', async (t) => {
  const follower = new ExecutionFollower(() => {});
  follower.ended('default/e', 'detached');
  t.match(await follower.finished, { done: null, error: null });
});

t.test('short of done: the error for the reason, naming the client\'s execution id', async (t) => {
  for (const [reason, code] of [['deleted', 'LOG_DELETED'], ['unreadable', 'LOG_UNREADABLE'], ['gap', 'LOG_UNREADABLE'], ['refused', 'LOG_REFUSED']] as const) {
    const follower = new ExecutionFollower(() => {});
    follower.send(frame(1, 'console', { level: 'log', text: 'hi' }));
    follower.ended('default/e', reason);
    const followed = await follower.finished;
    t.match(followed, { done: null, lastSeq: 1, error: { code, message: /execution `e`/ } }, reason);
  }
});
