/**
 * ExecutionService on a cluster, in process: two services (nodes A and B) over one in-memory store
 * location, each with a fake sandbox, joined by a FakeRouting (test/helpers/fake-routing.ts). What
 * needs a session's context runs on its owner, whichever node was asked; the rest is served where
 * it is asked.
 */
import t, { type Test } from 'tap';
import { ProtocolError } from '../protocol/errors.js';
import { DEFAULTS, type Config } from '../src/config.js';
import { NotOwnerError } from '../src/cluster/routing.js';
import { ExecutionService } from '../src/sessions/service.js';
import { FakeSandbox } from './helpers/fake-sandbox.js';
import { FakeCluster } from './helpers/fake-routing.js';
import { MemoryEventStore } from './helpers/memory-store.js';
import { removeDir, tempDir } from './helpers/server.js';

interface Node { service: ExecutionService; sandbox: FakeSandbox }

async function twoNodes(t: Test, overrides: Partial<Config> = {}): Promise<{ a: Node; b: Node; cluster: FakeCluster }> {
  const dir = tempDir('routing');
  const config: Config = { ...DEFAULTS, dataDir: dir, workspaceDir: dir, shutdownGraceMs: 0, ...overrides };
  const first = new MemoryEventStore();
  const cluster = new FakeCluster(first.location);
  const node = async (nodeId: string, store: MemoryEventStore): Promise<Node> => {
    await store.open();
    let sandbox!: FakeSandbox;
    const routing = cluster.routing(nodeId);
    const service = new ExecutionService(config, store, (listener) => (sandbox = new FakeSandbox(listener)), { onError: (context, error) => t.fail(`${context}: ${String(error)}`) }, routing);
    await service.recover();
    routing.serve((request) => service.serveForwarded(request));
    t.teardown(() => service.shutdown());
    return { service, sandbox };
  };
  const a = await node('node-a', first);
  const b = await node('node-b', new MemoryEventStore(first.location));
  t.teardown(() => removeDir(dir));
  return { a, b, cluster };
}

t.test('execute through B runs on the owner A, under an id B chose, once however often it is resent', async (t) => {
  const { a, b, cluster } = await twoNodes(t);
  const session = await a.service.createSession('t', 'on A');
  t.same(b.service.listSessions('t').map((record) => record.session_id), [session.session_id], 'B lists A\'s session');

  const { record, created } = await b.service.execute('t', { session_id: session.session_id, kind: 'repl', code: '1 + 1' });
  t.ok(created, 'created');
  const run = await a.sandbox.take('run');
  t.equal(run.executionId.endsWith(record.execution_id), true, 'A runs it');
  t.equal(b.sandbox.calls.filter((call) => call.op === 'run').length, 0, 'B runs nothing');
  t.equal(cluster.forwarded.length, 1, 'one forward');
  t.equal(cluster.forwarded[0]!.request.args.execution_id, record.execution_id, 'carrying the id B gave it before sending');

  const again = await b.service.execute('t', { session_id: session.session_id, kind: 'repl', code: '1 + 1', execution_id: record.execution_id });
  t.same([again.created, again.record.number], [false, record.number], 'resent: the same execution');
  a.sandbox.done(run.executionId);
  t.equal(a.sandbox.calls.filter((call) => call.op === 'run').length, 1, 'run once');
});

t.test('close and rename through B happen on A; A refuses what it does not own', async (t) => {
  const { a, b } = await twoNodes(t);
  const session = await a.service.createSession('t', 'before');
  t.equal((await b.service.renameSession('t', session.session_id, 'after')).name, 'after', 'renamed through B');
  t.equal((await a.service.getSession('t', session.session_id)).name, 'after', 'on A');
  t.equal((await b.service.closeSession('t', session.session_id)).status, 'closed', 'closed through B');
  t.equal((await a.service.getSession('t', session.session_id)).status, 'closed', 'on A');
  await t.rejects(b.service.execute('t', { session_id: session.session_id, kind: 'repl', code: '1' }), { code: 'SESSION_CLOSED' }, 'A refuses new work in it');

  const other = await a.service.createSession('t');
  await t.rejects(b.service.serveForwarded({ op: 'session.close', tenant: 't', args: { session_id: other.session_id } }), NotOwnerError, 'B does not own A\'s session');
  await t.rejects(a.service.serveForwarded({ op: 'session.close', tenant: 'u', args: { session_id: other.session_id } }), { code: 'NOT_FOUND' }, 'nor is it another tenant\'s');
  await t.rejects(b.service.closeSession('u', other.session_id), { code: 'NOT_FOUND' }, 'another tenant gets NOT_FOUND through B');
});

t.test('getSession on B finds a session of A that B\'s view does not hold yet (no NOT_FOUND window)', async (t) => {
  const { a, b, cluster } = await twoNodes(t);
  const session = await a.service.createSession('t', 'just made');
  cluster.unseen.add(session.session_id);
  t.equal((await b.service.getSession('t', session.session_id)).name, 'just made', 'found through the KV get');
  await t.rejects(b.service.getSession('other', session.session_id), { code: 'NOT_FOUND' }, "another tenant's is NOT_FOUND");
  await t.rejects(b.service.getSession('t', 'no-such-session'), { code: 'NOT_FOUND' }, 'and so is one that does not exist');
});

t.test('the session limit counts every node\'s sessions', async (t) => {
  const { a, b } = await twoNodes(t, { maxOpenSessions: 2 });
  await a.service.createSession('t');
  await b.service.createSession('t');
  await t.rejects(a.service.createSession('t'), { code: 'LIMIT_EXCEEDED' }, 'the third is refused on A');
  t.equal((await a.service.createSession('u')).tenant, 'u', 'another tenant has its own');
});

t.test('an owner that does not answer: INTERNAL, and nothing runs on the asking node', async (t) => {
  const { a, b, cluster } = await twoNodes(t);
  const session = await a.service.createSession('t');
  cluster.down.add('node-a');
  const error = await b.service.execute('t', { session_id: session.session_id, kind: 'repl', code: '1' }).then(() => null, (failure: unknown) => failure);
  t.ok(error instanceof ProtocolError && error.code === 'INTERNAL', 'INTERNAL');
  t.equal(b.sandbox.calls.filter((call) => call.op === 'run').length, 0, 'B ran nothing');
});
