/**
 * msgpack framing for both directions. One Packr for the process: plain msgpack maps (no msgpackr
 * record extension, which other clients could not read), so any msgpack library can speak to us.
 */
import { Packr } from 'msgpackr';
import { ProtocolError } from '../../protocol/errors.js';

const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });

export function encodeFrame(frame: object): Buffer {
  return packr.pack(frame);
}

/**
 * Decodes one client frame into a map with a string `op`. Every way it can fail (truncated bytes,
 * trailing bytes, nesting deep enough to overflow the decoder's stack, a non-map) is a BAD_FRAME.
 */
export function decodeFrame(bytes: Uint8Array): { op: string } & Record<string, unknown> {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (error) {
    throw new ProtocolError('BAD_FRAME', `frame is not valid msgpack: ${(error as Error).message}`, { cause: error });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array || value instanceof Date) {
    throw new ProtocolError('BAD_FRAME', 'frame must be a msgpack map');
  }
  const op = (value as { op?: unknown }).op;
  if (typeof op !== 'string') throw new ProtocolError('BAD_FRAME', 'frame must carry a string `op`');
  return value as { op: string } & Record<string, unknown>;
}

export function decodeStored(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}
