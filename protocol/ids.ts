/**
 * The ids vmstream makes up: execution ids (the server, for an `execute` without one; the SDK, the
 * CLI and the web console, for the idempotent executes they send) and session ids (the server).
 * Browser-safe: `crypto.getRandomValues` only, which Node 20 and every browser have, secure
 * context or not.
 *
 * 15 characters of A-Z a-z 0-9: 62^15 ≈ 2^89.3 ids. Short, because every event frame carries its
 * execution_id: an id under 32 bytes is a msgpack fixstr, which msgpackr decodes in JavaScript in a
 * frame under 140 bytes (under 16 characters without even a call into Buffer), where a 36-character
 * UUID is a str8 it hands to a native call (bench/units/id-decode.ts, bench
 * README "Short ids"). Alphanumeric, because ids go on command lines (`vmstream tail ID`: one that
 * began with `-` would read as an option), in URLs and through double-click selection. Unique
 * enough: among n ids two collide with probability about n² / 2^90.3, 6.5·10⁻¹⁰ for a billion
 * (protocol/README.md "Ids").
 */

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const NEW_ID_LENGTH = 15;
/** Bytes from here up are redrawn: 248 = 4 × 62, so `byte % 62` takes every character alike. */
const UNBIASED_BELOW = 256 - (256 % ALPHABET.length);

/**
 * Random bytes drawn a batch at a time, as Node's randomUUID caches its own: one getRandomValues
 * call per id costs ~3.4 µs of CPU against ~0.5 µs for an id from this batch (measured on Node 20).
 */
const pool = new Uint8Array(256);
let next = pool.length;

function randomByte(): number {
  if (next === pool.length) {
    globalThis.crypto.getRandomValues(pool);
    next = 0;
  }
  return pool[next++]!;
}

/** A new random id: NEW_ID_LENGTH characters of A-Z a-z 0-9, each from a crypto-random byte. */
export function newId(): string {
  let id = '';
  while (id.length < NEW_ID_LENGTH) {
    const byte = randomByte();
    if (byte < UNBIASED_BELOW) id += ALPHABET[byte % ALPHABET.length];
  }
  return id;
}

/**
 * A new session id: a new id in five groups of three joined by `-` (19 characters). A session is
 * also a Jupyter kernel under the same id, and Jupyter servers that front vmstream as a gateway
 * (Notebook 6, jupyter_server) route only kernel ids of a UUID's shape, `\w+-\w+-\w+-\w+-\w+`.
 * Session ids are not in every event frame as execution ids are: the 4 characters cost no decode.
 */
export function newSessionId(): string {
  return newId().replace(/(...)(?!$)/g, '$1-');
}
