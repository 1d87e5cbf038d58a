/**
 * SessionContext on its own, in this process: the structured previewer against hostile values
 * (Proxies, getters, conversions, cycles, huge strings, deep nesting, many keys) — it must stay
 * inside the context, run none of the value's code and stay bounded — console.table, and
 * completion. Server-level behaviour is in escape.test.ts and semantics.test.ts.
 */
import t from 'tap';
import v8 from 'node:v8';
import { SessionContext } from '../src/sandbox/session-context.js';
import { consoleExtras, valueExtras } from '../src/sandbox/preview-data.js';
import type { ConsoleTable, PreviewNode } from '../protocol/types.js';

const LIMITS = { maxText: 65_536, maxPreview: 16_384 };

interface Output {
  console: Array<{ level: number; text: string; truncated: boolean; data?: PreviewNode[]; table?: ConsoleTable }>;
  values: Array<{ type: string; preview: string; data?: PreviewNode }>;
  exceptions: Array<{ name: string; message: string; stack: string }>;
  status: string;
}

function run(context: SessionContext, code: string): Promise<Output> {
  const output: Output = { console: [], values: [], exceptions: [], status: '' };
  return new Promise((resolve) => context.start('repl', code, 'REPL1', {
    console: (level, text, truncated, extra) => output.console.push({ level, text, truncated, ...(extra ? JSON.parse(extra) : {}) }),
    value: (type, preview, extra) => output.values.push({ type, preview, ...(extra ? JSON.parse(extra) : {}) }),
    exception: (name, message, stack) => output.exceptions.push({ name, message, stack }),
    done: (status) => { output.status = status; resolve(output); },
  }));
}

async function value(context: SessionContext, code: string): Promise<{ type: string; preview: string; data?: PreviewNode }> {
  const output = await run(context, code);
  if (output.status !== 'ok') throw new Error(`${code}: ${output.status} ${JSON.stringify(output.exceptions)}`);
  return output.values[0]!;
}

function countNodes(node: PreviewNode): number {
  let count = 1;
  for (const [, child] of node.props ?? []) count += countNodes(child);
  for (const [key, child] of node.entries ?? []) count += countNodes(key) + countNodes(child);
  for (const child of node.items ?? []) count += countNodes(child);
  return count;
}

function depthOf(node: PreviewNode): number {
  const children = [...(node.props ?? []).map(([, child]) => child), ...(node.items ?? []), ...(node.entries ?? []).flat()];
  return 1 + Math.max(0, ...children.map(depthOf));
}

// A Proxy whose handler is a Proxy: any trap V8 looks up, for any operation, counts a call.
const HOSTILE = `
globalThis.calls = 0;
const counting = new Proxy({}, { get() { calls++; return undefined } });
globalThis.hostile = {
  proxy: new Proxy({ secret: 1 }, counting),
  proxyFn: new Proxy(function named() {}, counting),
  getter: { get x() { calls++; return 1 }, set y(v) { calls++ } },
  conversions: { toString() { calls++; return 's' }, valueOf() { calls++; return 1 }, [Symbol.toPrimitive]() { calls++; return 1 }, toJSON() { calls++ } },
  inspect: { [Symbol.for('nodejs.util.inspect.custom')]() { calls++; return 'custom' } },
  tagged: { get [Symbol.toStringTag]() { calls++; return 'T' } },
  array: Object.defineProperty([1, 2], 0, { get() { calls++; return 0 }, enumerable: true }),
  protoProxy: Object.setPrototypeOf({ own: 1 }, new Proxy({}, counting)),
  ctorGetter: Object.setPrototypeOf({}, { get constructor() { calls++; return Object } }),
  error: Object.defineProperty(new Error('e'), 'name', { get() { calls++; return 'N' } }),
};
'ready'`;

t.test('previews run none of a value’s code: Proxies, getters, conversions', async (t) => {
  const context = new SessionContext(LIMITS);
  t.equal((await run(context, HOSTILE)).status, 'ok');
  const shown = await value(context, 'hostile');
  t.match(shown.preview, /^\{ proxy: \[Proxy\], proxyFn: \[Proxy\], getter: \{ x: \[Getter\], y: \[Setter\] \}, /);
  t.match(shown.preview, /array: \[ \[Getter\], 2 \]/);
  const props = new Map(shown.data!.props!);
  t.equal(props.get('proxy')!.kind, 'proxy');
  t.strictSame(props.get('getter')!.props, [['x', { kind: 'accessor', text: 'Getter' }], ['y', { kind: 'accessor', text: 'Setter' }]]);
  t.equal(props.get('protoProxy')!.class, '', 'a constructor behind a Proxy is unknown, not asked');
  t.equal(props.get('error')!.kind, 'error');

  const logged = await run(context, "console.log('%s %d %j %o', hostile.conversions, hostile.conversions, hostile.conversions, hostile.proxy, hostile); console.table([hostile.getter, hostile.proxy, hostile.conversions]); console.dir(hostile.tagged)");
  t.equal(logged.status, 'ok');
  t.equal(logged.console.length, 3);
  t.match(logged.console[0]!.text, /^\{ toString: \[Function: toString\].* NaN \{ toString/, '%s and %j preview, %d does not convert');
  t.equal((await run(context, 'throw hostile.error')).exceptions[0]!.name, 'Error', "an error's getter name is not run");
  t.equal((await run(context, 'throw hostile.proxy')).exceptions[0]!.message, '[Proxy]');
  t.equal((await value(context, 'calls')).preview, '0', 'no getter, trap or conversion ran');
});

t.test('previews mark cycles and stay within their bounds', async (t) => {
  const context = new SessionContext(LIMITS);
  const cycle = await value(context, 'const a = { name: "a" }; a.self = a; a.list = [a, { back: a }]; a');
  t.equal(cycle.preview, "{ name: 'a', self: [Circular], list: [ [Circular], { back: [Circular] } ] }");
  t.strictSame(new Map(cycle.data!.props!).get('self'), { kind: 'circular' });

  const deep = await value(context, 'let d = {}; for (let i = 0; i < 10_000; i++) d = { d }; d');
  t.equal(deep.preview, '{ d: { d: { d: [Object] } } }', 'the text shows three levels');
  t.equal(depthOf(deep.data!), 6, 'the tree a few more (maxDepth 4, then unwalked)');

  const wide = await value(context, 'const o = {}; for (let i = 0; i < 100_000; i++) o["k" + i] = i; o');
  t.equal(wide.data!.props!.length, 100);
  t.equal(wide.data!.more, 99_900);
  t.match(wide.preview, /k99: 99, \.\.\. 99900 more properties \}$/);

  const big = await value(context, 'Array.from({ length: 300 }, (_, i) => Array.from({ length: 300 }, () => ({ i, s: "y".repeat(5000), list: [1, 2, 3] })))');
  const nodes = countNodes(big.data!);
  t.ok(nodes <= 512, `wide and deep: ${nodes} nodes of 450 000`);
  t.equal(big.data!.props!.length, 100, 'breadth first: the first level is complete');
  t.ok(big.preview.length <= LIMITS.maxPreview + 50, `text within the preview limit (${big.preview.length})`);
  t.ok(JSON.stringify(big.data).length < 100_000, `the tree is bounded in bytes too (${JSON.stringify(big.data).length})`);
  const rows = await value(context, 'Array.from({ length: 1000 }, (_, i) => ({ i, s: "y".repeat(5000), list: [1, 2, 3] }))');
  const leaf = rows.data!.props![0]![1].props![1]![1];
  t.strictSame([leaf.kind, leaf.text!.length, leaf.length], ['string', 1000, 5000], 'a long string leaf keeps its start and its length');
  t.match(rows.preview, /^\[ \{ i: 0, s: 'y{1000}'\.\.\. 4000 more characters, list: \[ 1, 2, 3 \] \}, /);

  const long = await value(context, `const longKeys = {}; for (let i = 0; i < 200; i++) longKeys['k'.repeat(1e5) + i] = { ['q'.repeat(5e4)]: 'v'.repeat(5e4) };
    class X {} Object.defineProperty(X, 'name', { value: 'N'.repeat(1e6) }); longKeys.inst = Array.from({ length: 50 }, () => new X()); longKeys`);
  const bytes = JSON.stringify(long.data).length;
  t.ok(bytes < 120_000, `long keys, strings and class names count against the bounds: ${bytes} bytes`);
  t.ok(long.preview.length <= LIMITS.maxPreview + 50);

  const map = await value(context, 'new Map(Array.from({ length: 1e5 }, (_, i) => [i, { i }]))');
  t.equal(map.data!.entries!.length, 100);
  t.equal(map.data!.more, 99_900);
  t.match(map.preview, /^Map\(100000\) \{ 0 => \{ i: 0 \}, /);

  const sparse = await value(context, 'const s = []; s[1e9] = 1; s');
  t.equal(sparse.data!.size, 1e9 + 1, 'a sparse array is not walked to its end');
  t.equal(sparse.preview, '[ <100 empty items>, ... 999999901 more items ]');
});

t.test('huge strings are never flattened', async (t) => {
  const context = new SessionContext(LIMITS);
  await run(context, "globalThis.h = 'x'.repeat(2 ** 28); globalThis.obj = { h, list: [h] }; 1");
  const before = v8.getHeapStatistics().used_heap_size;
  t.equal((await value(context, 'h')).preview, '[a string of 268435456 characters, too long to show]');
  const logged = await run(context, "console.log(h); console.log('%s %o', h, obj); console.log(obj); console.table([obj]); console.trace(h)");
  t.equal(logged.status, 'ok');
  t.ok(logged.console.every((line) => line.text.length < 2000), 'every line capped');
  t.strictSame(logged.console.map((line) => line.truncated), [true, true, false, false, true], 'and flagged as cut where the string itself was left out');
  t.equal(logged.console[2]!.data![0]!.props![0]![1].length, 2 ** 28);
  // A patched array iterator would hand destructuring in vmstream's code the huge string itself.
  const patched = await run(context, "const it = Array.prototype[Symbol.iterator]; Array.prototype[Symbol.iterator] = function* () { yield h; yield h }; console.log(obj, [1, 2]); console.table([obj]); Array.prototype[Symbol.iterator] = it; 'ok'");
  t.equal(patched.status, 'ok');
  t.ok(patched.console.every((line) => line.text.length < 2000), 'a patched iterator changes nothing');
  // Distinct long ropes: cutting each would copy each (V8 keeps the copy): one preview cuts at most 1 Mi characters of them.
  const ropesBefore = v8.getHeapStatistics().used_heap_size;
  const ropes = await run(context, "globalThis.ropes = Array.from({ length: 300 }, (_, i) => 'r'.repeat(2 ** 20 - 64) + i); console.log(ropes, ...ropes.slice(0, 50)); ropes");
  t.equal(ropes.status, 'ok');
  const ropesGrown = v8.getHeapStatistics().used_heap_size - ropesBefore;
  t.ok(ropesGrown < 64 * 2 ** 20, `300 ropes of 1 MiB previewed, the heap grew by ${Math.round(ropesGrown / 2 ** 20)} MiB`);
  t.equal(ropes.values[0]!.data!.props![0]![1].text!.length, 1000, 'the first is shown');
  t.strictSame(ropes.values[0]!.data!.props![5]![1], { kind: 'string', text: '', length: 2 ** 20 - 63 }, 'later ones by their length');

  // Many long strings on one line: the line is built within its limit, never joined whole.
  const many = await run(context, "const r = 'y'.repeat(2 ** 20 - 1); console.log(...Array(400).fill(r)); console.log('', 'x')");
  t.equal(many.console[0]!.text.length, LIMITS.maxText + `… [${400 * 2 ** 20 - 1 - LIMITS.maxText} more characters cut]`.length);
  t.match(many.console[0]!.text, /… \[419364863 more characters cut\]$/);
  t.equal(many.console[1]!.text, ' x', 'an empty first part still gets its space');
  const thrown = await run(context, 'throw new Error(h)');
  t.match(thrown.exceptions[0]!.message, /^\[a string of 268435\d+ characters, too long to show\]$/);
  const grown = v8.getHeapStatistics().used_heap_size - before;
  t.ok(grown < 64 * 2 ** 20, `the heap grew by ${Math.round(grown / 2 ** 20)} MiB, not by the 256 MiB a flattened copy costs`);
});

t.test('kinds: what the structured preview says of common values', async (t) => {
  const context = new SessionContext(LIMITS);
  const shown = await value(context, `class Point { constructor() { this.x = 1 } }
    const err = Object.assign(new TypeError('bad'), { code: 'E_BAD' });
    [new Map([['k', 1]]), new Set([1]), new Date(0), /a+/gi, new Point(), Object.create(null), new Uint8Array([1, 2]),
     new ArrayBuffer(8), Object(1), new WeakMap(), Promise.resolve(1), err, function f() {}, class K {}, { [Symbol('s')]: 1 }, 10n, Symbol('t')]`);
  t.equal(shown.preview, "[ Map(1) { 'k' => 1 }, Set(1) { 1 }, 1970-01-01T00:00:00.000Z, /a+/gi, Point { x: 1 }, [Object: null prototype] {}, "
    + 'Uint8Array(2) [ 1, 2 ], ArrayBuffer { byteLength: 8 }, [Number: 1], WeakMap { <items unknown> }, Promise { <state hidden> }, '
    + "TypeError: bad\n    at REPL1:2:31, [Function: f], [class K], { [Symbol(s)]: 1 }, 10n, Symbol(t) ]");
  const kinds = shown.data!.props!.map(([, node]) => node.kind);
  t.strictSame(kinds, ['map', 'set', 'date', 'regexp', 'object', 'object', 'typedarray', 'arraybuffer', 'boxed', 'weakmap', 'promise', 'error', 'function', 'class', 'object', 'bigint', 'symbol']);
  const error = shown.data!.props![11]![1];
  t.strictSame({ ...error, frames: error.frames!.length }, { kind: 'error', text: 'TypeError: bad', class: 'TypeError', props: [['code', { kind: 'string', text: 'E_BAD' }]], frames: 1 });
  t.equal(shown.data!.props![4]![1].class, 'Point');
  t.equal(shown.data!.props![5]![1].class, null);
  t.equal((await value(context, '"plain"')).data, undefined, 'primitives have no tree');
  const sub = await value(context, "class Registry extends Map {}; class List extends Array {}; [new Registry([[1, 2]]), List.from([1]), new Error('outer', { cause: new Error('inner') })]");
  t.match(sub.preview, /^\[ Registry\(1\) \[Map\] \{ 1 => 2 \}, List\(1\) \[ 1 \], Error: outer\n/);
  t.strictSame(sub.data!.props!.map(([, node]) => node.class), ['Registry', 'List', 'Error']);
  t.equal(sub.data!.props![2]![1].props![0]![0], '[cause]', "an error's cause, though not enumerable");
});

t.test('console.table: columns and rows of leaf previews, and the text Node prints', async (t) => {
  const context = new SessionContext(LIMITS);
  const out = await run(context, "console.table([{ a: 1, b: 'x' }, { a: 2, c: { deep: 1 } }, 7]); console.table({ r: { a: 1, b: 2 } }, ['b']); console.table(5)");
  const [first, filtered, plain] = out.console;
  t.strictSame(first!.table!.columns, ['(index)', 'a', 'b', 'c', 'Values']);
  t.strictSame(first!.table!.rows[1], [{ kind: 'string', text: '1' }, { kind: 'number', text: '2' }, null, { kind: 'object' }, null]);
  t.equal(first!.text, [
    '┌─────────┬───┬─────┬──────────┬────────┐',
    '│ (index) │ a │  b  │    c     │ Values │',
    '├─────────┼───┼─────┼──────────┼────────┤',
    "│    0    │ 1 │ 'x' │          │        │",
    '│    1    │ 2 │     │ [Object] │        │',
    '│    2    │   │     │          │   7    │',
    '└─────────┴───┴─────┴──────────┴────────┘',
  ].join('\n'));
  t.strictSame(filtered!.table!.columns, ['(index)', 'b'], 'the columns argument filters');
  t.equal(plain!.text, '5', 'a primitive is logged as it is');
  t.notOk(plain!.table);
});

t.test('completion: globals, lexical names, property paths, and no user code run', async (t) => {
  const context = new SessionContext(LIMITS);
  await run(context, [
    'globalThis.calls = 0;',
    'var varName = 1; function fnName() {}',
    'let letName = { inner: { deepKey: 1, deepOther: 2 } }; const constName = [1]; class ClassName {}',
    'globalThis.guarded = { get g() { calls++; return { never: 1 } }, p: new Proxy({ hidden: 1 }, { ownKeys() { calls++; return [] }, get() { calls++ } }) };',
    'globalThis.big = {}; for (let i = 0; i < 10_000; i++) big["key" + i] = i;',
  ].join('\n'));
  const complete = (code: string, cursor = code.length) => context.complete(code, cursor);
  t.strictSame(complete('varN').matches, ['varName']);
  t.strictSame(complete('x = fnN').matches, ['fnName']);
  t.strictSame(complete('letN').matches, ['letName'], 'a top-level let');
  t.strictSame(complete('constN').matches, ['constName']);
  t.strictSame(complete('ClassN').matches, ['ClassName']);
  t.ok(complete('Arr').matches.includes('Array'), 'builtins');
  t.ok(complete('cons').matches.includes('console'));
  t.strictSame(complete('letName.inner.deep').matches, ['deepKey', 'deepOther'], 'a path through a lexical binding');
  t.strictSame(complete('letName.inner.deep'), { matches: ['deepKey', 'deepOther'], start: 14, end: 18 });
  t.ok(complete('constName.pu').matches.includes('push'), 'inherited names');
  t.ok(complete('letName.inner.deepKey.toF').matches.includes('toFixed'), 'a primitive’s prototype');
  t.ok(complete('varName.').matches.length > 3, 'everything after a dot');
  t.strictSame(complete('guarded.g.').matches, [], 'a getter is not run');
  t.strictSame(complete('guarded.p.').matches, [], 'a Proxy is not asked');
  t.strictSame(complete('guarded.p.hid').matches, []);
  t.equal(complete('big.key').matches.length, 500, 'bounded');
  t.strictSame(complete('fnName().').matches, [], 'not after a call');
  t.strictSame(complete('1.5.').matches, []);
  t.strictSame(complete('letName.inner.deep + 1', 18).matches, ['deepKey', 'deepOther'], 'the cursor, not the end, counts');
  t.strictSame(complete('nothingLikeThis.a').matches, []);
  t.equal((await value(context, 'calls')).preview, '0', 'no getter or trap ran');
});

t.test('the decoder keeps only well-formed structured fields', async (t) => {
  const node = { kind: 'object', class: 'Point', props: [['x', { kind: 'number', text: '1' }]], more: 2 };
  t.strictSame(valueExtras({ data: node }), { data: node });
  t.strictSame(consoleExtras({ data: [node, { kind: 'string', text: 'a' }], table: { columns: ['(index)'], rows: [[null]] } }),
    { data: [node, { kind: 'string', text: 'a' }], table: { columns: ['(index)'], rows: [[null]] } });
  const bad: unknown[] = [
    { kind: 'object', props: [['x', { kind: 'nonsense' }]] },
    { kind: 'object', extra: 1 },
    { kind: 'object', props: [['x']] },
    { kind: 'string', text: 5 },
    { kind: 'array', size: -1 },
    JSON.parse('{"kind":"object","__proto__":{"polluted":true}}'),
  ];
  let deep: Record<string, unknown> = { kind: 'null' };
  for (let i = 0; i < 40; i++) deep = { kind: 'array', props: [['0', deep]] };
  bad.push(deep);
  for (const data of bad) t.strictSame(valueExtras({ data }), {}, JSON.stringify(data).slice(0, 80));
  t.strictSame(valueExtras('{"data":{"kind":"null"}}'), {}, 'a string is not parsed here');
  t.strictSame(consoleExtras({ data: { kind: 'null' } }), {}, 'console data is a list');
  t.strictSame(valueExtras(undefined), {});
});

t.test('a line of one string or number (the short way through the console shim) is what the general way makes of it', async (t) => {
  const context = new SessionContext({ maxText: 8, maxPreview: LIMITS.maxPreview });
  const logged = await run(context, "console.log('short'); console.log(-0); console.log(1e21); console.log(NaN); console.log('123456789'); console.log(-1234567.5); console.log(''); console.info('%s'); console.warn(7)");
  t.equal(logged.status, 'ok');
  t.strictSame(logged.console.map(({ level, text, truncated }) => [level, text, truncated]), [
    [0, 'short', false],
    [0, '-0', false],
    [0, '1e+21', false],
    [0, 'NaN', false],
    // Past maxText (8): cut as any line is.
    [0, '12345678… [1 more characters cut]', true],
    [0, '-1234567… [2 more characters cut]', true],
    [0, '', false],
    [1, '%s', false],
    [2, '7', false],
  ]);
  t.ok(logged.console.every((line) => line.data === undefined), 'primitives carry no structured data');
});
