/**
 * Protocol v1.1 `events` frames: several events of one execution in one frame. The server builds
 * them from the stored `event` frames' bytes, without decoding them; clients turn them back into
 * `event` frames (`eventsOf`). Browser-safe: Uint8Array only.
 *
 * A stored event frame is the msgpack map {op: "event", execution_id, seq, type, ts, payload}, in
 * that key order (sessions/event-writer.ts encodes it so; msgpackr writes its header as a map16).
 * An item of an `events` frame is the same map without its first two pairs, so it is a 4-entry map
 * header followed by the frame's bytes from `seq` on: one copy, no decoding. A frame of another
 * layout is decoded and re-encoded instead.
 */
import { decodeValue, encodeFrame } from './codec.js';
import type { EventFrame, EventsFrame } from './types.js';

/**
 * Bounds of one `events` frame. 256 events take the per-frame cost (a WebSocket header, a send, a
 * client-side message dispatch) down to well under 1 % of an event's, and 64 KiB keeps one frame
 * within a few socket writes, so a batch never holds the socket's other executions back for long
 * and a client decodes it in well under a millisecond. An event larger than 64 KiB goes alone.
 */
export const BATCH_MAX_EVENTS = 256;
export const BATCH_MAX_BYTES = 64 * 1024;

const utf8 = new TextEncoder();
/** `op: "event", execution_id: ` — after the header of a map of 6 pairs: its first pair, the second key. */
const EVENT_PAIRS = Uint8Array.from([0xa2, ...utf8.encode('op'), 0xa5, ...utf8.encode('event'), 0xac, ...utf8.encode('execution_id')]);
/** `{op: "events", execution_id: ` — a fixmap of 3 pairs. */
const EVENTS_HEAD = Uint8Array.from([0x83, 0xa2, ...utf8.encode('op'), 0xa6, ...utf8.encode('events'), 0xac, ...utf8.encode('execution_id')]);
/** The key of the third pair, `events`. */
const EVENTS_KEY = Uint8Array.from([0xa6, ...utf8.encode('events')]);
const ITEM_HEAD = 0x84;

/** Where frames[start..end) ends when cut to the bounds: at least one frame, whatever its size. */
export function batchEnd(frames: readonly Uint8Array[], start: number): number {
  const limit = Math.min(frames.length, start + BATCH_MAX_EVENTS);
  let bytes = frames[start]!.length;
  let end = start + 1;
  while (end < limit && bytes + frames[end]!.length <= BATCH_MAX_BYTES) bytes += frames[end++]!.length;
  return end;
}

/**
 * The `events` frame of frames[start..end): stored `event` frames of one execution, in seq order.
 * The caller keeps the run within the bounds (batchEnd).
 */
export function encodeEvents(frames: readonly Uint8Array[], start: number, end: number): Uint8Array {
  const idEnd = executionIdEnd(frames[start]!);
  if (idEnd < 0) return encodeDecoded(frames, start, end);
  // Where the id's string starts: after the map header (1 or 3 bytes) and the pairs before it.
  const idStart = (frames[start]![0] === 0x86 ? 1 : 3) + EVENT_PAIRS.length;
  let size = EVENTS_HEAD.length + (idEnd - idStart) + EVENTS_KEY.length + arrayHeaderSize(end - start);
  for (let index = start; index < end; index++) {
    const frame = frames[index]!;
    // Every frame of the run must have the first's layout (a run is one execution's: the same id).
    if (executionIdEnd(frame) !== idEnd) return encodeDecoded(frames, start, end);
    size += 1 + frame.length - idEnd;
  }
  const out = new Uint8Array(size);
  // Items from the last back: each frame is copied whole so that its tail lands in place (a
  // subarray per frame cost more than the copy), its first idEnd bytes landing where the item
  // before it and the head go, which are written after it. The head is longer than idEnd.
  let at = size;
  for (let index = end - 1; index >= start; index--) {
    const frame = frames[index]!;
    at -= frame.length - idEnd;
    out.set(frame, at - idEnd);
    out[--at] = ITEM_HEAD;
  }
  out.set(EVENTS_HEAD, 0);
  let head = EVENTS_HEAD.length;
  out.set(frames[start]!.subarray(idStart, idEnd), head);
  head += idEnd - idStart;
  out.set(EVENTS_KEY, head);
  head += EVENTS_KEY.length;
  writeArrayHeader(out, head, end - start);
  return out;
}

/** The `event` frames an `events` frame carries, as if they had come one by one. */
export function eventsOf(frame: EventsFrame): EventFrame[] {
  const { execution_id } = frame;
  return frame.events.map((event) => ({ op: 'event', execution_id, ...event }) as EventFrame);
}

/** Offset just past the execution id's string when `frame` starts as an encoded event frame; -1 otherwise. */
function executionIdEnd(frame: Uint8Array): number {
  // A map of 6 pairs: fixmap, or map16 (what msgpackr writes).
  const start = frame[0] === 0x86 ? 1 : frame[0] === 0xde && frame[1] === 0 && frame[2] === 6 ? 3 : -1;
  if (start < 0) return -1;
  const head = start + EVENT_PAIRS.length;
  if (frame.length <= head) return -1;
  for (let index = 0; index < EVENT_PAIRS.length; index++) if (frame[start + index] !== EVENT_PAIRS[index]) return -1;
  const tag = frame[head]!;
  let end: number;
  if (tag >= 0xa0 && tag <= 0xbf) end = head + 1 + (tag & 0x1f);
  else if (tag === 0xd9) end = head + 2 + frame[head + 1]!;
  else if (tag === 0xda) end = head + 3 + ((frame[head + 1]! << 8) | frame[head + 2]!);
  else return -1;
  return end < frame.length ? end : -1;
}

function arrayHeaderSize(count: number): number {
  return count < 16 ? 1 : count < 0x10000 ? 3 : 5;
}

function writeArrayHeader(out: Uint8Array, at: number, count: number): number {
  if (count < 16) {
    out[at] = 0x90 | count;
    return at + 1;
  }
  if (count < 0x10000) {
    out[at] = 0xdc;
    out[at + 1] = count >> 8;
    out[at + 2] = count & 0xff;
    return at + 3;
  }
  out[at] = 0xdd;
  new DataView(out.buffer, out.byteOffset + at + 1, 4).setUint32(0, count);
  return at + 5;
}

/** The slow path, for frames of another layout: decoded and encoded again. */
function encodeDecoded(frames: readonly Uint8Array[], start: number, end: number): Uint8Array {
  const decoded = frames.slice(start, end).map((frame) => decodeValue(frame) as EventFrame);
  const events = decoded.map(({ op: _op, execution_id: _id, ...event }) => event);
  return encodeFrame({ op: 'events', execution_id: decoded[0]!.execution_id, events });
}
