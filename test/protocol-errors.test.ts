/**
 * protocol/README.md against the code, both ways, as fastify's errors test checks docs/Errors.md:
 * the Errors table against ERROR_CODES, each request op's table against its schema in
 * REQUEST_SCHEMAS; then a few cases of the validators the schemas compile to.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { ERROR_CODES, isErrorCode, socketClose, wireError, ProtocolError, type ClosingCode } from '../protocol/errors.js';
import { checkRequest, isKnownOp, REQUEST_SCHEMAS } from '../protocol/schemas.js';
import type { ClientOp } from '../protocol/types.js';

const README = readFileSync(new URL('../protocol/README.md', import.meta.url), 'utf8');

interface Section { level: number; title: string; body: string[] }

/** The document cut at its headings (outside code fences). */
function sections(markdown: string): Section[] {
  const out: Section[] = [];
  let current: Section = { level: 0, title: '', body: [] };
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const heading = fenced ? null : /^(#{1,6})\s+(.*?)\s*$/.exec(line);
    if (heading) {
      out.push(current);
      current = { level: heading[1]!.length, title: heading[2]!, body: [] };
    } else {
      current.body.push(line);
    }
  }
  out.push(current);
  return out;
}

/** Every line under `section` down to the next heading of its level or above, sub-sections included. */
function bodyOf(all: Section[], section: Section): string[] {
  const start = all.indexOf(section);
  const lines = [...section.body];
  for (const next of all.slice(start + 1)) {
    if (next.level <= section.level) break;
    lines.push(`${'#'.repeat(next.level)} ${next.title}`, ...next.body);
  }
  return lines;
}

function cells(row: string): string[] {
  return row.trim().replace(/^\|/, '').replace(/\|$/, '').split(/(?<!\\)\|/).map((cell) => cell.trim());
}

/** The tables in some lines: header cells, then rows of cells. */
function tables(lines: string[]): Array<{ header: string[]; rows: string[][] }> {
  const found: Array<{ header: string[]; rows: string[][] }> = [];
  for (let index = 0; index < lines.length - 1; index++) {
    if (!lines[index]!.trim().startsWith('|') || !/^\s*\|?\s*:?-{3,}/.test(lines[index + 1]!)) continue;
    const header = cells(lines[index]!);
    const rows: string[][] = [];
    let row = index + 2;
    for (; row < lines.length && lines[row]!.trim().startsWith('|'); row++) rows.push(cells(lines[row]!));
    found.push({ header, rows });
    index = row;
  }
  return found;
}

const all = sections(README);

t.test('the Errors table and ERROR_CODES agree, both ways', async (t) => {
  const errors = all.filter((section) => section.title === 'Errors');
  t.equal(errors.length, 1, 'one section titled "Errors"');
  const lines = bodyOf(all, errors[0]!);
  const table = tables(lines).find((candidate) => candidate.header.join('|') === 'code|HTTP status|close code|meaning');
  if (!table) {
    t.fail('a table with exactly the columns | code | HTTP status | close code | meaning |');
    return;
  }
  const documented = new Map<string, { http: number; close: number | null }>();
  for (const row of table.rows) {
    t.equal(row.length, 4, `four cells: ${row.join(' | ')}`);
    const code = /^`([A-Z_]+)`$/.exec(row[0] ?? '')?.[1];
    if (!code) {
      t.fail(`a code in backticks: ${row[0]}`);
      continue;
    }
    t.notOk(documented.has(code), `${code} is documented once`);
    t.match(row[1], /^\d{3}$/, `${code}: the HTTP status is a number`);
    t.match(row[2], /^(\d{4}|—)$/, `${code}: the close code is a number or —`);
    t.ok((row[3] ?? '').length > 0, `${code}: has a meaning`);
    documented.set(code, { http: Number(row[1]), close: row[2] === '—' ? null : Number(row[2]) });
  }
  for (const [code, { http, close }] of documented) {
    if (t.ok(isErrorCode(code), `documented ${code} is in ERROR_CODES`) && isErrorCode(code)) {
      t.equal(http, ERROR_CODES[code].http, `${code}: the same HTTP status`);
      t.equal(close, ERROR_CODES[code].close, `${code}: the same close code`);
    }
  }
  for (const code of Object.keys(ERROR_CODES)) t.ok(documented.has(code), `${code} of ERROR_CODES is documented`);
  t.equal(documented.size, Object.keys(ERROR_CODES).length, 'as many rows as codes');

  // The close-code table: exactly the codes that close a socket, each with its error code.
  const closes = tables(lines).find((candidate) => candidate.header.join('|') === 'close code|code|when');
  if (!closes) {
    t.fail('a table with exactly the columns | close code | code | when |');
    return;
  }
  const closing = Object.entries(ERROR_CODES).filter(([, row]) => row.close !== null).map(([code, row]) => `${row.close} ${code}`).sort();
  const listed = closes.rows.map((row) => `${row[0]} ${/^`([A-Z_]+)`$/.exec(row[1] ?? '')?.[1]}`).sort();
  t.strictSame(listed, closing, 'the close-code table lists each closing code with its close code, both ways');
  for (const row of closes.rows) t.ok((row[2] ?? '').length > 0, `close ${row[0]}: says when`);
});

t.test('the one builder: frames, envelopes and closes from the same table', async (t) => {
  const wire = wireError(new ProtocolError('NOT_FOUND', 'no such session'));
  t.strictSame(wire, { code: 'NOT_FOUND', message: 'no such session', status: 404, close: null, internal: false });
  const internal = wireError(new Error('disk on fire'));
  t.strictSame(internal, { code: 'INTERNAL', message: 'internal error', status: 500, close: null, internal: true }, 'anything else is INTERNAL, its text kept out');
  for (const code of Object.keys(ERROR_CODES) as Array<keyof typeof ERROR_CODES>) {
    const row = ERROR_CODES[code];
    t.equal(wireError(new ProtocolError(code, 'm')).status, row.http, `${code}: status`);
    if (row.close !== null) t.equal(socketClose(code as ClosingCode, 'm').code, row.close, `${code}: closes with ${row.close}`);
  }
  const long = socketClose('UNAUTHORIZED', 'é'.repeat(200));
  t.ok(new TextEncoder().encode(long.reason).length <= 123, 'a close reason fits in 123 bytes of UTF-8');
  t.ok(long.reason.length > 0 && 'é'.repeat(200).startsWith(long.reason), 'cut whole characters from the end');
});

t.test('every request op has a section whose table matches its schema', async (t) => {
  const requests = all.find((section) => section.level === 2 && /^Requests\b/.test(section.title));
  if (!requests) {
    t.fail('a "Requests" section');
    return;
  }
  const under = all.slice(all.indexOf(requests) + 1);
  const end = under.findIndex((section) => section.level <= requests.level);
  const opSections = end < 0 ? under : under.slice(0, end);
  for (const [op, schema] of Object.entries(REQUEST_SCHEMAS) as Array<[ClientOp, { properties: Record<string, unknown>; required: string[] }]>) {
    const section = opSections.find((candidate) => candidate.title.includes(`\`${op}\``));
    if (!section) {
      t.fail(`a section for \`${op}\``);
      continue;
    }
    const table = tables(section.body).find((candidate) => candidate.header[0] === 'field');
    if (!table) {
      t.fail(`\`${op}\`: a table whose first column is "field"`);
      continue;
    }
    t.same(table.header, ['field', 'type', 'required', 'meaning'], `\`${op}\`: columns field, type, required, meaning`);
    const rows = new Map(table.rows.map((row) => [/^`([^`]+)`$/.exec(row[0] ?? '')?.[1] ?? row[0]!, row]));
    t.same([...rows.keys()].sort(), Object.keys(schema.properties).sort(), `\`${op}\`: the fields of its schema, no more`);
    for (const field of schema.required) {
      t.match(rows.get(field)?.[2] ?? '', /^yes\b/, `\`${op}\`: \`${field}\` is marked required`);
    }
    for (const [field, row] of rows) {
      if (!schema.required.includes(field)) t.notMatch(row[2] ?? '', /^yes\b/, `\`${op}\`: \`${field}\` is not marked plainly required`);
    }
  }
});

/** The smallest valid frame of each op: a new op must add one here. */
const MINIMAL: Record<ClientOp, Record<string, unknown>> = {
  'session.create': { op: 'session.create' },
  'session.list': { op: 'session.list' },
  'session.close': { op: 'session.close', session_id: 's1' },
  execute: { op: 'execute', session_id: 's1', kind: 'repl', code: '' },
  subscribe: { op: 'subscribe', execution_id: 'x1' },
  unsubscribe: { op: 'unsubscribe', execution_id: 'x1' },
  cancel: { op: 'cancel', execution_id: 'x1' },
  'session.rename': { op: 'session.rename', session_id: 's1', name: '' },
  'execution.get': { op: 'execution.get', execution_id: 'x1' },
  'execution.list': { op: 'execution.list', session_id: 's1' },
  complete: { op: 'complete', session_id: 's1', code: '', cursor: 0 },
  ping: { op: 'ping' },
};

t.test('validators: valid minimal frames pass', async (t) => {
  t.same(Object.keys(MINIMAL).sort(), Object.keys(REQUEST_SCHEMAS).sort(), 'a minimal frame for every op');
  for (const [op, frame] of Object.entries(MINIMAL) as Array<[ClientOp, Record<string, unknown>]>) {
    t.ok(isKnownOp(op), `${op} is known`);
    t.equal(checkRequest(op, frame), null, `${op}: minimal frame`);
    t.equal(checkRequest(op, { ...frame, id: 7 }), null, `${op}: with an integer id`);
    t.equal(checkRequest(op, { ...frame, id: 'req-1' }), null, `${op}: with a string id`);
  }
  t.equal(checkRequest('execute', { op: 'execute', session_id: 's1', kind: 'run-file', path: 'a/b.js' }), null, 'run-file with a path');
  t.equal(checkRequest('execute', { op: 'execute', session_id: 's1', kind: 'repl', code: '1', timeout_ms: 5, execution_id: 'job-1.a:b_c' }), null, 'every execute field');
  t.equal(checkRequest('subscribe', { op: 'subscribe', execution_id: 'x1', after_seq: 0 }), null, 'after_seq 0');
  t.equal(checkRequest('execution.list', { op: 'execution.list', session_id: 's1', limit: 100 }), null, 'limit 100');
  for (const op of ['nope', 'toString', '__proto__', 'constructor', 'event', 'pong', '']) t.notOk(isKnownOp(op), `\`${op}\` is not a request op`);
});

t.test('validators: missing or wrong fields fail with a message naming the field', async (t) => {
  const cases: Array<[ClientOp, Record<string, unknown>, string]> = [
    ['session.close', { op: 'session.close' }, 'session_id'],
    ['session.close', { op: 'session.close', session_id: 5 }, 'session_id'],
    ['session.close', { op: 'session.close', session_id: '' }, 'session_id'],
    ['session.close', { op: 'session.close', session_id: 'a!b' }, 'session_id'],
    ['session.close', { op: 'session.close', session_id: 'x'.repeat(129) }, 'session_id'],
    ['session.create', { op: 'session.create', name: 5 }, 'name'],
    ['session.create', { op: 'session.create', name: 'x'.repeat(201) }, 'name'],
    ['execute', { op: 'execute', kind: 'repl', code: '' }, 'session_id'],
    ['execute', { op: 'execute', session_id: 's1', code: '' }, 'kind'],
    ['execute', { op: 'execute', session_id: 's1', kind: 'python', code: '' }, 'kind'],
    ['execute', { op: 'execute', session_id: 's1', kind: 'repl' }, 'code'],
    ['execute', { op: 'execute', session_id: 's1', kind: 'repl', code: 1 }, 'code'],
    ['execute', { op: 'execute', session_id: 's1', kind: 'run-file' }, 'path'],
    ['execute', { op: 'execute', session_id: 's1', kind: 'run-file', path: '' }, 'path'],
    ['execute', { op: 'execute', session_id: 's1', kind: 'repl', code: '', timeout_ms: 0 }, 'timeout_ms'],
    ['execute', { op: 'execute', session_id: 's1', kind: 'repl', code: '', timeout_ms: 1.5 }, 'timeout_ms'],
    ['execute', { op: 'execute', session_id: 's1', kind: 'repl', code: '', execution_id: 'a/b' }, 'execution_id'],
    ['subscribe', { op: 'subscribe' }, 'execution_id'],
    ['subscribe', { op: 'subscribe', execution_id: 'x1', after_seq: -1 }, 'after_seq'],
    ['subscribe', { op: 'subscribe', execution_id: 'x1', after_seq: '3' }, 'after_seq'],
    ['unsubscribe', { op: 'unsubscribe', execution_id: null }, 'execution_id'],
    ['cancel', { op: 'cancel', execution_id: ['x1'] }, 'execution_id'],
    ['complete', { op: 'complete', session_id: 's1', code: 'a' }, 'cursor'],
    ['session.rename', { op: 'session.rename', session_id: 's1' }, 'name'],
    ['session.rename', { op: 'session.rename', session_id: 's1', name: 'x'.repeat(201) }, 'name'],
    ['complete', { op: 'complete', session_id: 's1', code: 'a', cursor: -1 }, 'cursor'],
    ['complete', { op: 'complete', session_id: 's1', cursor: 0 }, 'code'],
    ['execution.get', { op: 'execution.get' }, 'execution_id'],
    ['execution.list', { op: 'execution.list', session_id: 's1', limit: 0 }, 'limit'],
    ['execution.list', { op: 'execution.list', session_id: 's1', limit: 101 }, 'limit'],
    ['ping', { op: 'ping', id: { nested: true } }, 'id'],
    ['ping', { op: 'ping', id: 1.5 }, 'id'],
    ['ping', { op: 'ping', id: 'x'.repeat(129) }, 'id'],
  ];
  for (const [op, frame, field] of cases) {
    const message = checkRequest(op, frame);
    t.type(message, 'string', `${op} ${JSON.stringify(frame).slice(0, 60)} fails`);
    t.match(message ?? '', `\`${field}\``, `${op}: the message names \`${field}\` (${message})`);
  }
});
