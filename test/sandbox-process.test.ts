/**
 * Sandbox processes, seen from outside through /proc (the tests run as root, like CI): the process
 * that runs a tenant's spinning session is not the server, not root, in a network namespace of its
 * own, with an empty environment and no way to read the server's data folder; two tenants never
 * share one; killing one mid-run costs only that tenant's run; a fatal out-of-memory in one
 * tenant's process leaves another tenant's running execution untouched.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { addTenant, tempDir, type TestServer } from './helpers/server.js';
import { TestClient } from './helpers/client.js';
import { serverFor } from './helpers/util.js';
import { afterRestoring, last, runRepl, type AnyEvent } from './helpers/loose.js';
import { newSandboxPid, procInfo, sandboxPids, spinning } from './helpers/proc.js';

const SPIN = 'console.log("spinning"); for (;;) {}';

interface Tenants {
  server: TestServer;
  alice: TestClient;
  bob: TestClient;
  tokens: string[];
  tokensFile: string;
}

async function twoTenants(t: Test, env: Record<string, string> = {}): Promise<Tenants> {
  const tokensFile = path.join(tempDir('sandbox-tokens'), 'tokens');
  const tokens = [addTenant(tokensFile, 'alice'), addTenant(tokensFile, 'bob')];
  const server = await serverFor(t, { env: { VMSTREAM_TOKENS_FILE: tokensFile, VMSTREAM_TOKEN: '', ...env } });
  const [alice, bob] = await Promise.all(tokens.map((token) => TestClient.connect(server.url, token)));
  t.teardown(() => Promise.all([alice!.close(), bob!.close()]));
  return { server, alice: alice!, bob: bob!, tokens, tokensFile };
}

async function start(client: TestClient, sessionId: string, code: string, timeoutMs = 120_000): Promise<string> {
  const reply = await client.expect('execution', { op: 'execute', session_id: sessionId, kind: 'repl', code, timeout_ms: timeoutMs });
  return reply.execution.execution_id as string;
}

/** Starts the spin and waits until it runs (it printed). */
async function spin(client: TestClient, sessionId: string): Promise<string> {
  const executionId = await start(client, sessionId, SPIN);
  await client.waitFor((f) => f.op === 'event' && f.execution_id === executionId && f.type === 'console');
  return executionId;
}

async function readyz(server: TestServer): Promise<any> {
  return (await fetch(`http://127.0.0.1:${server.port}/readyz`)).json();
}

/** A PATH with util-linux's tools and no bwrap: the server falls back to unshare + setpriv. */
function pathWithoutBwrap(): string {
  const dir = path.join(tempDir('sandbox-path'), 'bin');
  mkdirSync(dir);
  for (const tool of ['unshare', 'setpriv', 'prlimit']) symlinkSync(`/usr/bin/${tool}`, path.join(dir, tool));
  return dir;
}

/** Whether the sandbox user can read `file`: absent from the process's root, or refused by permissions. */
function readableBy(pid: number, file: string): boolean {
  if (!existsSync(`/proc/${pid}/root${file}`)) return false;
  const { uid, gid } = procInfo(pid);
  return spawnSync('setpriv', [`--reuid=${uid[0]}`, `--regid=${gid[0]}`, '--clear-groups', 'cat', file], { stdio: 'ignore' }).status === 0;
}

for (const [confinement, env] of [['bwrap', {}], ['unshare', { PATH: pathWithoutBwrap() }]] as const) {
  t.test(`${confinement}: the process running a spinning session is confined, one per tenant`, async (t) => {
    const { server, alice, bob, tokens, tokensFile } = await twoTenants(t, env);
    const serverPid = server.process.pid!;
    const ready = await readyz(server);
    t.same(ready.sandbox, { confinement, confined: true, detail: ready.sandbox.detail }, `/readyz: confined with ${confinement}`);

    const aliceSession = await alice.createSession();
    await spin(alice, aliceSession);
    const pid = await newSandboxPid(serverPid, []);
    await spinning(pid);
    const info = procInfo(pid);
    const server_ = procInfo(serverPid);
    t.not(pid, serverPid, 'not the server');
    t.ok(info.uid.every((id) => id !== 0 && id !== server_.uid[0]) && info.gid.every((id) => id !== 0), `not root, not the server's user (uid ${info.uid[0]})`);
    t.not(info.netns, server_.netns, 'a network namespace of its own');
    t.equal(info.environ, '', 'an empty environment');
    for (const token of [...tokens, server.token]) t.notOk(info.cmdline.includes(token), 'no token in its arguments');
    t.equal(statSync(server.dataDir).mode & 0o777, 0o700, 'the data folder is the server\'s alone');
    t.notOk(readableBy(pid, path.join(server.dataDir, 'events', 'CURRENT')), 'the event log is out of its reach');
    t.notOk(readableBy(pid, tokensFile), 'the tokens file is out of its reach');
    const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
    t.match(limits, /Max address space\s+\d+/, 'an address-space limit');
    const net = readFileSync(`/proc/${pid}/net/dev`, 'utf8').split('\n').slice(2).filter((line) => line.trim() && !line.trim().startsWith('lo:'));
    t.same(net, [], 'no network interface but a loopback of its own');

    const bobSession = await bob.createSession();
    await spin(bob, bobSession);
    const bobPid = await newSandboxPid(serverPid, [pid]);
    await spinning(bobPid);
    t.not(bobPid, pid, 'the other tenant\'s spinning session is in another process');
    const after = await readyz(server);
    t.equal(after.status, 'ready', `ready with both processes up: ${JSON.stringify(after)}`);
  });
}

t.test('kill -9 of a tenant\'s process mid-run: that run crashes once, the rest carry on, the session comes back', async (t) => {
  const { server, alice, bob } = await twoTenants(t);
  const serverPid = server.process.pid!;
  const aliceSession = await alice.createSession();
  t.equal(last((await runRepl(alice, aliceSession, 'globalThis.kept = 41')).events).payload.status, 'ok');
  const alicePid = await newSandboxPid(serverPid, []);
  const bobSession = await bob.createSession();
  t.equal(last((await runRepl(bob, bobSession, 'let count = 1')).events).payload.status, 'ok');
  const bobPid = await newSandboxPid(serverPid, [alicePid]);

  const spinRun = await spin(alice, aliceSession);
  const bobRun = await start(bob, bobSession, 'for (let i = 0; i < 50; i++) { console.log(`tick ${i}`); await new Promise((r) => setTimeout(r, 20)); } count + 1');
  process.kill(alicePid, 'SIGKILL');
  const events = (await alice.untilDone(spinRun)) as AnyEvent[];
  const done = events.filter((e) => e.type === 'done');
  t.equal(done.length, 1, 'one done');
  t.match(done[0]!.payload, { status: 'crashed', reason: 'sandbox_exit', session: 'rebuilt' });

  const bobEvents = (await bob.untilDone(bobRun)) as AnyEvent[];
  t.match(last(bobEvents).payload, { status: 'ok' }, 'the other tenant\'s run ends ok');
  t.equal(bobEvents.filter((e) => e.type === 'console').length, 50, 'with all its output');
  t.ok(server.process.exitCode === null, 'the server is up');

  const again = await runRepl(alice, aliceSession, 'kept + 1');
  t.match(again.events.find((e) => e.type === 'session.restored')?.payload, { session_id: aliceSession, replayed: 1 }, 'the session is rebuilt');
  t.equal(again.events.find((e) => e.type === 'value')?.payload.preview, '42', 'with its state');
  const replacement = await newSandboxPid(serverPid, [alicePid, bobPid]);
  t.not(replacement, alicePid, 'in a new process');
  t.match(server.stderr(), /"reason":"sandbox_exit"/, 'the log says why the process ended');
});

t.test('a fatal out-of-memory in one tenant\'s process beside another tenant\'s running execution', async (t) => {
  const { server, alice, bob } = await twoTenants(t, { VMSTREAM_WORKER_HEAP_MB: '128' });
  const bobSession = await bob.createSession();
  const aliceSession = await alice.createSession();
  for (const [name, bomb] of [
    ['a huge string as a value', "'x'.repeat(2 ** 28)"],
    ['a memory bomb', 'const a = []; for (;;) a.push(new Array(1e6).fill(1))'],
  ] as const) {
    const bobRun = await start(bob, bobSession, 'for (let i = 0; i < 100; i++) { console.log(`line ${i}`); await new Promise((r) => setTimeout(r, 10)); } "finished"');
    await bob.waitFor((f) => f.op === 'event' && f.execution_id === bobRun && f.type === 'console');
    const bombRun = await runRepl(alice, aliceSession, bomb);
    const status = bombRun.done.payload.status;
    // Layer 1 may summarise the string without flattening it (ok); otherwise its process dies of it.
    t.ok(status === 'ok' || status === 'error' || (status === 'crashed' && bombRun.done.payload.reason === 'out_of_memory'), `${name}: ends ok, error or crashed out_of_memory (${JSON.stringify(bombRun.done.payload)})`);
    const bobEvents = (await bob.untilDone(bobRun)) as AnyEvent[];
    t.match(last(bobEvents).payload, { status: 'ok' }, `${name}: the other tenant's run ends ok`);
    t.same(bobEvents.filter((e) => e.type === 'console').map((e) => e.payload.text), Array.from({ length: 100 }, (_, i) => `line ${i}`), `${name}: with all its output, in order`);
    t.equal(bobEvents.find((e) => e.type === 'value')?.payload.preview, "'finished'");
  }
  t.equal(last((await runRepl(alice, aliceSession, '1 + 1')).events).payload.status, 'ok', 'the bomber\'s session works again');
  t.ok(server.process.exitCode === null, 'the server is up');
});

t.test('at the process cap: an idle tenant\'s process is reclaimed, a busy one makes the next tenant wait', async (t) => {
  const { alice, bob } = await twoTenants(t, { VMSTREAM_SANDBOX_PROCESSES: '1' });
  const aliceSession = await alice.createSession();
  const bobSession = await bob.createSession();
  t.equal(last((await runRepl(alice, aliceSession, 'let a = 1; a')).events).payload.status, 'ok');
  const bobFirst = await runRepl(bob, bobSession, 'let b = 2; b');
  t.equal(bobFirst.done.payload.status, 'ok', 'bob takes alice\'s idle process');
  const aliceAgain = await runRepl(alice, aliceSession, 'a + 1');
  t.ok(aliceAgain.events.some((e) => e.type === 'session.restored'), 'alice\'s session is rebuilt in a new process');
  t.equal(aliceAgain.events.find((e) => e.type === 'value')?.payload.preview, '2');

  const spun = await spin(alice, aliceSession);
  const given = await start(bob, bobSession, 'b + 100');
  t.not((await bob.request({ op: 'cancel', execution_id: given })).op, 'error');
  t.match(last((await bob.untilDone(given)) as AnyEvent[]).payload, { status: 'cancelled' }, 'a waiting run is cancelled at once, the other tenant still busy');
  const waiting = await start(bob, bobSession, 'b + 1');
  const cancelled = await alice.request({ op: 'cancel', execution_id: spun });
  t.not(cancelled.op, 'error', 'alice\'s spin is cancelled');
  const bobEvents = (await bob.untilDone(waiting)) as AnyEvent[];
  t.match(last(bobEvents).payload, { status: 'ok' }, 'bob\'s waiting run runs once the process is free');
  t.equal(bobEvents.find((e) => e.type === 'value')?.payload.preview, '3');
});

t.test('where nothing can confine user code: loopback only, and said loudly', async (t) => {
  const env = { PATH: tempDir('sandbox-empty-path') };
  const server = await serverFor(t, { env });
  const ready = await readyz(server);
  t.match(ready.sandbox, { confinement: 'none', confined: false }, '/readyz says it');
  t.match(server.stderr(), /USER CODE IS NOT CONFINED/, 'the log says it');
  const client = await TestClient.connect(server.url, server.token);
  t.teardown(() => client.close());
  t.equal((await runRepl(client, await client.createSession(), '6 * 7')).done.payload.status, 'ok', 'and it still runs code');

  const refused = await serverFor(t, { env: { ...env, VMSTREAM_HOST: '0.0.0.0' } }).then(() => null, (error: Error) => error.message);
  t.match(refused, /cannot be confined here.*VMSTREAM_SANDBOX=unconfined/s, 'a non-loopback bind is refused');
  const confined = await serverFor(t, { env: { ...env, VMSTREAM_SANDBOX: 'confined' } }).then(() => null, (error: Error) => error.message);
  t.match(confined, /VMSTREAM_SANDBOX=confined, but user code cannot be confined here/, 'VMSTREAM_SANDBOX=confined is refused');
  const explicit = await serverFor(t, { env: { ...env, VMSTREAM_HOST: '0.0.0.0', VMSTREAM_SANDBOX: 'unconfined' } });
  t.match((await readyz(explicit)).sandbox, { confinement: 'none', detail: 'VMSTREAM_SANDBOX=unconfined' }, 'VMSTREAM_SANDBOX=unconfined runs anywhere');
});

t.test('VMSTREAM_SANDBOX=in-process: the server\'s own threads run the code, on a loopback bind only, said loudly', async (t) => {
  const env = { VMSTREAM_SANDBOX: 'in-process' };
  const server = await serverFor(t, { env });
  t.match((await readyz(server)).sandbox, { confinement: 'in-process', confined: false }, '/readyz says it');
  t.match(server.stderr(), /USER CODE IS NOT CONFINED/, 'the log says it');
  const client = await TestClient.connect(server.url, server.token);
  t.teardown(() => client.close());
  t.equal((await runRepl(client, await client.createSession(), '6 * 7')).done.payload.status, 'ok', 'it runs code');
  t.same(sandboxPids(server.process.pid!), [], 'in no process but the server');
  const refused = await serverFor(t, { env: { ...env, VMSTREAM_HOST: '0.0.0.0' } }).then(() => null, (error: Error) => error.message);
  t.match(refused, /VMSTREAM_SANDBOX=in-process .*loopback binds only/, 'a non-loopback bind is refused');
});

/** Waits until the server's log has a line with all of `parts`. */
async function logged(server: TestServer, ...parts: string[]): Promise<void> {
  const found = () => server.stderr().split('\n').some((line) => parts.every((part) => line.includes(part)));
  while (!found()) await new Promise((resolve) => server.process.stderr!.once('data', resolve));
}

t.test('a revoked tenant\'s process ends at once, its running execution with it, its queued one cancelled; the other tenant carries on', async (t) => {
  const { server, alice, bob, tokensFile } = await twoTenants(t);
  const serverPid = server.process.pid!;
  const bobSession = await bob.createSession();
  t.equal(last((await runRepl(bob, bobSession, 'let count = 1')).events).payload.status, 'ok');
  const bobPid = await newSandboxPid(serverPid, []);
  const aliceSession = await alice.createSession();
  const spinRun = await spin(alice, aliceSession);
  const queuedRun = await start(alice, aliceSession, '1 + 1');
  const alicePid = await newSandboxPid(serverPid, [bobPid]);

  const kept = readFileSync(tokensFile, 'utf8').split('\n').filter((line) => !line.startsWith('alice:')).join('\n');
  writeFileSync(`${tokensFile}.new`, kept, { mode: 0o600 });
  renameSync(`${tokensFile}.new`, tokensFile);
  t.equal((await alice.closed).code, 4401, 'her socket is closed');
  await logged(server, '"sandbox process ended"', '"tenant":"alice"', '"reason":"sandbox_exit"');
  await logged(server, '"execution ended"', `"execution_id":"${spinRun}"`, '"status":"crashed"', '"reason":"sandbox_exit"');
  await logged(server, '"execution ended"', `"execution_id":"${queuedRun}"`, '"status":"cancelled"', '"reason":"tenant_revoked"');
  t.notOk(sandboxPids(serverPid).includes(alicePid), 'her process is gone');
  t.same(sandboxPids(serverPid), [bobPid], 'his is not, and her queued run started no other');
  t.equal((await runRepl(bob, bobSession, 'count + 1')).events.find((e) => e.type === 'value')?.payload.preview, '2', 'and still holds his session');
});

t.test('an idle tenant\'s process is reclaimed, and its session rebuilt on the next run', async (t) => {
  const { server, alice } = await twoTenants(t, { VMSTREAM_SANDBOX_IDLE_MS: '300' });
  const session = await alice.createSession();
  t.equal((await runRepl(alice, session, 'let kept = 6; kept')).done.payload.status, 'ok');
  const reclaimed = () => server.stderr().split('\n').some((line) => line.includes('"sandbox process ended"') && line.includes('"reason":"reclaimed"'));
  while (!reclaimed()) await new Promise((resolve) => server.process.stderr!.once('data', resolve));
  const again = await runRepl(alice, session, 'kept * 7');
  t.match(afterRestoring(again.events), { type: 'session.restored', payload: { session_id: session, replayed: 1 } }, 'session.restored first (past its progress)');
  t.equal(again.events.find((e) => e.type === 'value')?.payload.preview, '42', 'with its state');
});
