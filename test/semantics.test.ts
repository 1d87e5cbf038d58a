import t from 'tap';
import { doneOf } from './helpers/client.js';
import { clientFor, doneProblems, serverFor, startExecution, sync, waitEvent, sharedServer } from './helpers/util.js';
import type { EventFrame } from '../protocol/types.js';

const shared = sharedServer(t);

const valueOf = (events: EventFrame[]) => events.find((e) => e.type === 'value')?.payload.preview;

t.test('repl state persists; top-level await keeps its declarations', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('state');
  t.equal((await client.run(session, 'let x = 41')).done.payload.status, 'ok');
  t.equal(valueOf((await client.run(session, 'x + 1')).events), '42');

  const awaited = await client.run(session, 'const y = await Promise.resolve(5)');
  t.equal(awaited.done.payload.status, 'ok');
  const later = await client.run(session, 'y');
  t.equal(valueOf(later.events), '5', 'a const declared with top-level await is visible later');

  const completion = await client.run(session, 'await new Promise((r) => setTimeout(() => r(x * 2), 10))');
  t.equal(valueOf(completion.events), '82', 'the awaited completion value is reported');

  const fn = await client.run(session, 'function twice(n) { return n * 2 } twice(21)');
  t.equal(valueOf(fn.events), '42');
  t.equal(valueOf((await client.run(session, 'twice(x)')).events), '82');

  // Another session does not see this one's state.
  const other = await client.createSession('other');
  t.equal(valueOf((await client.run(other, 'typeof x')).events), "'undefined'");
});

t.test('console output streams while an execution is still running', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('stream');
  const reply = await startExecution(client, session, [
    'console.log("first");',
    'await new Promise((r) => setTimeout(r, 300));',
    'console.log("second");',
  ].join('\n'));
  const id = reply.execution.execution_id;
  const first = await waitEvent(client, id, (e) => e.type === 'console');
  t.equal(first.payload.text, 'first');
  const seenAtFirst = (client.events.get(id) ?? []).map((e) => e.type);
  t.notOk(seenAtFirst.includes('done'), 'the first console event arrives before done');
  t.notOk(seenAtFirst.some((_type, i) => {
    const event = (client.events.get(id) ?? [])[i]!;
    return event.type === 'console' && event.payload.text === 'second';
  }), 'and before the second log');
  const events = await client.untilDone(id);
  t.same(events.filter((e) => e.type === 'console').map((e) => e.payload.text), ['first', 'second']);
  t.equal(doneOf(events).status, 'ok');
});

t.test('console output before a synchronous runaway is not lost', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('stream-sync');
  const reply = await startExecution(client, session, 'console.log("before the loop"); while (true) {}', { timeout_ms: 500 });
  const events = await client.untilDone(reply.execution.execution_id);
  t.equal(doneOf(events).status, 'timeout');
  t.same(events.filter((e) => e.type === 'console').map((e) => e.payload.text), ['before the loop'],
    'the line logged before the loop is delivered');
});

t.test('executions of one session run one at a time, in order', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('order');
  await client.run(session, 'globalThis.trace = []; globalThis.active = 0');
  const replies = [];
  for (let i = 0; i < 4; i++) {
    replies.push(await startExecution(client, session, [
      `active += 1; trace.push("start ${i}:" + active);`,
      `await new Promise((r) => setTimeout(r, ${20 - i * 5}));`,
      `trace.push("end ${i}"); active -= 1; ${i}`,
    ].join('\n')));
  }
  for (const reply of replies) {
    const events = await client.untilDone(reply.execution.execution_id);
    t.equal(doneOf(events).status, 'ok');
  }
  const trace = await client.run(session, 'trace.join(",")');
  t.equal(valueOf(trace.events), "'start 0:1,end 0,start 1:1,end 1,start 2:1,end 2,start 3:1,end 3'");
  // Numbers follow the order of submission.
  const numbers = [];
  for (const reply of replies) numbers.push((await client.expect('execution', { op: 'execution.get', execution_id: reply.execution.execution_id })).execution.number);
  t.same(numbers, [...numbers].sort((a, b) => a - b));
});

t.test('different sessions run in parallel', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const a = await client.createSession('a');
  const b = await client.createSession('b');
  // A waits until something outside it (the cancel below) ends it; B must finish meanwhile.
  const long = await startExecution(client, a, 'console.log("a waiting"); await new Promise(() => {})', { timeout_ms: 120000 });
  const longId = long.execution.execution_id;
  await waitEvent(client, longId, (e) => e.type === 'console');
  const quick = await client.run(b, '"b done"');
  t.equal(quick.done.payload.status, 'ok');
  const aRecord = await client.expect('execution', { op: 'execution.get', execution_id: longId });
  t.equal(aRecord.execution.status, 'running', 'A is still running when B has finished');
  await client.expect('execution', { op: 'cancel', execution_id: longId });
});

t.test('while(true) with timeout_ms: timeout, server and other sessions responsive, state rebuilt', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const loopSession = await client.createSession('loop');
  const others = [await client.createSession('other-1'), await client.createSession('other-2'), await client.createSession('other-3')];
  await client.run(loopSession, 'let before = "kept"; var counter = 10');
  for (const [index, other] of others.entries()) await client.run(other, `let mine = "other ${index}"`);

  const loop = await startExecution(client, loopSession, 'counter += 1; while (true) {}', { timeout_ms: 500 });
  const loopId = loop.execution.execution_id;
  // While the loop spins: the server answers, and every other session runs code.
  await sync(client);
  const otherRuns = await Promise.all(others.map((other) => startExecution(client, other, 'mine + " ran"', { timeout_ms: 10000 })));
  for (const [index, reply] of otherRuns.entries()) {
    const events = await client.untilDone(reply.execution.execution_id);
    t.equal(doneOf(events).status, 'ok', `session other-${index + 1} is not harmed by the loop`);
    t.equal(valueOf(events), `'other ${index} ran'`);
  }

  const events = await client.untilDone(loopId);
  t.equal(doneProblems(events), null);
  t.equal(doneOf(events).status, 'timeout');
  const record = await client.expect('execution', { op: 'execution.get', execution_id: loopId });
  t.equal(record.execution.status, 'timeout');

  const after = await client.run(loopSession, 'before + " " + counter');
  t.equal(after.done.payload.status, 'ok', 'the session is usable after the timeout');
  t.equal(valueOf(after.events), "'kept 10'", 'state from before the loop is still there');
  t.same(after.events.map((e) => e.seq), after.events.map((_e, i) => i + 1));
  for (const [index, other] of others.entries()) {
    t.equal(valueOf((await client.run(other, 'mine')).events), `'other ${index}'`, `other-${index + 1} kept its state`);
  }
});

t.test('a rebuilt session keeps state from executions that ended in an error', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('rebuild-errors');
  await client.run(session, 'let a = 1');
  // Both of these change the session's state, then throw: the state change stays, as in any REPL.
  const failed1 = await client.run(session, 'let data = [1, 2, 3]; data.map((x) => x.foo.bar)');
  t.equal(failed1.done.payload.status, 'error');
  const failed2 = await client.run(session, 'a = 2; throw new Error("after assigning")');
  t.equal(failed2.done.payload.status, 'error');
  const before = await client.run(session, 'typeof data + " " + a');
  t.equal(valueOf(before.events), "'object 2'", 'state before the runaway');

  const loop = await startExecution(client, session, 'while (true) {}', { timeout_ms: 300 });
  const loopEvents = await client.untilDone(loop.execution.execution_id);
  t.equal(doneOf(loopEvents).status, 'timeout');

  const after = await client.run(session, 'typeof data + " " + a');
  t.equal(after.done.payload.status, 'ok');
  t.equal(valueOf(after.events), "'object 2'", 'the same state after the rebuild');
});

t.test('the sandbox has no process or require and cannot reach the host', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('sandbox');
  t.equal(valueOf((await client.run(session, 'typeof process')).events), "'undefined'");
  t.equal(valueOf((await client.run(session, 'typeof require')).events), "'undefined'");
  const probes = [
    'this.constructor.constructor("return process")()',
    'Function("return process")()',
    'console.log.constructor("return process")()',
    'setTimeout.constructor("return process")()',
    '(async () => {}).constructor("return process")()',
    'Object.getPrototypeOf(globalThis).constructor.constructor("return process")()',
    'new Error().constructor.constructor("return process")()',
  ];
  for (const probe of probes) {
    const code = `let r; try { r = ${probe}; } catch (e) { r = undefined } typeof r === "object" && r !== null && typeof r.exit === "function" ? "ESCAPED" : "contained"`;
    const run = await client.run(session, `{ ${code} }`);
    t.equal(valueOf(run.events), "'contained'", probe);
  }
  // Host functions reached through stack-trace call sites, from code the host calls back (a timer).
  const callSites = await client.run(session, [
    'await new Promise((resolve) => setTimeout(() => {',
    '  const saved = Error.prepareStackTrace;',
    '  let found = "contained";',
    '  Error.prepareStackTrace = (_e, sites) => sites;',
    '  const sites = new Error().stack;',
    '  Error.prepareStackTrace = saved;',
    '  for (const site of Array.isArray(sites) ? sites : []) {',
    '    for (const f of [site.getFunction?.(), site.getThis?.()]) {',
    '      try { const p = f && f.constructor && f.constructor.constructor("return process")(); if (p && typeof p.exit === "function") found = "ESCAPED"; } catch {}',
    '    }',
    '  }',
    '  resolve(found);',
    '}, 1))',
  ].join('\n'));
  t.equal(valueOf(callSites.events), "'contained'", 'call sites of host frames lead nowhere');
  const dynamicImport = await client.run(session, 'await import("node:fs").then((m) => typeof m.readFileSync === "function" ? "ESCAPED" : "contained", () => "contained")');
  t.equal(valueOf(dynamicImport.events), "'contained'", 'dynamic import of node:fs fails');

  const direct = await client.run(session, 'this.constructor.constructor("return process")()');
  const leaked = direct.events.find((e) => e.type === 'value');
  t.notOk(leaked && /pid|exit|versions/.test(leaked.payload.preview), 'no host process object in the preview');
});

t.test('a timer callback that throws is reported and strands none of the run’s other timers', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('timer-throws');
  // Issue 13: this used to end as `timeout` after the full limit, the awaited timer cleared.
  const run = await client.run(session, [
    "setTimeout(() => { throw new RangeError('from a timer') }, 1);",
    'const later = await new Promise((resolve) => setTimeout(() => resolve(41), 50));',
    "console.log('after', later);",
    'later + 1',
  ].join('\n'), { timeout_ms: 20_000 });
  const types = run.events.map((e) => e.type);
  t.strictSame(types, ['exception', 'console', 'value', 'done'], 'the exception, then the rest of the run');
  t.equal((run.events[0] as EventFrame<'exception'>).payload.name, 'RangeError');
  t.match((run.events[0] as EventFrame<'exception'>).payload.stack, /^RangeError: from a timer\n {4}at .*REPL/);
  t.equal(valueOf(run.events), '42', 'the awaited timer still fired');
  t.equal(run.done.payload.status, 'error', 'a run with an uncaught exception ends as an error');
  t.notOk(run.done.payload.reason, 'not a timeout');

  // An interval that throws is stopped after its first exception; the run ends once the code settled.
  const interval = await client.run(session, "let ticks = 0; setInterval(() => { ticks++; throw new Error('tick') }, 5); 'started'", { timeout_ms: 20_000 });
  t.strictSame(interval.events.map((e) => e.type), ['value', 'exception', 'done']);
  t.equal(interval.done.payload.status, 'error');
  t.equal(valueOf((await client.run(session, 'ticks')).events), '1', 'the interval did not fire again');
});

t.test('values and console arguments carry structured previews; console.table a table', async (t) => {
  const server = await shared();
  const client = await clientFor(t, server);
  const session = await client.createSession('structured');
  const run = await client.run(session, "console.log('n =', 1, { a: [1, { b: 2 }] }); console.table([{ x: 1 }, { x: 2, y: 'z' }]); console.log('plain'); new Map([['k', new Set([1])]])");
  const [logged, table, plain] = run.events.filter((e) => e.type === 'console') as EventFrame<'console'>[];
  t.equal(logged!.payload.text, 'n = 1 { a: [ 1, { b: 2 } ] }');
  t.strictSame(logged!.payload.data, [
    { kind: 'string', text: 'n =' },
    { kind: 'number', text: '1' },
    { kind: 'object', props: [['a', { kind: 'array', size: 2, props: [['0', { kind: 'number', text: '1' }], ['1', { kind: 'object', props: [['b', { kind: 'number', text: '2' }]] }]] }]] },
  ]);
  t.strictSame(table!.payload.table, {
    columns: ['(index)', 'x', 'y'],
    rows: [[{ kind: 'string', text: '0' }, { kind: 'number', text: '1' }, null], [{ kind: 'string', text: '1' }, { kind: 'number', text: '2' }, { kind: 'string', text: 'z' }]],
  });
  t.match(table!.payload.text, /^┌─────────┬───┬─────┐\n│ \(index\) │ x │  y  │/);
  t.notOk('data' in plain!.payload || 'table' in plain!.payload, 'a line of strings has no structure');
  const value = run.events.find((e) => e.type === 'value') as EventFrame<'value'>;
  t.equal(value.payload.preview, "Map(1) { 'k' => Set(1) { 1 } }");
  t.strictSame(value.payload.data, { kind: 'map', size: 1, entries: [[{ kind: 'string', text: 'k' }, { kind: 'set', size: 1, items: [{ kind: 'number', text: '1' }] }]] });

  // Replayed from the store to another connection, the same.
  const reader = await clientFor(t, server);
  await reader.expect('subscribed', { op: 'subscribe', execution_id: run.done.execution_id, after_seq: 0 });
  const again = await reader.untilDone(run.done.execution_id);
  t.strictSame((again.find((e) => e.type === 'console' && 'table' in e.payload) as EventFrame<'console'>).payload, table!.payload);
  t.strictSame((again.find((e) => e.type === 'value') as EventFrame<'value'>).payload, value.payload, 'stored and replayed as it was sent');
});
