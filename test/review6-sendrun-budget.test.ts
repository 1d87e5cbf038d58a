/**
 * Review (review6): Connection.sendRun must stop where `send` one by one stops (its doc comment,
 * EventSink.sendRun's contract). It looks at the budget's room once, before the first frame; but
 * the first frame's `hold` can change that room: it returns the connection's own reservation (a
 * socket just let go by the budget), and the budget at once lets the next waiting socket go with a
 * reservation of its own. One by one, the connection then stops about one reservation (64 KiB)
 * sooner and the next socket has its turn; in one run it takes that room itself and the next socket
 * goes on waiting.
 */
import t from 'tap';
import { encodeFrame } from '../protocol/codec.js';
import { Connection, type SocketPort } from '../src/transport/connection.js';
import { SendResult } from '../src/events/subscription-hub.js';
import type { ExecutionService } from '../src/sessions/service.js';
import { SendBudget, type BudgetMember } from '../src/transport/send-budget.js';

class QuietSocket implements SocketPort {
  send(): number {
    return 0;
  }
  bufferedAmount(): number {
    return 0;
  }
  cork(fn: () => void): void {
    fn();
  }
  end(): void {}
}

const event = (seq: number) => encodeFrame({ op: 'event', execution_id: 'x', seq, type: 'console', ts: 1, payload: { level: 'log', text: 'p'.repeat(100) } });

/** A budget of 200 000 bytes, 100 000 held by another socket; `connection` let go (reserved), `next` waiting behind it. */
function start() {
  const service = { resume: async () => {}, detachAll: () => {} } as unknown as ExecutionService;
  const budget = new SendBudget(200_000);
  const connection = new Connection(new QuietSocket(), service, 'default', { backpressureBytes: 1 << 20, budget, maxFramesPerSecond: 1000, onInternalError: (error) => { throw error; } });
  const holder: BudgetMember = { proceed: () => {} };
  let nextProceeded = 0;
  const next: BudgetMember = { proceed: () => void nextProceeded++ };
  budget.hold(holder, 300_000);
  budget.wait(connection);
  budget.wait(next);
  budget.hold(holder, 100_000);
  return { connection, budget, next, proceeded: () => nextProceeded };
}

t.test('a connection let go with a reservation, another socket waiting behind it: sendRun stops where send one by one does', async (t) => {
  const frames = Array.from({ length: 2000 }, (_, index) => event(index + 1));
  const one = start();
  t.notOk(one.budget.isWaiting(one.connection), 'the connection was let go');
  t.ok(one.budget.isWaiting(one.next), 'the next socket waits');
  let sent = 0;
  let result = SendResult.SENT;
  for (const frame of frames) {
    result = one.connection.send(frame);
    if (result !== SendResult.DROPPED) sent++;
    if (result !== SendResult.SENT) break;
  }
  const run = start();
  const got = run.connection.sendRun(frames, 0, frames.length);
  t.same(got, { sent, result }, `the same frames sent (one by one: ${sent}), the same result`);
  t.equal(run.proceeded(), one.proceeded(), 'the next socket let go, or not, the same');
  t.equal(run.budget.isWaiting(run.next), one.budget.isWaiting(one.next), 'the next socket waits, or not, the same');
  t.equal(run.budget.used, one.budget.used, 'the budget holds the same');
});
