/**
 * The frames every baseline moves: plain msgpack maps shaped like protocol v1's `event` frame, so the
 * ceilings are measured on the bytes and the decode work the real server will have.
 */
import { encodeFrame } from '../../protocol/codec.js';

/** Short id and text keep the encoded frame near the ~90 bytes shared/README measured with. */
export const EXECUTION_ID = 'ex_7Kp2';
const TEXT = 'hi';

export interface BenchEventFrame {
  op: 'event';
  execution_id: string;
  seq: number;
  type: 'console';
  ts: number;
  payload: { level: 'log'; text: string };
}

export function eventFrame(seq: number, ts: number): BenchEventFrame {
  return { op: 'event', execution_id: EXECUTION_ID, seq, type: 'console', ts, payload: { level: 'log', text: TEXT } };
}

export function encodedEventSize(): number {
  return encodeFrame(eventFrame(1_000_000, Date.now())).length;
}
