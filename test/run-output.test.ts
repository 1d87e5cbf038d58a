/**
 * A worker's run output (src/pool/run-output.ts): console lines encoded straight into the output
 * ring are byte for byte the template's records (console-frame.ts's `encode`), in order, also
 * where the ring wraps (there they are encoded aside and copied); structured lines, values,
 * exceptions and `done` are OutputItems; a line no honest context passes goes as an OutputItem too
 * (which the server refuses).
 */
import t from 'tap';
import { unpack } from 'msgpackr';
import { ConsoleRecordEncoder } from '../src/pool/console-frame.js';
import { ItemKind } from '../src/pool/messages.js';
import { createRing, RingReader, RingWriter } from '../src/pool/output-ring.js';
import { RunOutputs } from '../src/pool/run-output.js';

const XID = 'acme/ex_7Kp2';
const TEXTS = ['hi', '', 'é✓ 𝄞 \u{d800}', 'x'.repeat(31), 'y'.repeat(200)];

/** A ring of `size` bytes read back record by record after every `every` records written. */
function harness(size: number, every: number) {
  const ring = createRing(size);
  const reader = new RingReader(ring);
  const records: Uint8Array[] = [];
  let count = 0;
  const outputs = new RunOutputs(new RingWriter(ring, () => {}), () => {
    if (++count % every === 0) reader.read(Infinity, (record) => records.push(record));
  });
  return { outputs, records, flush: () => reader.read(Infinity, (record) => records.push(record)) };
}

t.test('console lines are the template records, in order, in place or across the wrap', async (t) => {
  // ~6 laps of a 1 KiB ring: each lap's last line meets the wrap.
  const { outputs, records, flush } = harness(1024, 3);
  const output = outputs.for(XID, () => {});
  const encoder = new ConsoleRecordEncoder();
  const prefix = encoder.prefix(XID)!;
  const expected: Uint8Array[] = [];
  const before = Date.now();
  for (let index = 0; index < 60; index++) {
    const text = TEXTS[index % TEXTS.length]!;
    const level = index % 5;
    const truncated = index % 4 === 0;
    output.console(level, text, truncated, '');
    expected.push(Uint8Array.from(encoder.encode(prefix, level, text, truncated, 0)!));
  }
  flush();
  t.equal(records.length, 60);
  records.forEach((record, index) => {
    // Every byte but the ts's 8 (written from Date.now() at each line) is the template's.
    const tsAt = expected[index]!.indexOf(0xcb, prefix.length + 4) + 1;
    const ts = new DataView(record.buffer, record.byteOffset + tsAt, 8).getFloat64(0);
    t.ok(ts >= before && ts <= Date.now(), `line ${index}: its ts`);
    const masked = Uint8Array.from(record);
    masked.fill(0, tsAt, tsAt + 8);
    t.same(masked, expected[index], `line ${index}: the template's bytes`);
  });
});

t.test('structured lines, values, exceptions, done and a bad level go as OutputItems', async (t) => {
  const { outputs, records, flush } = harness(4096, 1);
  const ended: string[] = [];
  const output = outputs.for(XID, (xid) => ended.push(xid));
  output.console(0, 'with data', false, '{"data":[{"kind":"number","text":"1"}]}');
  output.console(9, 'no such level', false, '');
  output.value('number', '2', '');
  output.exception('Error', 'boom', 'Error: boom');
  output.done('ok');
  flush();
  const items = records.map((record) => unpack(record) as unknown[]);
  t.same(items.map((item) => [item[0], item[1], item[3], item[4]]), [
    [XID, ItemKind.Console, 0, 'with data'],
    [XID, ItemKind.Console, 9, 'no such level'],
    [XID, ItemKind.Value, 'number', '2'],
    [XID, ItemKind.Exception, 'Error', 'boom'],
    [XID, ItemKind.Done, 'ok', 0],
  ]);
  t.same(items[0]![6], { data: [{ kind: 'number', text: '1' }] });
  t.same(ended, [XID], 'told of the end before its done');
});
