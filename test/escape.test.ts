/**
 * Known ways out of a node:vm context, each tried against a real server. An attempt "leaks" when
 * any object it gets hold of leads to the host's Function (and so to `process`): `probe` reports
 * that as the string LEAK. protocol/SECURITY.md lists the same attempts.
 */
import t from 'tap';
import { startServer } from './helpers/server.js';
import { TestClient } from './helpers/client.js';
import type { EventFrame } from '../protocol/types.js';

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

/** Names vmstream's in-context code reads on objects it made; 'value' last, as defining it breaks later descriptors. */
const TRIPWIRES = `['props', 'kind', 'text', 'done', 'accessor', 'enumerable', 'get', 'set', 'value']`;

/** [name, code, expected value preview (when it says more than "no leak")] */
const ATTEMPTS: Array<[string, string, string?]> = [
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
  // Issue 13, route 1: Node's host-realm stack formatter converted an object `name`/`message`.
  ['.stack of an error whose name has a Proxy toString', `let l1; const e1n = new Error('m'); e1n.name = { toString: ${trap('l1')} }; void e1n.stack; probe(l1)`],
  ['.stack of an error whose message has a Proxy valueOf', `let l2; const e2n = new Error('m'); e2n.message = { valueOf: ${trap('l2')}, toString: ${trap('l2')} }; void e2n.stack; probe(l2)`],
  ['.stack of an error whose name has a Proxy Symbol.toPrimitive', `let l3; const e3n = new Error('m'); e3n.name = { [Symbol.toPrimitive]: ${trap('l3')} }; void e3n.stack; probe(l3)`],
  ['.stack of an error whose name is a Proxy', `let l4; const e4n = new TypeError('m'); e4n.name = new Proxy({}, { get(...a) { l4 = l4 || a; return () => 'x' } }); void e4n.stack; probe(l4)`],
  ['.stack of an error whose prototype is a Proxy', `let l5; const e5n = new Error('m'); Object.setPrototypeOf(e5n, new Proxy(Error.prototype, { get(...a) { l5 = l5 || a }, getOwnPropertyDescriptor(...a) { l5 = l5 || a } })); void e5n.stack; probe(l5)`],
  ['Error.prepareStackTrace cannot be replaced and hands out no CallSites', `let got6; try { Error.prepareStackTrace = (e, s) => s } catch {} const s6 = Error.prepareStackTrace(new Error('x'), [{ toString() { got6 = arguments; return 'f' } }]); [probe(got6), typeof got6, s6].join()`, `'contained,undefined,Error: x'`],
  // Issue 13, route 2: vmstream's own exception report of a timer callback read \`stack\`.
  ['an error with a Proxy toString name thrown from a timer', `globalThis.l7 = undefined; setTimeout(() => { const e = new Error('m'); e.name = { toString: ${trap('l7')} }; throw e }, 1); 'thrown'`, `'thrown'`],
  ['the timer error reached nothing of the host', `probe(l7) + ' ' + typeof l7`, `'contained undefined'`],
  ['the same thrown at top level and reported', `globalThis.l8 = undefined; const e8 = new Error('m'); e8.message = { toString: ${trap('l8')} }; throw e8`],
  ['the top-level error reached nothing of the host', `probe(l8) + ' ' + typeof l8`, `'contained undefined'`],
  ['.stack read at the stack limit', `let c9; function r9(d) { try { r9(d + 1) } catch (e) { try { void new Error('y').stack } catch (e2) { c9 = c9 || e2 } } } r9(0); probe(c9)`, `'contained'`],
  // Armed only while vmstream code runs: the test's own defineProperty calls read them too.
  ['getters on Object.prototype that vmstream code could trip over', `globalThis.l10 = undefined; globalThis.armed = false; for (const k of ${TRIPWIRES}) Object.defineProperty(Object.prototype, k, { get() { if (armed) { try { l10 = l10 || arguments.callee.caller || 'ran' } catch (e) { l10 = e } } }, configurable: true }); armed = true; console.log({ a: [1, new Map([[1, 2]])], b: new Error('x') }); console.table([{ a: 1 }]); try { null.x } catch (e) { void e.stack } armed = false; typeof l10`, `'undefined'`],
  ['…none of which ran', `for (const k of ${TRIPWIRES}) delete Object.prototype[k]; probe(l10) + ' ' + typeof l10`, `'contained undefined'`],
  ['patched Array, iterator and RegExp prototypes see nothing of vmstream', `globalThis.l11 = undefined; const m11 = new Map([[1, 2]]); const ArrayIterator = Object.getPrototypeOf([][Symbol.iterator]()); const saved = [Array.prototype.push, Array.prototype.join, RegExp.prototype.exec, Array.prototype[Symbol.iterator], ArrayIterator.next]; Array.prototype.push = function (...a) { l11 = l11 || this; return saved[0].apply(this, a) }; Array.prototype.join = function (...a) { l11 = l11 || this; return saved[1].apply(this, a) }; RegExp.prototype.exec = function (...a) { l11 = l11 || this; return saved[2].apply(this, a) }; Array.prototype[Symbol.iterator] = function () { l11 = l11 || this; return saved[3].call(this) }; ArrayIterator.next = function () { l11 = l11 || this; return saved[4].call(this) }; console.log('%s %o', 'x', { a: [1], m: m11 }); console.table([{ a: 1 }]); try { null.x } catch (e) { void e.stack } Array.prototype.push = saved[0]; Array.prototype.join = saved[1]; RegExp.prototype.exec = saved[2]; Array.prototype[Symbol.iterator] = saved[3]; ArrayIterator.next = saved[4]; typeof l11`, `'undefined'`],
];

/** Source of a Proxy function that keeps its trap's arguments in `name` and returns 'x'. */
function trap(name: string): string {
  return `new Proxy(function () {}, { apply(target, self, args) { globalThis.${name} = globalThis.${name} || args; return 'x' } })`;
}

t.test('escape attempts do not reach the host', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const client = await TestClient.connect(server.url, server.token);
  t.teardown(() => client.close());
  const session = await client.createSession('escape');
  const setup = await client.run(session, PROBE);
  t.equal(setup.done.payload.status, 'ok', 'probe installed');

  for (const [name, code, expected] of ATTEMPTS) {
    const { events, done } = await client.run(session, code, { timeout_ms: 10_000 });
    const values = events.filter((e) => e.type === 'value').map((e) => (e.payload as { preview: string }).preview);
    if (expected !== undefined) t.strictSame(values, [expected], `${name}: the expected value`);
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

t.test('huge strings: capped previews, honest ends, and the server stays up', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const client = await TestClient.connect(server.url, server.token);
  t.teardown(() => client.close());
  const bystander = await client.createSession('bystander');
  await client.run(bystander, "globalThis.mine = 'still here'");
  const session = await client.createSession('huge');
  const preview = (events: EventFrame[]) => (events.find((e) => e.type === 'value') as EventFrame<'value'> | undefined)?.payload.preview;

  // A rope of 256 MiB costs nothing until something flattens it: the previewer never does.
  const value = await client.run(session, `globalThis.h = 'x'.repeat(2 ** 28); h`);
  t.equal(value.done.payload.status, 'ok', 'as a completion value');
  t.equal(preview(value.events), '[a string of 268435456 characters, too long to show]');

  const logged = await client.run(session, "console.log(h); console.log('%s!', h); console.log([h, { h }]); console.error(h, 1, h); 'logged'");
  t.equal(logged.done.payload.status, 'ok', 'as console arguments');
  const lines = logged.events.filter((e) => e.type === 'console') as EventFrame<'console'>[];
  t.equal(lines.length, 4);
  t.ok(lines.every((line) => line.payload.text.length < 1000), 'every line capped');
  t.ok(lines[0]!.payload.truncated && lines[1]!.payload.truncated, 'and flagged as cut');
  t.equal(lines[1]!.payload.text, '[a string of 268435456 characters, too long to show]!');
  t.match(lines[2]!.payload.text, /^\[ ''\.\.\. 268435456 more characters, \{ h: ''\.\.\. 268435456 more characters \} \]$/);
  t.equal(lines[2]!.payload.data?.[0]?.props?.[0]?.[1].length, 2 ** 28, 'the structured preview has the length, not the text');

  const thrown = await client.run(session, 'throw new Error(h)');
  t.equal(thrown.done.payload.status, 'error', 'as an error message');
  const exception = thrown.events.find((e) => e.type === 'exception') as EventFrame<'exception'>;
  t.ok(exception.payload.message.length < 1000 && exception.payload.stack.length < 1000, 'its message and stack capped');

  // Pushed into an array on a worker that already holds tens of MB: the worker's heap limit ends it.
  const pushed = await client.run(session, [
    'const keep = []; for (let i = 0; i < 40; i++) keep.push(new Array(1e5).fill(i));',
    "const many = []; for (let i = 0; i < 1e7; i++) many.push('x'.repeat(2 ** 28) + i); many.length",
  ].join('\n'), { timeout_ms: 60_000 });
  t.equal(pushed.done.payload.status, 'crashed', `pushed into an array: ${JSON.stringify(pushed.done.payload)}`);
  t.equal((pushed.done.payload as { reason?: string }).reason, 'out_of_memory');

  t.equal((await client.request({ op: 'ping' })).op, 'pong', 'the server is up');
  t.equal(preview((await client.run(bystander, 'mine')).events), "'still here'", 'another session carries on (rebuilt)');
});
