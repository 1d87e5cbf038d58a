/**
 * Console lines leave the worker as wire bytes (issue 15: encode once, where the event is born). A
 * worker writes a plain console line (no structured `data`/`table`: those stay output records,
 * messages.ts's OutputItem) as one ring record:
 *
 *   [xid: msgpack str][the line's `event` frame, as protocol v1 sends it, with a 4-byte seq slot]
 *
 * The frame is {op: "event", execution_id, seq, type: "console", ts, payload: {level, text,
 * truncated?}} in protocol/batch.ts's key order, `seq` a uint32 (0xce) whose value the worker
 * leaves 0, `ts` a float64 (as msgpackr writes Date.now()). The server checks the record against
 * this template byte by byte (`readConsoleRecord`), writes the seq it assigns into the slot, and
 * stores and sends those bytes: no decode, no payload object, no re-encode. Seq stays the server's
 * to give, so events it makes itself (session.restoring, the output-limit marker, done) interleave
 * as before.
 *
 * The record's writer runs user code and may have been escaped: anything that is not exactly the
 * template (an unknown level, a length that does not end the record, text that is not UTF-8, a
 * frame naming another execution than the record's xid) is refused, never half-read.
 */
import { isUtf8 } from 'node:buffer';
import type { SandboxOutput } from '../sandbox/sandbox.js';
import { CONSOLE_LEVELS } from './messages.js';

const ascii = (text: string) => [...text].map((char) => char.charCodeAt(0));
const fixstr = (text: string) => [0xa0 | text.length, ...ascii(text)];
/** A str header (fixstr or str8) for an ASCII string of `length` < 256 bytes. */
const strHeader = (length: number) => (length < 32 ? [0xa0 | length] : [0xd9, length]);

/** Map of 6 pairs, `op: "event"`, and the key `execution_id` (its value follows). */
const HEAD = Uint8Array.from([0x86, ...fixstr('op'), ...fixstr('event'), ...fixstr('execution_id')]);
/** From the key `seq` to the seq slot's tag. */
const SEQ = Uint8Array.from([...fixstr('seq'), 0xce]);
/** From the key `type` to the ts's tag. */
const TYPE_TS = Uint8Array.from([...fixstr('type'), ...fixstr('console'), ...fixstr('ts'), 0xcb]);
const PAYLOAD_KEY = Uint8Array.from(fixstr('payload'));
const LEVEL_KEY = Uint8Array.from(fixstr('level'));
const TEXT_KEY = Uint8Array.from(fixstr('text'));
const TRUNCATED = Uint8Array.from([...fixstr('truncated'), 0xc3]);
/** Each level's encoded value, by its index in CONSOLE_LEVELS. */
const LEVELS = CONSOLE_LEVELS.map((level) => Uint8Array.from(fixstr(level)));
/** What a line adds to its prefix besides its text: seq value, type, ts, the payload's keys, level, text header. */
const FIXED_BYTES = 4 + TYPE_TS.length + 8 + PAYLOAD_KEY.length + 1 + LEVEL_KEY.length + 6 + TEXT_KEY.length + 5 + TRUNCATED.length;
/** Ids are ASCII (protocol/schemas.ts ID_PATTERN, tenants' TENANT_PATTERN): printable ASCII is all a record may hold. */
const PRINTABLE = /^[\x20-\x7e]+$/;

/** Bytes of a str header for a string of `bytes` bytes. */
const strHeaderSize = (bytes: number) => (bytes < 32 ? 1 : bytes < 0x100 ? 2 : bytes < 0x10000 ? 3 : 5);

function writeStrHeader(out: Uint8Array, view: DataView, at: number, bytes: number, size: number): number {
  if (size === 1) out[at] = 0xa0 | bytes;
  else if (size === 2) (out[at] = 0xd9), (out[at + 1] = bytes);
  else if (size === 3) (out[at] = 0xda), view.setUint16(at + 1, bytes);
  else (out[at] = 0xdb), view.setUint32(at + 1, bytes);
  return at + size;
}

/** The record's bytes up to the seq slot's value: the same for every line of an execution. */
export type RecordPrefix = Uint8Array;

/**
 * The worker's side: `prefix` once per execution, then `encode` per line into one scratch buffer,
 * grown as lines need; its result is a view of it, valid until the next call (the ring copies it).
 */
export class ConsoleRecordEncoder {
  #buffer = Buffer.allocUnsafe(4096);
  #view = new DataView(this.#buffer.buffer, this.#buffer.byteOffset, this.#buffer.length);

  /** The prefix of `xid`'s records; null for an id the template cannot hold (its lines go as OutputItems). */
  prefix(xid: string): RecordPrefix | null {
    const publicId = publicIdOf(xid);
    if (xid.length > 0xff || !PRINTABLE.test(xid)) return null;
    return Uint8Array.from([...strHeader(xid.length), ...ascii(xid), ...HEAD, ...strHeader(publicId.length), ...ascii(publicId), ...SEQ]);
  }

  /** The record of one line; null for arguments no honest context passes (its line then goes as an OutputItem, which the server refuses). */
  encode(prefix: RecordPrefix, level: number, text: string, truncated: boolean, ts: number): Uint8Array | null {
    const levelBytes = LEVELS[level];
    if (levelBytes === undefined || typeof text !== 'string') return null;
    // UTF-8 takes at most 3 bytes per UTF-16 unit: the text's header is sized for that bound, and
    // is written exactly once the text's real length is known.
    const textRoom = text.length * 3;
    const textHeader = strHeaderSize(textRoom);
    this.#reserve(prefix.length + FIXED_BYTES + textHeader + textRoom);
    const out = this.#buffer;
    const view = this.#view;
    out.set(prefix, 0);
    let at = prefix.length;
    view.setUint32(at, 0);
    at += 4;
    out.set(TYPE_TS, at);
    at += TYPE_TS.length;
    view.setFloat64(at, ts);
    at += 8;
    out.set(PAYLOAD_KEY, at);
    at += PAYLOAD_KEY.length;
    out[at++] = truncated ? 0x83 : 0x82;
    out.set(LEVEL_KEY, at);
    at += LEVEL_KEY.length;
    out.set(levelBytes, at);
    at += levelBytes.length;
    out.set(TEXT_KEY, at);
    at += TEXT_KEY.length;
    const textBytes = out.write(text, at + textHeader, 'utf8');
    // Shorter than the bound: the smallest header for the real length, the text moved up to it.
    const header = strHeaderSize(textBytes);
    if (header !== textHeader) out.copyWithin(at + header, at + textHeader, at + textHeader + textBytes);
    at = writeStrHeader(out, view, at, textBytes, header) + textBytes;
    if (truncated) {
      out.set(TRUNCATED, at);
      at += TRUNCATED.length;
    }
    return out.subarray(0, at);
  }

  #reserve(bytes: number): void {
    if (bytes <= this.#buffer.length) return;
    this.#buffer = Buffer.allocUnsafe(Math.max(bytes, this.#buffer.length * 2));
    this.#view = new DataView(this.#buffer.buffer, this.#buffer.byteOffset, this.#buffer.length);
  }
}

/** Whether `record` (a ring record, or a pipe frame's body) is a console record rather than an OutputItem array. */
export function isConsoleRecord(record: Uint8Array): boolean {
  const tag = record[0]!;
  return (tag >= 0xa0 && tag <= 0xbf) || tag === 0xd9;
}

/**
 * The server's side: `record` as the console output it stands for, its `frame` a view of the
 * record's bytes with its seq slot at `seqAt`; null unless it is exactly the template.
 */
export function readConsoleRecord(record: Uint8Array): Extract<SandboxOutput, { kind: 'encoded' }> | null {
  const reader = new TemplateReader(record);
  const xid = reader.str();
  if (xid === null) return null;
  const frameStart = reader.at;
  if (!reader.expect(HEAD)) return null;
  // The frame's execution_id is the public form of the record's xid, byte for byte.
  const id = reader.str();
  if (id === null || id !== publicIdOf(xid)) return null;
  if (!reader.expect(SEQ)) return null;
  const seqAt = reader.skip(4);
  if (seqAt < 0 || !reader.expect(TYPE_TS)) return null;
  const tsAt = reader.skip(8);
  if (tsAt < 0) return null;
  const ts = new DataView(record.buffer, record.byteOffset + tsAt, 8).getFloat64(0);
  if (!Number.isFinite(ts) || !reader.expect(PAYLOAD_KEY)) return null;
  const pairs = reader.byte();
  if ((pairs !== 0x82 && pairs !== 0x83) || !reader.expect(LEVEL_KEY)) return null;
  if (!LEVELS.some((level) => reader.expect(level)) || !reader.expect(TEXT_KEY)) return null;
  const text = reader.strSpan();
  if (text === null || !isUtf8(record.subarray(text[0], text[1]))) return null;
  if (pairs === 0x83 && !reader.expect(TRUNCATED)) return null;
  if (reader.at !== record.length) return null;
  return { kind: 'encoded', executionId: xid, ts, type: 'console', frame: record.subarray(frameStart), seqAt: seqAt - frameStart };
}

/** A cursor over untrusted bytes: every read is bounds-checked and fails softly (null, false, -1). */
class TemplateReader {
  readonly #bytes: Uint8Array;
  at = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  byte(): number {
    return this.at < this.#bytes.length ? this.#bytes[this.at++]! : -1;
  }

  /** Moves past `bytes` when they come next; otherwise stays and says no. */
  expect(bytes: Uint8Array): boolean {
    if (this.at + bytes.length > this.#bytes.length) return false;
    for (let index = 0; index < bytes.length; index++) if (this.#bytes[this.at + index] !== bytes[index]) return false;
    this.at += bytes.length;
    return true;
  }

  /** Skips `count` bytes; where they started, or -1 past the end. */
  skip(count: number): number {
    if (this.at + count > this.#bytes.length) return -1;
    this.at += count;
    return this.at - count;
  }

  /** [start, end) of a str's bytes (any of its four forms), or null. */
  strSpan(): [number, number] | null {
    const bytes = this.#bytes;
    const tag = this.byte();
    let length: number;
    if (tag >= 0xa0 && tag <= 0xbf) length = tag & 0x1f;
    else if (tag === 0xd9 && this.at + 1 <= bytes.length) length = bytes[this.at++]!;
    else if (tag === 0xda && this.at + 2 <= bytes.length) (length = (bytes[this.at]! << 8) | bytes[this.at + 1]!), (this.at += 2);
    else if (tag === 0xdb && this.at + 4 <= bytes.length) (length = new DataView(bytes.buffer, bytes.byteOffset + this.at, 4).getUint32(0)), (this.at += 4);
    else return null;
    const start = this.skip(length);
    return start < 0 ? null : [start, start + length];
  }

  /** A short ASCII str (an id: fixstr or str8), or null. */
  str(): string | null {
    const tag = this.#bytes[this.at];
    if (tag === undefined || !((tag >= 0xa0 && tag <= 0xbf) || tag === 0xd9)) return null;
    const span = this.strSpan();
    if (span === null) return null;
    let text = '';
    for (let index = span[0]; index < span[1]; index++) {
      const code = this.#bytes[index]!;
      if (code > 0x7e || code < 0x20) return null;
      text += String.fromCharCode(code);
    }
    return text;
  }
}

/** The id a client knows an execution by: its stored id without the tenant (sessions/live.ts's publicExecutionId). */
function publicIdOf(xid: string): string {
  return xid.slice(xid.indexOf('/') + 1);
}
