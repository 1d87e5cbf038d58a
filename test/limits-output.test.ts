/**
 * Output limits per execution: past VMSTREAM_MAX_EVENTS events or VMSTREAM_MAX_OUTPUT_BYTES bytes of
 * encoded frames the output is cut — one warn marker says so — and the execution ends with
 * done {status: "error", reason: "output_limit"}, within the limit, seqs contiguous. A single huge
 * console text is cut to VMSTREAM_MAX_TEXT_CHARS and flagged `truncated: true`.
 */
import t, { type Test } from 'tap';
import { decodeValue } from '../protocol/codec.js';
import { contiguousFrom1, seqs } from './helpers/client.js';
import { clientFor, serverFor } from './helpers/util.js';
import { runRepl, last, type AnyEvent } from './helpers/loose.js';

const MARKER = /output limit/i;

async function setup(t: Test, env: Record<string, string>) {
  const server = await serverFor(t, { env });
  const client = await clientFor(t, server);
  // Bytes of every event frame as it came off the wire, per execution; and of each non-marker console frame.
  const wireBytes = new Map<string, number>();
  const lineBytes = new Map<string, number[]>();
  client.socket.on('message', (data: Buffer) => {
    const frame = decodeValue(data) as { op: string; execution_id?: string; type?: string; payload?: any };
    if (frame.op !== 'event') return;
    const id = frame.execution_id!;
    wireBytes.set(id, (wireBytes.get(id) ?? 0) + data.length);
    if (frame.type === 'done' || (frame.type === 'console' && MARKER.test(frame.payload.text))) return;
    const list = lineBytes.get(id);
    if (list) list.push(data.length);
    else lineBytes.set(id, [data.length]);
  });
  return { server, client, wireBytes, lineBytes };
}

/** The checks every cut execution must pass; returns its console lines (without the marker). */
function checkCut(t: Test, events: AnyEvent[], maxEvents: number): string[] {
  const done = last(events);
  t.equal(done.type, 'done', 'ends with done');
  t.equal(done.payload.status, 'error');
  t.equal(done.payload.reason, 'output_limit');
  t.ok(events.length <= maxEvents, `${events.length} events, within the limit of ${maxEvents}`);
  t.ok(contiguousFrom1(seqs(events)), 'seqs contiguous from 1');
  t.equal(events.filter((e) => e.type === 'done').length, 1, 'exactly one done');
  const markers = events.filter((e) => e.type === 'console' && MARKER.test(e.payload.text));
  t.equal(markers.length, 1, 'exactly one marker says the output was cut');
  t.equal(markers[0]?.payload.level, 'warn', 'the marker is a warning');
  t.equal(events[events.length - 2], markers[0], 'the marker is the last event before done');
  return events.filter((e) => e.type === 'console' && e !== markers[0]).map((e) => e.payload.text as string);
}

t.test('VMSTREAM_MAX_EVENTS: 5000 lines against a limit of 1000', async (t) => {
  const { server, client } = await setup(t, { VMSTREAM_MAX_EVENTS: '1000' });
  const s = await client.createSession();
  await runRepl(client, s, "let before = 'state'");
  const run = await runRepl(client, s, "for (let i = 0; i < 5000; i++) console.log('line ' + i)");
  const lines = checkCut(t, run.events as AnyEvent[], 1000);
  t.ok(lines.length > 0, `${lines.length} lines made it`);
  t.same(lines, lines.map((_, i) => `line ${i}`), 'the lines that made it are the first ones, in order, none skipped');
  const record = (await client.expect('execution', { op: 'execution.get', execution_id: run.execution.execution_id })).execution;
  t.equal(record.status, 'error');
  t.equal(record.reason, 'output_limit');
  t.equal(record.last_seq, run.events.length, 'the record agrees with the stream');

  // A replay gives the very same, cut, log.
  const replayer = await clientFor(t, server);
  await replayer.expect('subscribed', { op: 'subscribe', execution_id: run.execution.execution_id, after_seq: 0 });
  const replayed = await replayer.untilDone(run.execution.execution_id);
  t.same(replayed, run.events, 'replay is identical');

  // The session carries on.
  const after = await runRepl(client, s, 'before');
  t.equal(after.done.payload.status, 'ok');
  t.equal(after.events.find((e) => e.type === 'value')?.payload.preview, "'state'");
});

t.test('VMSTREAM_MAX_EVENTS: an endless logging loop is cut and stopped', async (t) => {
  const { client } = await setup(t, { VMSTREAM_MAX_EVENTS: '1000' });
  const s = await client.createSession();
  const run = await runRepl(client, s, "for (;;) console.log('spam')", { timeout_ms: 20000 });
  const events = run.events as AnyEvent[];
  checkCut(t, events, 1000);
  t.ok(run.done.payload.session === 'kept' || run.done.payload.session === 'rebuilt', 'says what happened to the session');
  const next = await runRepl(client, s, '1 + 1');
  t.equal(next.done.payload.status, 'ok', 'the session runs again');
  t.equal(next.events.find((e) => e.type === 'value')?.payload.preview, '2');
});

t.test('VMSTREAM_MAX_OUTPUT_BYTES: 5000 lines against a byte limit', async (t) => {
  const maxBytes = 20000;
  const { client, wireBytes, lineBytes } = await setup(t, { VMSTREAM_MAX_OUTPUT_BYTES: String(maxBytes) });
  const s = await client.createSession();
  const run = await runRepl(client, s, "for (let i = 0; i < 5000; i++) console.log('line ' + String(i).padStart(4, '0') + ' ' + 'x'.repeat(40))");
  const events = run.events as AnyEvent[];
  const lines = checkCut(t, events, 100_000);
  t.ok(lines.length > 0 && lines.length < 5000, `${lines.length} lines made it`);
  t.same(lines, lines.map((_, i) => `line ${String(i).padStart(4, '0')} ${'x'.repeat(40)}`), 'the first lines, in order');
  const id = run.execution.execution_id as string;
  const total = wireBytes.get(id)!;
  const counted = lineBytes.get(id)!;
  const oneLine = counted[0]!;
  t.ok(counted.every((bytes) => bytes === oneLine), 'sanity: every line frame has the same size');
  const sum = counted.reduce((a, b) => a + b, 0);
  t.comment(`${events.length} events, ${total} bytes of event frames, ${sum} of them counted against the limit`);
  // The marker and done are not counted against the byte limit; everything else is.
  t.ok(sum <= maxBytes, `the counted frames total ${sum} bytes, within the limit of ${maxBytes}`);
  t.ok(sum + oneLine > maxBytes, 'the cut came at the first line that would have passed the limit, not earlier');
});

t.test('one huge console text is cut to VMSTREAM_MAX_TEXT_CHARS (default 65536)', async (t) => {
  const { client } = await setup(t, {});
  const s = await client.createSession();
  const run = await runRepl(client, s, "console.log('x'.repeat(1e6)); console.log('short')");
  const consoles = (run.events as AnyEvent[]).filter((e) => e.type === 'console');
  t.equal(consoles.length, 2);
  const huge = consoles[0]!.payload;
  t.equal(huge.truncated, true, 'flagged truncated');
  t.equal(/^x*/.exec(huge.text)![0].length, 65536, 'exactly 65536 characters of the text are kept');
  t.equal(huge.text.slice(65536), `… [${1e6 - 65536} more characters cut]`, 'followed by how much was cut');
  t.equal(consoles[1]!.payload.text, 'short');
  t.notOk('truncated' in consoles[1]!.payload, 'a short text is not flagged');
  t.equal(run.done.payload.status, 'ok');
});

t.test('VMSTREAM_MAX_TEXT_CHARS and VMSTREAM_MAX_PREVIEW_CHARS are honoured', async (t) => {
  const { client } = await setup(t, { VMSTREAM_MAX_TEXT_CHARS: '100', VMSTREAM_MAX_PREVIEW_CHARS: '100' });
  const s = await client.createSession();
  const run = await runRepl(client, s, "console.warn('y'.repeat(5000)); console.log('z'.repeat(100)); 'w'.repeat(5000)");
  const [cut, exact] = (run.events as AnyEvent[]).filter((e) => e.type === 'console');
  t.equal(cut!.payload.level, 'warn');
  t.equal(cut!.payload.truncated, true);
  t.equal(cut!.payload.text, `${'y'.repeat(100)}… [4900 more characters cut]`, '100 characters kept, then the cut note');
  t.equal(exact!.payload.text, 'z'.repeat(100), 'a text of exactly the limit is whole');
  t.notOk('truncated' in exact!.payload);
  const value = run.events.find((e) => e.type === 'value')!.payload as any;
  // The preview of the string is quoted ('www…'), 5002 characters: cut after 100, without a flag.
  t.equal(value.preview, `'${'w'.repeat(99)}… [4902 more characters cut]`, 'the value preview is cut too');
  t.notOk('truncated' in value, 'a preview carries no flag');
});
