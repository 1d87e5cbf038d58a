/**
 * src/mcp/output.ts, the text a model reads of an execution: each event type as its line, the
 * 64 000-character bound with whole events only, the note that says where read_output continues,
 * and the exception and ending still told after a cut.
 */
import t from 'tap';
import type { EventFrame, EventPayloads, EventType } from '../protocol/types.js';
import { eventText, latestLine, OUTPUT_CHAR_LIMIT, OutputText } from '../src/mcp/output.js';

function event<T extends EventType>(seq: number, type: T, payload: EventPayloads[T]): EventFrame {
  return { op: 'event', execution_id: 'x', seq, type, ts: 0, payload } as EventFrame;
}

t.test('each event as text', async (t) => {
  t.equal(eventText(event(1, 'console', { level: 'log', text: 'out' })), 'out');
  t.equal(eventText(event(1, 'console', { level: 'info', text: 'info' })), 'info');
  t.equal(eventText(event(1, 'console', { level: 'warn', text: 'careful' })), '[stderr] careful');
  t.equal(eventText(event(1, 'console', { level: 'error', text: 'bad' })), '[stderr] bad');
  t.equal(eventText(event(1, 'value', { type: 'number', preview: '42' })), '=> 42');
  t.equal(eventText(event(1, 'exception', { name: 'E', message: 'm', stack: 'E: m\n    at f' })), 'Uncaught E: m\n    at f');
  t.equal(eventText(event(1, 'exception', { name: 'E', message: 'm', stack: '' })), 'Uncaught E: m', 'no stack: name and message');
  t.equal(eventText(event(1, 'done', { status: 'ok', duration_ms: 1 })), null, 'an ok ending says nothing');
  t.equal(eventText(event(1, 'done', { status: 'timeout', duration_ms: 1, reason: 'timeout' })), '[vmstream] ended with status timeout (timeout)');
  t.match(eventText(event(1, 'session.lost', { session_id: 's', reason: 'gone' })), /state was lost: gone/);
  t.equal(latestLine(event(1, 'console', { level: 'log', text: 'a\nb' })), 'b', 'progress shows the last line');
  t.equal(latestLine(event(1, 'console', { level: 'log', text: 'z'.repeat(500) }))!.length, 201, 'shortened');
});

t.test('bounded to whole events, with a note naming read_output and the seq to continue from', async (t) => {
  const output = new OutputText();
  const line = 'x'.repeat(999);
  let seq = 0;
  for (; seq < 100; seq++) output.add(event(seq + 1, 'console', { level: 'log', text: line }));
  output.add(event(++seq, 'exception', { name: 'Error', message: 'late', stack: `Error: late\n${'    at f\n'.repeat(500)}` }));
  output.add(event(++seq, 'done', { status: 'error', duration_ms: 5 }));
  t.ok(output.truncated);
  const text = output.render('run-1', seq);
  t.ok(text.length <= OUTPUT_CHAR_LIMIT, `at most ${OUTPUT_CHAR_LIMIT} characters (${text.length})`);
  const kept = output.cutAfter!;
  t.equal(text.split('\n').filter((l) => l === line).length, kept, 'the events up to the cut, whole');
  t.match(text, `Call read_output with {"execution_id": "run-1", "after_seq": ${kept}}`);
  t.match(text, `events ${kept + 1} to ${seq} are not shown`);
  t.match(text, /\nUncaught Error: late\n[^]*…\n\[vmstream\] ended with status error$/, 'the exception (shortened) and the ending after the note');
});

t.test('nothing to show, and nothing cut', async (t) => {
  const output = new OutputText();
  output.add(event(1, 'done', { status: 'ok', duration_ms: 1 }));
  t.equal(output.render('x', 1), '(no output)');
  t.notOk(output.truncated);
});
