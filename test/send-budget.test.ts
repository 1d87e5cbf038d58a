/**
 * The global budget for bytes waiting in socket buffers (src/transport/send-budget.ts), in
 * process: alone, sockets are let go in the order they began to wait; and under real Connections
 * and a real subscription hub, fed by sockets that drain a little at a time, every subscriber of
 * a stored execution gets all of its events once, in order, while the bytes buffered in all
 * sockets together stay near the budget.
 */
import t from 'tap';
import { SendBudget, type BudgetMember } from '../src/transport/send-budget.js';
import { Connection, type SocketPort } from '../src/transport/connection.js';
import { SubscriptionHub } from '../src/events/subscription-hub.js';
import type { LiveFeed } from '../src/events/live-feed.js';
import type { ExecutionService } from '../src/sessions/service.js';
import { decodeValue, encodeFrame } from '../protocol/codec.js';
import { MemoryEventStore } from './helpers/memory-store.js';

const KIB = 1024;

class Member implements BudgetMember {
  constructor(readonly name: string, readonly log: string[]) {}
  proceed(): void {
    this.log.push(this.name);
  }
}

t.test('waiting sockets are let go in the order they came, as room (with each one\'s reservation) allows', async (t) => {
  const log: string[] = [];
  const [hog, a, b, c] = ['hog', 'a', 'b', 'c'].map((name) => new Member(name, log)) as [Member, Member, Member, Member];
  const budget = new SendBudget(100 * KIB);
  t.equal(budget.hold(hog, 300 * KIB), false, 'past the limit');
  budget.wait(a);
  budget.wait(b);
  budget.wait(a);
  budget.wait(c);
  t.same(log, [], 'nobody goes while the buffers are full');
  budget.hold(hog, 0);
  t.same(log, ['a'], 'the first goes, with room reserved for it');
  budget.settle(a);
  t.same(log, ['a', 'b'], 'it had nothing to send: the next goes');
  t.equal(budget.hold(b, 10 * KIB), true, 'b sends');
  t.same(log, ['a', 'b', 'c'], 'its reservation is replaced by what it holds, and c fits');
  t.ok(budget.open, 'nobody waits');
  budget.remove(b);
  budget.remove(c);
  t.equal(budget.used, 0, 'closed sockets hold nothing');
});

t.test('a socket that closes while it waits gives up its place', async (t) => {
  const log: string[] = [];
  const [hog, a, b] = ['hog', 'a', 'b'].map((name) => new Member(name, log)) as [Member, Member, Member];
  const budget = new SendBudget(100 * KIB);
  budget.hold(hog, 200 * KIB);
  budget.wait(a);
  budget.wait(b);
  budget.remove(a);
  budget.remove(hog);
  t.same(log, ['b']);
});

/** A socket whose peer reads only when the test says, `bytes` at a time. */
class FakeSocket implements SocketPort {
  buffered = 0;
  sent: Uint8Array[] = [];
  received: Uint8Array[] = [];
  send(frame: Uint8Array): number {
    this.sent.push(frame);
    this.buffered += frame.length;
    return this.buffered > 0 ? 1 : 0;
  }
  bufferedAmount(): number {
    return this.buffered;
  }
  cork(fn: () => void): void {
    fn();
  }
  end(): void {}
  /** The peer reads up to `bytes`; true when anything was read. */
  drain(bytes: number): boolean {
    let read = 0;
    while (this.sent.length > 0 && read < bytes) {
      const frame = this.sent.shift()!;
      read += frame.length;
      this.received.push(frame);
    }
    this.buffered -= read;
    return read > 0;
  }
}

t.test('a storm of subscribers under a small budget: all of them get every event once, in order, a few at a time', async (t) => {
  const id = 'storm';
  const finalSeq = 2000;
  const store = new MemoryEventStore();
  await store.open();
  t.teardown(() => store.close());
  const frames = Array.from({ length: finalSeq }, (_, i) => encodeFrame({ op: 'event', execution_id: id, seq: i + 1, type: 'console', ts: 1, payload: { level: 'log', text: `line ${i + 1}` } }));
  await store.commit({ sessions: [], executions: [], events: [{ executionId: id, firstSeq: 1, frames }] });
  const feed: LiveFeed = {
    committedSeq: () => undefined,
    locate: async () => ({ lastSeq: finalSeq, finalSeq }),
    follow: () => {},
    unfollow: () => {},
  };
  const hub = new SubscriptionHub(store, feed, (error) => t.fail(String(error)));
  const service = { resume: (sink: Connection) => hub.resume(sink), detachAll: (sink: Connection) => hub.detachAll(sink) } as unknown as ExecutionService;
  const limit = 16 * KIB;
  const budget = new SendBudget(limit);
  const clients = 40;
  const sockets = Array.from({ length: clients }, () => new FakeSocket());
  const connections = sockets.map((socket) => new Connection(socket, service, 'tenant', { backpressureBytes: 8 * KIB, budget, maxFramesPerSecond: 1000, onInternalError: (error) => t.fail(String(error)) }));
  const afterSeqs = sockets.map((_, i) => Math.floor((i * finalSeq) / clients));
  const frameBytes = Math.max(...frames.map((frame) => frame.length));
  let mostBuffered = 0;
  const measure = () => { mostBuffered = Math.max(mostBuffered, sockets.reduce((sum, socket) => sum + socket.buffered, 0)); };

  connections.forEach((connection, i) => hub.attach(connection, id, afterSeqs[i]!, finalSeq));
  const done = () => sockets.every((socket, i) => socket.received.length + socket.sent.length === finalSeq - afterSeqs[i]! && socket.sent.length === 0);
  let rounds = 0;
  while (!done()) {
    rounds++;
    // Let the hub's reads and catch-ups run, then every peer reads a little and its socket says so.
    await new Promise((resolve) => setImmediate(resolve));
    measure();
    let progressed = false;
    sockets.forEach((socket, i) => {
      if (socket.drain(2 * KIB)) {
        progressed = true;
        connections[i]!.drained();
      }
    });
    if (!progressed && rounds > 10_000) break;
  }
  t.ok(done(), `every subscriber finished (${rounds} rounds)`);
  sockets.forEach((socket, i) => {
    const seqs = socket.received.map((frame) => (decodeValue(frame) as { seq: number }).seq);
    const expected = Array.from({ length: finalSeq - afterSeqs[i]! }, (_, k) => afterSeqs[i]! + 1 + k);
    if (JSON.stringify(seqs) !== JSON.stringify(expected)) t.fail(`subscriber ${i} (after ${afterSeqs[i]}) got ${seqs.length} events, not ${expected.length} in order`);
  });
  t.ok(mostBuffered <= limit + clients * frameBytes, `at most ${mostBuffered} bytes buffered in all sockets (budget ${limit}, + one frame per socket)`);
  t.ok(hub.pauses > clients, `sockets waited their turn (${hub.pauses} pauses)`);
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(budget.used, 0, 'nothing held or reserved once all is read');
  t.ok(budget.open, 'nobody waits');
});
