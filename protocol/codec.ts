/**
 * msgpack framing for both directions, and the one place its settings live: the server, the SDK
 * (also in browsers, so nothing here may need Node), the bench and the tests all encode and decode
 * through it. Plain msgpack maps (no msgpackr record extension, which other clients could not
 * read), so any msgpack library can speak to us.
 */
import { Packr } from 'msgpackr';
import { ProtocolError } from './errors.js';

const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });

/** One frame's bytes (a Buffer under Node, which is a Uint8Array). */
export function encodeFrame(frame: object): Uint8Array {
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

/**
 * Decodes bytes this protocol wrote (a stored event, a server frame) without checking their shape;
 * a browser's WebSocket hands them over as an ArrayBuffer.
 */
export function decodeValue(bytes: Uint8Array | ArrayBuffer): unknown {
  return packr.unpack(bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes);
}
