/**
 * Known ways out of a node:vm context, each tried against a real server. An attempt "leaks" when
 * any object it gets hold of leads to the host's Function (and so to `process`): `probe` reports
 * that as the string LEAK. protocol/SECURITY.md lists the same attempts.
 */
import t from 'tap';
import { startServer } from './helpers/server.js';
import { TestClient } from './helpers/client.js';

// Inside the sandbox: does `x` lead to a Function that can see the host's `process`?
const PROBE = `
globalThis.probe = (x) => {
  const seen = [];
  const tryFn = (F) => { try { return typeof F === 'function' && F('return typeof process')() === 'object'; } catch { return false; } };
  for (const candidate of [x, x && x.constructor, x && x.constructor && x.constructor.constructor,
      x && Object.getPrototypeOf(x), x && x[0], x && x[0] && x[0].constructor, x && x[0] && x[0].constructor && x[0].constructor.constructor]) {
    try { if (candidate && tryFn(candidate.constructor ? candidate.constructor.constructor : candidate)) return 'LEAK'; } catch {}
    try { if (tryFn(candidate)) return 'LEAK'; } catch {}
    seen.push(typeof candidate);
  }
  return 'contained';
};
'ready'`;

const ATTEMPTS: Array<[string, string]> = [
  ['this.constructor.constructor', `this.constructor.constructor("return typeof process")()`],
  ['console.log.constructor', `console.log.constructor("return typeof process")()`],
  ['setTimeout.constructor', `setTimeout.constructor("return typeof process")()`],
  ['globalThis has no host globals', `[typeof process, typeof require, typeof module, typeof Buffer, typeof global].join()`],
  ['import() rejection', `await import('fs').then(() => 'MODULE LOADED', (e) => probe(e))`],
  ['import() inside eval', `await eval("import('node:fs')").then(() => 'MODULE LOADED', (e) => probe(e))`],
  ['import() inside Function', `await Function("return import('node:child_process')")().then(() => 'MODULE LOADED', (e) => probe(e))`],
  ['Error.prepareStackTrace CallSites', `Error.prepareStackTrace = (e, cs) => cs; const st = new Error('x').stack; probe(st)`],
  ['replacing global Error with a prepareStackTrace holder', `try { globalThis.Error = { prepareStackTrace: (e, cs) => cs }; } catch {} let st; try { null.x } catch (e) { st = e.stack } probe(st)`],
  ['Function.prototype.prepareStackTrace', `Function.prototype.prepareStackTrace = (e, cs) => cs; let st; try { null.x } catch (e) { st = e.stack } probe(st)`],
  ['error thrown by a host function at the stack limit', `let caught; function r(d) { try { r(d + 1) } catch (e) { try { console.log('edge') } catch (e2) { caught = caught || e2 } } } r(0); probe(caught)`],
  ['stack overflow error itself', `let err; function f() { f() } try { f() } catch (e) { err = e } probe(err)`],
  ['timer callback caller chain', `await new Promise((res) => setTimeout(function () { let c = null; try { c = arguments.callee.caller } catch (e) { c = e } res(probe(c)) }, 1))`],
  ['thenable crossing the await', `let got; await { then(resolve) { try { got = arguments.callee.caller } catch (e) { got = e } resolve(1) } }; probe(got)`],
  ['inspect.custom hook on a completion value', `globalThis.hooked = null; ({ [Symbol.for('nodejs.util.inspect.custom')](d, o, inspect) { globalThis.hooked = inspect; return 'x' } })`],
  ['inspect.custom hook was never called with host objects', `probe(globalThis.hooked)`],
  ['Proxy completion value traps', `globalThis.trapped = []; new Proxy({}, { get(t, k, r) { trapped.push(r); return undefined }, ownKeys() { trapped.push(arguments); return [] }, getPrototypeOf(t) { trapped.push(this); return null } })`],
  ['Proxy traps got nothing of the host', `probe(trapped.find((x) => probe(x) === 'LEAK'))`],
  ['getter on a logged object', `let leaked; console.log({ get a() { try { leaked = arguments.callee.caller } catch (e) { leaked = e } return 1 } }); probe(leaked)`],
  ['Reflect on console', `probe(Reflect.getPrototypeOf(console.log))`],
  ['Symbol.for registry', `probe(Symbol.for('nodejs.util.inspect.custom').constructor)`],
  ['WebAssembly, SharedArrayBuffer, Atomics.wait', `[typeof WebAssembly, typeof SharedArrayBuffer, typeof Atomics.wait].join()`],
  ['error from a console format', `let e1; try { console.log('%s', { toString() { throw new Error('x') } }) } catch (e) { e1 = e } probe(e1)`],
];

t.test('escape attempts do not reach the host', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const client = await TestClient.connect(server.url, server.token);
  t.teardown(() => client.close());
  const session = await client.createSession('escape');
  const setup = await client.run(session, PROBE);
  t.equal(setup.done.payload.status, 'ok', 'probe installed');

  for (const [name, code] of ATTEMPTS) {
    const { events, done } = await client.run(session, code, { timeout_ms: 10_000 });
    const values = events.filter((e) => e.type === 'value').map((e) => (e.payload as { preview: string }).preview);
    const text = JSON.stringify(events.map((e) => e.payload));
    t.notMatch(text, /LEAK|MODULE LOADED|'object'/, `${name}: ${values.join(' ')} (${done.payload.status})`);
    t.notMatch(text, /'function'/, `${name}: no host function reached`);
  }
});

t.test('sessions do not share intrinsics or globals', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const client = await TestClient.connect(server.url, server.token);
  t.teardown(() => client.close());
  const a = await client.createSession('a');
  const b = await client.createSession('b');
  await client.run(a, `Object.prototype.polluted = 'yes'; Array.prototype.push = () => 0; globalThis.secretA = 42; 1`);
  const seen = await client.run(b, `[({}).polluted, typeof secretA, [1].push(2)].join()`);
  t.equal((seen.events[0]!.payload as { preview: string }).preview, "',undefined,2'");
});

t.test('resource attacks end honestly and the server stays up', async (t) => {
  const server = await startServer({ env: { VMSTREAM_WORKER_HEAP_MB: '128' } });
  t.teardown(() => server.stop());
  const client = await TestClient.connect(server.url, server.token);
  t.teardown(() => client.close());
  const session = await client.createSession('resources');
  await client.run(session, 'let kept = 7');
  const recursion = await client.run(session, 'function f() { return f() + 1 } f()');
  t.equal(recursion.done.payload.status, 'error');
  t.match(JSON.stringify(recursion.events), /RangeError/);
  const hugeString = await client.run(session, `let s = 'x'; for (let i = 0; i < 40; i++) s += s; s.length`);
  t.ok(['error', 'crashed'].includes(hugeString.done.payload.status), `huge string: ${JSON.stringify(hugeString.done.payload)}`);
  const bomb = await client.run(session, 'const a = []; for (;;) a.push(new Array(1e6).fill(1))');
  t.equal(bomb.done.payload.status, 'crashed');
  t.equal((bomb.done.payload as { reason?: string }).reason, 'out_of_memory');
  const after = await client.run(session, 'kept');
  t.equal((after.events.find((e) => e.type === 'value')!.payload as { preview: string }).preview, '7', 'state rebuilt after the worker died');
  t.equal((await client.request({ op: 'ping' })).op, 'pong');
});
