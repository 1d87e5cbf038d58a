/**
 * One write per socket per turn (src/transport/outbox.ts through Connection): what a connection is
 * sent during a turn — replies and events — leaves in one corked write, in order; a pause caused by
 * what was queued is lifted once it is written; a frame the socket refuses ends the socket.
 */
import t from 'tap';
import { decodeValue, encodeFrame } from '../protocol/codec.js';
import { Connection, type SocketPort } from '../src/transport/connection.js';
import { SendResult } from '../src/events/subscription-hub.js';
import type { ExecutionService } from '../src/sessions/service.js';
import { SendBudget } from '../src/transport/send-budget.js';

class FakeSocket implements SocketPort {
  /** Each cork's frames, decoded. */
  writes: unknown[][] = [];
  #corked: unknown[] | null = null;
  buffered = 0;
  refuseAfter = Infinity;
  ended: Array<[number, string]> = [];
  send(frame: Uint8Array): number {
    if (this.refuseAfter-- <= 0) return 2;
    const value = decodeValue(frame);
    if (this.#corked) this.#corked.push(value);
    else this.writes.push([value]);
    return 0;
  }
  bufferedAmount(): number {
    return this.buffered;
  }
  cork(fn: () => void): void {
    this.#corked = [];
    fn();
    this.writes.push(this.#corked);
    this.#corked = null;
  }
  end(code: number, reason: string): void {
    this.ended.push([code, reason]);
  }
}

function setup(backpressureBytes = 1 << 20) {
  const socket = new FakeSocket();
  const resumed: unknown[] = [];
  const service = { resume: async (sink: unknown) => void resumed.push(sink), detachAll: () => {} } as unknown as ExecutionService;
  const budget = new SendBudget(64 << 20);
  const connection = new Connection(socket, service, 'default', { backpressureBytes, budget, maxFramesPerSecond: 1000, onInternalError: (error) => { throw error; } });
  return { socket, connection, resumed, budget };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
const event = (seq: number) => encodeFrame({ op: 'event', execution_id: 'x', seq, type: 'console', ts: 1, payload: { level: 'log', text: 'p'.repeat(100) } });

t.test('replies and events of one turn leave in one corked write, in the order they were sent', async (t) => {
  const { socket, connection } = setup();
  connection.receive(encodeFrame({ op: 'ping', id: 1 }), true);
  t.equal(connection.send(event(1)), SendResult.SENT);
  connection.receive(encodeFrame({ op: 'ping', id: 2 }), true);
  t.equal(connection.send(event(2)), SendResult.SENT);
  t.same(socket.writes, [], 'nothing written during the turn');
  await turn();
  t.equal(socket.writes.length, 1, 'one write');
  t.same(socket.writes[0]!.map((f) => (f as { op: string; id?: number; seq?: number }).id ?? (f as { seq: number }).seq), [1, 1, 2, 2]);
  t.match(socket.writes[0]![0], { op: 'pong', version: '1.1' });
  await turn();
  t.equal(socket.writes.length, 1, 'no empty writes after');
});

t.test('a pause caused by what was queued is lifted once it is written; the send budget counts the queue until then', async (t) => {
  const { socket, connection, resumed, budget } = setup(1000);
  for (let seq = 1; seq <= 5; seq++) t.equal(connection.send(event(seq)), SendResult.SENT, `event ${seq}: under the threshold`);
  let result = SendResult.SENT;
  for (let seq = 6; result === SendResult.SENT; seq++) result = connection.send(event(seq));
  t.equal(result, SendResult.SENT_FULL, 'the queued bytes count toward the threshold');
  t.ok(budget.used > 1000, 'and toward the budget');
  await turn();
  t.equal(budget.used, 0, 'written: the socket holds nothing any more');
  t.equal(socket.writes.length, 1);
  t.same(resumed, [connection], 'resumed: the socket took it all, so uWS reports no drain');
});

t.test('a queued frame the socket refuses ends the socket (a gap would follow otherwise)', async (t) => {
  const { socket, connection } = setup();
  socket.refuseAfter = 1;
  connection.send(event(1));
  connection.send(event(2));
  connection.send(event(3));
  await turn();
  t.equal(socket.writes[0]!.length, 1, 'written up to the refusal');
  t.equal(socket.ended.length, 1);
  t.equal(socket.ended[0]![0], 1013);
});

t.test('a closed connection drops what it queued and sends nothing more', async (t) => {
  const { socket, connection } = setup();
  connection.send(event(1));
  connection.closed();
  t.equal(connection.send(event(2)), SendResult.DROPPED);
  await turn();
  t.same(socket.writes, []);
});

t.test('a run of frames sent at once (sendRun) stops where sending them one by one stops, and leaves the budget as it would', async (t) => {
  const frames = Array.from({ length: 40 }, (_, index) => event(index + 1));
  const other = { proceed: () => {} };
  /** A connection under a budget of `limit` where another socket holds `othersBytes`, this one let go with a reservation when `reserved`. */
  const start = (backpressureBytes: number, limit: number, othersBytes: number, reserved: boolean) => {
    const socket = new FakeSocket();
    const service = { resume: async () => {}, detachAll: () => {} } as unknown as ExecutionService;
    const budget = new SendBudget(limit);
    const connection = new Connection(socket, service, 'default', { backpressureBytes, budget, maxFramesPerSecond: 1000, onInternalError: (error) => { throw error; } });
    budget.hold(other, othersBytes + 1);
    if (reserved) budget.wait(connection);
    budget.hold(other, othersBytes);
    return { connection, budget };
  };
  for (const backpressureBytes of [500, 2000, 1 << 20]) {
    for (const [limit, othersBytes] of [[64 << 20, 0], [3000, 0], [3000, 2500], [3000, 3500], [5000, 0], [70 * 1024, 64 * 1024 - 900]] as const) {
      for (const reserved of [false, true]) {
        const name = `threshold ${backpressureBytes}, budget ${limit} with ${othersBytes} held by another${reserved ? ', let go with a reservation' : ''}`;
        const one = start(backpressureBytes, limit, othersBytes, reserved);
        let sent = 0;
        let result = SendResult.SENT;
        for (const frame of frames.slice(3)) {
          result = one.connection.send(frame);
          if (result !== SendResult.DROPPED) sent++;
          if (result !== SendResult.SENT) break;
        }
        const run = start(backpressureBytes, limit, othersBytes, reserved);
        t.same(run.connection.sendRun(frames, 3, frames.length), { sent, result }, `${name}: the same frames sent, the same result`);
        t.equal(run.budget.used, one.budget.used, `${name}: the budget holds the same`);
        t.equal(run.budget.isWaiting(run.connection), one.budget.isWaiting(one.connection), `${name}: waiting, or not, the same`);
      }
    }
  }
  const { connection } = setup();
  connection.closed();
  t.same(connection.sendRun(frames, 0, 2), { sent: 0, result: SendResult.DROPPED }, 'a closed connection sends nothing');
});

t.test('sendRun stops where send one by one does when its first frame lets the next waiting socket go', async (t) => {
  const frames = Array.from({ length: 2000 }, (_, index) => event(index + 1));
  /** A budget of 200 000 bytes with another socket holding some; `next` waits for its turn. */
  const start = () => {
    const socket = new FakeSocket();
    // Its catch-up goes on (never settles) while the test looks: its reservation is returned by its first send only.
    const service = { resume: () => new Promise(() => {}), detachAll: () => {} } as unknown as ExecutionService;
    const budget = new SendBudget(200_000);
    const connection = new Connection(socket, service, 'default', { backpressureBytes: 1 << 20, budget, maxFramesPerSecond: 1000, onInternalError: (error) => { throw error; } });
    const holder = { proceed: () => {} };
    const next = { proceeded: 0, proceed: () => void next.proceeded++ };
    return { socket, budget, connection, holder, next };
  };
  const cases: Array<[string, () => Promise<ReturnType<typeof start>>]> = [
    // The normal first send in a reconnect storm: its `hold` returns the connection's reservation.
    ['let go with a reservation, the next socket behind it', async () => {
      const setting = start();
      setting.budget.hold(setting.holder, 300_000);
      setting.budget.wait(setting.connection);
      setting.budget.wait(setting.next);
      setting.budget.hold(setting.holder, 100_000);
      return setting;
    }],
    // Its buffer drained since the last write reported it (no drain event yet): its `hold` reports less than it held.
    ['holding a figure that erred high, the next socket waiting', async () => {
      const setting = start();
      setting.budget.hold(setting.holder, 60_000);
      setting.socket.buffered = 100_000;
      setting.connection.send(event(0));
      await turn();
      setting.budget.wait(setting.next);
      setting.socket.buffered = 0;
      return setting;
    }],
  ];
  for (const [name, arrange] of cases) {
    // Both arranged before either sends: a turn after sending would write, and tell the budget of it.
    const one = await arrange();
    const run = await arrange();
    t.notOk(one.budget.isWaiting(one.connection), `${name}: the connection may send`);
    t.ok(one.budget.isWaiting(one.next), `${name}: the next socket waits`);
    let sent = 0;
    let result = SendResult.SENT;
    for (const frame of frames) {
      result = one.connection.send(frame);
      if (result !== SendResult.DROPPED) sent++;
      if (result !== SendResult.SENT) break;
    }
    t.equal(one.next.proceeded, 1, `${name}: one by one, the first send lets the next socket go`);
    t.ok(sent < frames.length, `${name}: one by one, the connection stops short of the run (${sent} sent)`);
    t.same(run.connection.sendRun(frames, 0, frames.length), { sent, result }, `${name}: the same frames sent, the same result`);
    t.equal(run.next.proceeded, one.next.proceeded, `${name}: the next socket let go, or not, the same`);
    t.equal(run.budget.isWaiting(run.connection), one.budget.isWaiting(one.connection), `${name}: the connection waits, or not, the same`);
    t.equal(run.budget.used, one.budget.used, `${name}: the budget holds the same`);
  }
});
