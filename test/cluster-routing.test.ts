/**
 * The session directory and forwarding (src/cluster/directory.ts, router.ts) in-process against a
 * real nats-server, with no vmstream server: owner claims are compare-and-set (of racing transfers
 * from one revision exactly one wins), a node finds a session's owner it has not seen yet with one
 * KV get, and a request for a session whose owner is gone waits for the owner key to move and goes
 * to the new owner, or fails INTERNAL once the forward timeout has passed.
 */
import t, { type Test } from 'tap';
import { ProtocolError } from '../protocol/errors.js';
import { Cluster } from '../src/cluster/cluster.js';
import { ClusterRouter } from '../src/cluster/router.js';
import { NotOwnerError, type ForwardedRequest } from '../src/cluster/routing.js';
import { natsFor, type TestNats } from './helpers/nats.js';

async function open(t: Test, nats: TestNats, prefix: string, nodeId: string, forwardTimeoutMs = 5_000): Promise<{ cluster: Cluster; router: ClusterRouter }> {
  const cluster = await Cluster.open({
    servers: [nats.url],
    prefix,
    replicas: 1,
    nodeId,
    heartbeatMs: 100,
    leaseMs: 1_000,
    onConflict: (message) => t.fail(message),
    onError: () => undefined,
  });
  const router = new ClusterRouter(cluster, forwardTimeoutMs, (error) => t.error(error));
  t.teardown(async () => {
    router.close();
    await cluster.close();
  });
  return { cluster, router };
}

const request: ForwardedRequest = { op: 'session.close', tenant: 't', args: { session_id: 's-1' } };

t.test('owners: claimed once, moved by compare-and-set, found by a node that has not seen them', async (t) => {
  const nats = await natsFor(t);
  const a = await open(t, nats, 'owners', 'node-a');
  const b = await open(t, nats, 'owners', 'node-b');
  const owner = await a.cluster.directory.claim('s-1', { node: 'node-a', epoch: a.cluster.epoch });
  await t.rejects(b.cluster.directory.claim('s-1', { node: 'node-b', epoch: b.cluster.epoch }), 'a second claim of a session is refused');
  t.equal((await b.cluster.directory.refreshOwner('s-1'))?.node, 'node-a', 'B reads the owner from KV');

  const moves = await Promise.allSettled([
    a.cluster.directory.transfer('s-1', { node: 'node-a2', epoch: 'x' }, owner.revision),
    b.cluster.directory.transfer('s-1', { node: 'node-b', epoch: b.cluster.epoch }, owner.revision),
  ]);
  t.equal(moves.filter((move) => move.status === 'fulfilled').length, 1, 'of two transfers from one revision, one wins');
  const winner = (moves.find((move) => move.status === 'fulfilled') as PromiseFulfilledResult<{ node: string; revision: number }>).value;
  const seen = await a.cluster.directory.ownerChanged('s-1', owner.revision, 5_000);
  t.equal(seen?.node, winner.node, 'the other node\'s view follows the move');
  t.equal(seen?.revision, winner.revision, 'with its revision, for the next compare-and-set');
});

t.test('a request for a session whose owner is gone waits for the move, then goes to the new owner', async (t) => {
  const nats = await natsFor(t);
  const a = await open(t, nats, 'forward', 'node-a');
  const b = await open(t, nats, 'forward', 'node-b');
  const served: ForwardedRequest[] = [];
  b.router.serve(async (received) => {
    served.push(received);
    return { closed: received.args.session_id };
  });
  // Owned by a node that is not there: requests to it get "no responders".
  const lost = await a.cluster.directory.claim('s-1', { node: 'node-gone', epoch: 'old' });
  let ranLocally = false;
  const answer = a.router.route('s-1', request, async () => ((ranLocally = true), { closed: 'here' }));
  // The move a takeover makes, after the forwarder's first try has failed.
  await new Promise<void>((resolve) => {
    const check = () => (a.router.stats.forwardRetries > 0 ? resolve() : setTimeout(check, 10));
    check();
  });
  await b.cluster.directory.transfer('s-1', { node: 'node-b', epoch: b.cluster.epoch }, lost.revision);
  t.same(await answer, { closed: 's-1' }, 'answered by the new owner');
  t.same(served, [request], 'which ran it once');
  t.notOk(ranLocally, 'not run on the forwarding node');
  t.equal(a.router.stats.forwarded, 1, 'one request forwarded');
  t.equal(a.router.stats.forwardFailures, 0);

  const back = await b.cluster.directory.transfer('s-1', { node: 'node-a', epoch: a.cluster.epoch }, (await a.cluster.directory.refreshOwner('s-1'))!.revision);
  // A routes by its own view: once the watch brought the move there.
  await a.cluster.directory.ownerChanged('s-1', back.revision - 1, 5_000);
  t.same(await a.router.route('s-1', request, async () => ({ closed: 'here' })), { closed: 'here' }, 'a session this node owns runs here');
});

t.test('a request run here whose write was fenced (the session moved, the view lags) goes to the new owner', async (t) => {
  const nats = await natsFor(t);
  const a = await open(t, nats, 'fenced', 'node-a');
  const b = await open(t, nats, 'fenced', 'node-b');
  b.router.serve(async (received) => ({ closed: received.args.session_id, by: 'node-b' }));
  const owner = await a.cluster.directory.claim('s-1', { node: 'node-a', epoch: a.cluster.epoch });
  let tries = 0;
  const answer = await a.router.route('s-1', request, async () => {
    tries++;
    // Taken over while this node ran it: its store refused the write (ExecutionService turns that into NotOwnerError).
    await b.cluster.directory.transfer('s-1', { node: 'node-b', epoch: b.cluster.epoch }, owner.revision);
    throw new NotOwnerError('fenced');
  });
  t.same(answer, { closed: 's-1', by: 'node-b' }, 'answered by the new owner');
  t.equal(tries, 1, 'run here once');
  t.equal(a.router.stats.forwarded, 1, 'then forwarded');
});

t.test('no owner answers within the forward timeout: INTERNAL', async (t) => {
  const nats = await natsFor(t);
  const a = await open(t, nats, 'timeout', 'node-a', 300);
  await a.cluster.directory.claim('s-1', { node: 'node-gone', epoch: 'old' });
  const error = await a.router.route('s-1', request, async () => 'here').then(() => null, (failure: unknown) => failure);
  t.ok(error instanceof ProtocolError && error.code === 'INTERNAL', 'INTERNAL');
  t.match((error as Error).message, /did not answer/);
  t.equal(a.router.stats.forwardFailures, 1, 'counted');
});
