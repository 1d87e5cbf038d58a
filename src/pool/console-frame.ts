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

/**
 * A map of 6 pairs, `op: "event"`, and the key `execution_id` (its value follows). The map's header
 * is a map16, as msgpackr writes it for the server's own frames: every frame of a log then has one
 * layout, which protocol/batch.ts splices without decoding.
 */
const HEAD = Uint8Array.from([0xde, 0x00, 0x06, ...fixstr('op'), ...fixstr('event'), ...fixstr('execution_id')]);
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

/**
 * An execution's records' common bytes: up to the seq slot's value, and for each level (made at
 * its first line) up to the text's header, with the ts left 0 and the payload's size for a line
 * not cut. A line is then one copy of its level's head, its ts and its text.
 */
export class RecordPrefix {
  readonly #bytes: Uint8Array;
  readonly #heads: Array<Uint8Array | undefined> = [];

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  get length(): number {
    return this.#bytes.length;
  }

  /** The head of a line of `level` (an index in LEVELS, checked by the caller). */
  head(level: number): Uint8Array {
    return this.#heads[level] ??= Uint8Array.from([...this.#bytes, 0, 0, 0, 0, ...TYPE_TS, 0, 0, 0, 0, 0, 0, 0, 0, ...PAYLOAD_KEY, 0x82, ...LEVEL_KEY, ...LEVELS[level]!, ...TEXT_KEY]);
  }
}

/** Offsets in a head, from the seq slot's end: the ts's value, the payload map's header. */
const TS_AFTER_SEQ = TYPE_TS.length;
const PAIRS_AFTER_SEQ = TS_AFTER_SEQ + 8 + PAYLOAD_KEY.length;

/**
 * The worker's side: `prefix` once per execution, then per line either `encodeInto` a buffer the
 * caller holds room in (`maxBytes` of it: the output ring, written in place), or `encode` into one
 * scratch buffer, grown as lines need; its result is a view of it, valid until the next call.
 */
export class ConsoleRecordEncoder {
  #buffer = Buffer.allocUnsafe(4096);
  #view = new DataView(this.#buffer.buffer, this.#buffer.byteOffset, this.#buffer.length);

  /** The prefix of `xid`'s records; null for an id the template cannot hold (its lines go as OutputItems). */
  prefix(xid: string): RecordPrefix | null {
    const publicId = publicIdOf(xid);
    if (xid.length > 0xff || !PRINTABLE.test(xid)) return null;
    return new RecordPrefix(Uint8Array.from([...strHeader(xid.length), ...ascii(xid), ...HEAD, ...strHeader(publicId.length), ...ascii(publicId), ...SEQ]));
  }

  /** The most bytes the record of a line of `text` takes (UTF-8 is at most 3 bytes per UTF-16 unit). */
  maxBytes(prefix: RecordPrefix, text: string): number {
    return prefix.length + FIXED_BYTES + strHeaderSize(text.length * 3) + text.length * 3;
  }

  /** The record of one line; null for arguments no honest context passes (its line then goes as an OutputItem, which the server refuses). */
  encode(prefix: RecordPrefix, level: number, text: string, truncated: boolean, ts: number): Uint8Array | null {
    if (typeof text !== 'string') return null;
    this.#reserve(this.maxBytes(prefix, text));
    const end = this.encodeInto(this.#buffer, this.#view, 0, prefix, level, text, truncated, ts);
    return end < 0 ? null : this.#buffer.subarray(0, end);
  }

  /**
   * Writes the record of one line at `at` of `out` (`view` over the same bytes, offsets alike),
   * which must have `maxBytes` of room there; returns where it ends, or -1 for arguments no honest
   * context passes (nothing is then to be published).
   */
  encodeInto(out: Buffer, view: DataView, at: number, prefix: RecordPrefix, level: number, text: string, truncated: boolean, ts: number): number {
    if (LEVELS[level] === undefined || typeof text !== 'string') return -1;
    // The text's header is sized for the bound (maxBytes), and is written exactly once the text's
    // real length is known.
    const textRoom = text.length * 3;
    const textHeader = strHeaderSize(textRoom);
    const head = prefix.head(level);
    out.set(head, at);
    const seqEnd = at + prefix.length + 4;
    view.setFloat64(seqEnd + TS_AFTER_SEQ, ts);
    if (truncated) out[seqEnd + PAIRS_AFTER_SEQ] = 0x83;
    at += head.length;
    if (text.length <= SHORT_TEXT && writeAscii(out, text, at + strHeaderSize(text.length))) {
      at = writeStrHeader(out, view, at, text.length, strHeaderSize(text.length)) + text.length;
    } else {
      const textBytes = out.write(text, at + textHeader, 'utf8');
      // Shorter than the bound: the smallest header for the real length, the text moved up to it.
      const header = strHeaderSize(textBytes);
      if (header !== textHeader) out.copyWithin(at + header, at + textHeader, at + textHeader + textBytes);
      at = writeStrHeader(out, view, at, textBytes, header) + textBytes;
    }
    if (truncated) {
      out.set(TRUNCATED, at);
      at += TRUNCATED.length;
    }
    return at;
  }

  #reserve(bytes: number): void {
    if (bytes <= this.#buffer.length) return;
    this.#buffer = Buffer.allocUnsafe(Math.max(bytes, this.#buffer.length * 2));
    this.#view = new DataView(this.#buffer.buffer, this.#buffer.byteOffset, this.#buffer.length);
  }
}

/** Lines up to this long are tried as ASCII first, copied by a loop: cheaper than a call into Buffer's UTF-8 writer. */
const SHORT_TEXT = 128;

/** Writes `text` at `at` when it is all ASCII (its bytes are then its UTF-16 units); false as soon as it is not. */
function writeAscii(out: Uint8Array, text: string, at: number): boolean {
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code >= 0x80) return false;
    out[at + index] = code;
  }
  return true;
}

/** Whether the record at `at` of `bytes` (a ring record, or a pipe frame's body) is a console record rather than an OutputItem array. */
export function isConsoleRecord(bytes: Uint8Array, at = 0): boolean {
  const tag = bytes[at]!;
  return (tag >= 0xa0 && tag <= 0xbf) || tag === 0xd9;
}

/**
 * A console record read off a pipe: bytes [start, end) of `bytes`, a copy its records share (one
 * typed array per record cost more than the record's check: pipe-frames.ts).
 */
export class RecordSpan {
  constructor(readonly bytes: Uint8Array, readonly start: number, readonly end: number) {}
}

/**
 * Bytes a record must hold exactly, with their big-endian uint32s (as many as they hold whole):
 * compared four at a time through a DataView (~2x a byte at a time), the last few one by one.
 */
class Pattern {
  readonly words: Uint32Array;

  constructor(readonly bytes: Uint8Array) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    this.words = new Uint32Array(bytes.length >> 2);
    for (let index = 0; index < this.words.length; index++) this.words[index] = view.getUint32(index * 4);
  }
}

/** From the seq slot's end to the ts's value. */
const TYPE_TS_PATTERN = new Pattern(TYPE_TS);

/**
 * What follows the ts up to the text's header, for each level (an index in LEVELS) and payload
 * (1: with `truncated`): the payload's key and map header, `level` and its value, the key `text`.
 * Each a whole pattern: a line's level is found by comparing one pattern, not key by key.
 */
const PAYLOADS = LEVELS.map((level) =>
  [0x82, 0x83].map((pairs) => new Pattern(Uint8Array.from([...PAYLOAD_KEY, pairs, ...LEVEL_KEY, ...level, ...TEXT_KEY]))));

/** The payload pattern last matched: a run's lines nearly always share it. */
let lastPayload = PAYLOADS[0]![0]!;

/**
 * The server's side: the record in bytes [start, end) of `record` as the console output it stands
 * for, its `frame` a view of the record's bytes with its seq slot at `seqAt`; null unless it is
 * exactly the template. Plain offsets, every read bounds-checked against `end` (-1 is "not the
 * template"): it runs once per printed line.
 */
export function readConsoleRecord(record: Uint8Array, start = 0, end = record.length): Extract<SandboxOutput, { kind: 'encoded' }> | null {
  const view = viewOf(record);
  const head = lastHead !== null && matchAt(record, view, end, start, lastHead.pattern) >= 0 ? lastHead : readHead(record, start, end);
  if (head === null) return null;
  const seqAt = start + head.pattern.bytes.length;
  const tsAt = matchAt(record, view, end, seqAt + 4, TYPE_TS_PATTERN);
  if (tsAt < 0 || tsAt + 8 > end) return null;
  const ts = view.getFloat64(tsAt);
  if (!Number.isFinite(ts)) return null;
  const textAt = matchPayload(record, view, end, tsAt + 8);
  const textStart = textAt < 0 ? -1 : strStart(record, end, textAt);
  if (textStart < 0) return null;
  const textEnd = textStart + strLength(record, textAt);
  if (textEnd > end || !isText(record, textStart, textEnd)) return null;
  const recordEnd = record[seqAt + 4 + PAIRS_AFTER_SEQ] === 0x83 ? expect(record, end, textEnd, TRUNCATED) : textEnd;
  if (recordEnd !== end) return null;
  const frameStart = start + head.frameStart;
  return { kind: 'encoded', executionId: head.executionId, ts, type: 'console', frame: record.subarray(frameStart, end), seqAt: seqAt - frameStart };
}

/** Offset past the payload pattern at `at` (the last one matched, else any), within `limit`; -1 when none is there. */
function matchPayload(bytes: Uint8Array, view: DataView, limit: number, at: number): number {
  const end = matchAt(bytes, view, limit, at, lastPayload);
  if (end >= 0) return end;
  for (const payloads of PAYLOADS) {
    for (const payload of payloads) {
      const other = matchAt(bytes, view, limit, at, payload);
      if (other < 0) continue;
      lastPayload = payload;
      return other;
    }
  }
  return -1;
}

/** Offset past `pattern` when it comes at `at` of `bytes` (`view` over the same bytes), within `limit`; -1 otherwise. */
function matchAt(bytes: Uint8Array, view: DataView, limit: number, at: number, pattern: Pattern): number {
  const { bytes: expected, words } = pattern;
  if (at < 0 || at + expected.length > limit) return -1;
  for (let index = 0; index < words.length; index++) if (view.getUint32(at + index * 4) !== words[index]) return -1;
  for (let index = words.length * 4; index < expected.length; index++) if (bytes[at + index] !== expected[index]) return -1;
  return at + expected.length;
}

/** A record's bytes up to its seq slot (xid, map header, op, execution_id, the key `seq`), checked. */
interface RecordHead {
  /** A copy (the record's own bytes may be a ring's, written again later). */
  pattern: Pattern;
  executionId: string;
  /** Where the frame starts, after the xid, from the record's start. */
  frameStart: number;
}

/**
 * The head last checked: a run's lines come in a row with the same head, so a record that starts
 * with exactly these bytes needs no other check of them (one compare instead of several passes).
 */
let lastHead: RecordHead | null = null;

/** Checks the head of the record at [start, end) against the template; null unless it is exactly that. */
function readHead(record: Uint8Array, start: number, end: number): RecordHead | null {
  const frameStart = idEnd(record, end, start);
  const xidStart = frameStart < 0 ? -1 : start + idHeader(record, start);
  const idAt = frameStart < 0 ? -1 : expect(record, end, frameStart, HEAD);
  const seqKey = idAt < 0 ? -1 : idEnd(record, end, idAt);
  if (seqKey < 0) return null;
  const publicStart = idAt + idHeader(record, idAt);
  // The frame's execution_id is the public form of the record's xid, byte for byte.
  const xidPublic = xidStart + publicOffset(record, xidStart, frameStart);
  if (seqKey - publicStart !== frameStart - xidPublic || !sameBytes(record, publicStart, record, xidPublic, seqKey - publicStart)) return null;
  const seqAt = expect(record, end, seqKey, SEQ);
  if (seqAt < 0) return null;
  let executionId = '';
  for (let index = xidStart; index < frameStart; index++) executionId += String.fromCharCode(record[index]!);
  lastHead = { pattern: new Pattern(Uint8Array.from(record.subarray(start, seqAt))), executionId, frameStart: frameStart - start };
  return lastHead;
}

/**
 * A DataView of `bytes`, kept while the records read are spans of the same run (pipe-frames.ts):
 * one per run, not one per line.
 */
let viewed: Uint8Array | null = null;
let lastView: DataView = new DataView(new ArrayBuffer(0));

function viewOf(bytes: Uint8Array): DataView {
  if (bytes !== viewed) {
    viewed = bytes;
    lastView = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  return lastView;
}

/** Bytes of the header of the id str at `at` (fixstr: 1, str8: 2). */
const idHeader = (bytes: Uint8Array, at: number) => (bytes[at] === 0xd9 ? 2 : 1);

/** Offset past a printable-ASCII id (fixstr or str8) at `at`, within `limit`; -1 when `at` holds none. */
function idEnd(bytes: Uint8Array, limit: number, at: number): number {
  const tag = bytes[at];
  if (at >= limit || tag === undefined || !(tag === 0xd9 || (tag >= 0xa0 && tag <= 0xbf)) || at + 2 > limit) return -1;
  const start = at + idHeader(bytes, at);
  const end = start + (tag === 0xd9 ? bytes[at + 1]! : tag & 0x1f);
  if (end > limit) return -1;
  for (let index = start; index < end; index++) if (bytes[index]! < 0x20 || bytes[index]! > 0x7e) return -1;
  return end;
}

/** Offset in the xid [start, end) of its public part (after the first '/'): publicIdOf's rule on bytes. */
function publicOffset(bytes: Uint8Array, start: number, end: number): number {
  for (let index = start; index < end; index++) if (bytes[index] === 0x2f) return index + 1 - start;
  return 0;
}

/** Offset past `pattern` when it comes at `at`, within `limit`; -1 otherwise. */
function expect(bytes: Uint8Array, limit: number, at: number, pattern: Uint8Array): number {
  if (at < 0 || at + pattern.length > limit) return -1;
  for (let index = 0; index < pattern.length; index++) if (bytes[at + index] !== pattern[index]) return -1;
  return at + pattern.length;
}

function sameBytes(a: Uint8Array, aAt: number, b: Uint8Array, bAt: number, length: number): boolean {
  for (let index = 0; index < length; index++) if (a[aAt + index] !== b[bAt + index]) return false;
  return true;
}

/** Where a str's bytes start (any of its four forms), within `limit`; -1 when `at` holds no str header. */
function strStart(bytes: Uint8Array, limit: number, at: number): number {
  const tag = at < limit ? bytes[at] : undefined;
  const start = tag === undefined ? -1 : tag >= 0xa0 && tag <= 0xbf ? at + 1 : tag === 0xd9 ? at + 2 : tag === 0xda ? at + 3 : tag === 0xdb ? at + 5 : -1;
  return start <= limit ? start : -1;
}

/** The length of the str whose header (checked by strStart) is at `at`. */
function strLength(bytes: Uint8Array, at: number): number {
  const tag = bytes[at]!;
  if (tag <= 0xbf) return tag & 0x1f;
  if (tag === 0xd9) return bytes[at + 1]!;
  if (tag === 0xda) return (bytes[at + 1]! << 8) | bytes[at + 2]!;
  return ((bytes[at + 1]! << 24) >>> 0) + ((bytes[at + 2]! << 16) | (bytes[at + 3]! << 8) | bytes[at + 4]!);
}

/** Whether bytes [start, end) are UTF-8: ASCII checked here (short lines), the rest natively. */
function isText(bytes: Uint8Array, start: number, end: number): boolean {
  let index = start;
  while (index < end && bytes[index]! < 0x80) index++;
  return index === end || isUtf8(bytes.subarray(index, end));
}

/** The id a client knows an execution by: its stored id without the tenant (sessions/live.ts's publicExecutionId). */
function publicIdOf(xid: string): string {
  return xid.slice(xid.indexOf('/') + 1);
}
