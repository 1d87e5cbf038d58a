/**
 * A run and the abort that stops it, reaching a worker in one message (the pool posts a turn's
 * requests together): the abort is heard only once the run's first microtasks have drained. A run
 * that can be stopped ends with the abort's status; an endless `await` chain is never reported
 * over while it holds the thread, and so is ended by the kill the engine sends after its grace.
 * The worker is the built one (dist/), as a sandbox process starts it.
 */
import t, { type Test } from 'tap';
import type { SandboxListener, SandboxOutput } from '../src/sandbox/sandbox.js';
import type { WorkerPool as Pool } from '../src/pool/worker-pool.js';

const { WorkerPool } = (await import(new URL('../dist/src/pool/worker-pool.js', import.meta.url).href)) as { WorkerPool: typeof Pool };

interface Lost { sessionIds: string[]; reason: string; killed: boolean }

function pool(t: Test) {
  const outputs: SandboxOutput[] = [];
  const waiters: Array<() => void> = [];
  let onLost: (lost: Lost) => void = () => {};
  const lost = new Promise<Lost>((resolve) => (onLost = resolve));
  const listener: SandboxListener = {
    onOutput(output) {
      outputs.push(output);
      for (const wake of waiters.splice(0)) wake();
    },
    acceptingOutput: () => true,
    onRestored() {},
    onLost: (sessionIds, reason, killed) => onLost({ sessionIds, reason, killed }),
  };
  const sandbox = new WorkerPool({ size: 1, heapMb: 64, limits: { maxText: 1000, maxPreview: 1000 } }, listener);
  t.teardown(() => sandbox.shutdown());
  const output = async (kind: SandboxOutput['kind'], xid: string) => {
    for (;;) {
      const found = outputs.find((o) => o.kind === kind && o.executionId === xid);
      if (found) return found;
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  const done = (xid: string) => output('done', xid);
  return { sandbox, outputs, lost, output, done };
}

t.test('a run awaiting a timer, aborted in the same message: it ends with the abort\'s status', async (t) => {
  const { sandbox, done } = pool(t);
  sandbox.open({ sessionId: 's', tenant: 't' });
  sandbox.run({ sessionId: 's', executionId: 'x1', kind: 'repl', code: 'await new Promise((r) => setTimeout(r, 60000))', filename: 'REPL1' });
  sandbox.abort('s', 'x1', 'cancelled');
  t.match(await done('x1'), { kind: 'done', status: 'cancelled' });
  sandbox.run({ sessionId: 's', executionId: 'x2', kind: 'repl', code: '1 + 1', filename: 'REPL2' });
  t.match(await done('x2'), { kind: 'done', status: 'ok' }, 'the thread is free for the next run');
});

t.test('an endless await chain, aborted in the same message: not reported over, ended by the kill', async (t) => {
  const { sandbox, outputs, lost, output } = pool(t);
  sandbox.open({ sessionId: 's', tenant: 't' });
  // Printed from the chain's first microtask: after the abort, had the abort been heard first
  // (and then not printed at all: a run reported over has no output).
  sandbox.run({ sessionId: 's', executionId: 'x1', kind: 'repl', code: "await null; console.log('chained'); for (;;) await null", filename: 'REPL1' });
  sandbox.abort('s', 'x1', 'timeout');
  await output('encoded', 'x1');
  // What the engine does when a stopped run does not end within its grace.
  sandbox.kill('s', 'timeout');
  t.same(await lost, { sessionIds: ['s'], reason: 'timeout', killed: true });
  t.same(outputs.filter((o) => o.kind === 'done'), [], 'no done: the run held its thread to the end');
});
