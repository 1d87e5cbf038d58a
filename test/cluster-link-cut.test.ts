/**
 * A stale owner made by a real network cut: two nodes, each in its own network namespace (`ip
 * netns`, a veth pair to a bridge in the test's namespace, where nats-server listens). The link of
 * the node running an execution goes down for longer than the lease: the other node takes the
 * session over and ends the execution (`node_lost`); when the link comes back, the cut-off node's
 * writes are fenced, it drops the session, and the log keeps exactly one `done`.
 *
 * Needs root (network namespaces), which CI has; elsewhere the test is skipped, saying why.
 */
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { TestClient } from './helpers/client.js';
import { natsFor } from './helpers/nats.js';
import { MAIN, removeDir, ROOT, startProcess, type TestServer } from './helpers/server.js';
import { doneProblems, plain, replay, seqProblem, startExecution, waitEvent } from './helpers/util.js';

const LEASE_MS = 1500;
const WAIT_MS = 120_000;

function cannotCut(): string | null {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'the `ip` command (iproute2) is missing';
  }
  return null;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** A bridge with the test's address and one namespace per node behind a veth pair; names unique to this process. */
function network(t: Tap, nodes: number) {
  const tag = `vc${process.pid % 100_000}`;
  const subnet = `10.${100 + (process.pid % 100)}.${(process.pid >> 7) % 250}`;
  const bridge = `${tag}b`;
  t.teardown(() => {
    for (let i = 0; i < nodes; i++) {
      try { ip('link', 'del', `${tag}h${i}`); } catch { /* gone with its namespace */ }
      try { ip('netns', 'del', `${tag}n${i}`); } catch { /* never made */ }
    }
    try { ip('link', 'del', bridge); } catch { /* never made */ }
  });
  ip('link', 'add', bridge, 'type', 'bridge');
  ip('addr', 'add', `${subnet}.1/24`, 'dev', bridge);
  ip('link', 'set', bridge, 'up');
  const members = Array.from({ length: nodes }, (_, i) => {
    const ns = `${tag}n${i}`;
    const host = `${tag}h${i}`;
    const peer = `${tag}p${i}`;
    ip('netns', 'add', ns);
    ip('link', 'add', host, 'type', 'veth', 'peer', 'name', peer);
    ip('link', 'set', peer, 'netns', ns);
    ip('link', 'set', host, 'master', bridge);
    ip('link', 'set', host, 'up');
    ip('-n', ns, 'addr', 'add', `${subnet}.${10 + i}/24`, 'dev', peer);
    ip('-n', ns, 'link', 'set', peer, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    return { ns, address: `${subnet}.${10 + i}`, cut: () => ip('link', 'set', host, 'down'), join: () => ip('link', 'set', host, 'up') };
  });
  return { gateway: `${subnet}.1`, members };
}

type Tap = { teardown(fn: () => unknown): void };

t.test('a node cut off past its lease is taken over, then fenced: one done', { skip: cannotCut() ?? false }, async (t) => {
  const net = network(t, 2);
  const nats = await natsFor(t, net.gateway);
  const nodes: TestServer[] = [];
  for (const [index, member] of net.members.entries()) {
    const node = await startProcess({
      command: { file: 'ip', args: ['netns', 'exec', member.ns, process.execPath, MAIN], cwd: ROOT },
      env: {
        VMSTREAM_HOST: member.address,
        VMSTREAM_STORE: 'jetstream',
        VMSTREAM_NATS_URL: nats.url,
        VMSTREAM_JS_PREFIX: 'linkcut',
        VMSTREAM_NODE_ID: `netns-${index}`,
        VMSTREAM_NODE_LEASE_MS: String(LEASE_MS),
        VMSTREAM_NODE_HEARTBEAT_MS: '300',
        VMSTREAM_SHUTDOWN_GRACE_MS: '100',
      },
    });
    nodes.push(node);
    t.teardown(async () => {
      await node.kill();
      removeDir(node.dataDir);
      removeDir(node.workspaceDir);
    });
  }
  const [taker, cutOff] = [0, 1];
  const connect = async (index: number) => {
    const client = await TestClient.connect(nodes[index]!.url, nodes[index]!.token);
    t.teardown(() => client.close());
    return client;
  };
  const owner = await connect(cutOff);
  const watcher = await connect(taker);
  const session = await owner.createSession('cut off');
  const reply = await startExecution(owner, session, 'for (let i = 0; ; i++) { console.log("line " + i); if (i % 20 === 0) await new Promise((r) => setTimeout(r, 10)); }', { execution_id: 'cut-run', timeout_ms: WAIT_MS });
  const id = reply.execution.execution_id as string;
  await watcher.expect('subscribed', { op: 'subscribe', execution_id: id, after_seq: 0 });
  await waitEvent(watcher, id, (e) => e.seq >= 50, WAIT_MS);

  const cutAt = performance.now();
  net.members[cutOff]!.cut();
  let joined = false;
  t.teardown(() => { if (!joined) net.members[cutOff]!.join(); });
  const done = await waitEvent(watcher, id, (e) => e.type === 'done', WAIT_MS);
  t.comment(`link down → node_lost done on the other node: ${Math.round(performance.now() - cutAt)} ms (lease ${LEASE_MS} ms)`);
  t.same([done.payload.status, done.payload.reason], ['crashed', 'node_lost'], 'the cut-off owner\'s execution was ended by the other node');
  net.members[cutOff]!.join();
  joined = true;

  // Back on the network: it sees the session moved, drops it; its socket gets the taker's done.
  const ownerEvents = await owner.untilDone(id, WAIT_MS);
  t.equal(seqProblem(ownerEvents.map((e) => e.seq), 1), null, "the cut-off node's own socket: no gap");
  t.same(plain(ownerEvents.slice(-1)), plain([done]), "and it ends with the taker's done");
  t.comment(`the cut-off node's refused writes (STORE_FENCED in its log): ${nodes[cutOff]!.stderr().split('STORE_FENCED').length - 1}`);
  const again = await owner.run(session, '1 + 1', { timeout_ms: WAIT_MS });
  t.equal(again.done.payload.status, 'ok', 'the session goes on, on its new owner, through the node that was cut off');
  for (const index of [taker, cutOff]) {
    const reader = await connect(index);
    const events = await replay(reader, id);
    t.equal(doneProblems(events), null, `replay on node ${index}: exactly one done, last`);
    t.equal(seqProblem(events.map((e) => e.seq), 1), null, `replay on node ${index}: contiguous`);
  }
});
