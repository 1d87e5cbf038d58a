/**
 * Records as KV values.
 *
 * Execution records: a record carries its code, which may be as large as a client
 * frame (1 MiB): more than nats-server takes in one message by default (max_payload 1 MiB, headers
 * included). Code past CODE_INLINE_BYTES is kept beside the record, in parts under a `code` bucket
 * key named after its hash, and the record holds a reference; identical code gives identical keys,
 * so racing creates and repeated puts of one record never overwrite each other's parts.
 *
 * Session records are stored with their writer (one store instance: one node's run), so that a
 * write refused for its expected revision can tell this instance's own earlier write, landed without
 * its ack, from another writer's (jetstream-store.ts: #putSession).
 */
import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import { Packr } from 'msgpackr';
import type { ExecutionRecord, SessionRecord } from '../../../protocol/types.js';
import { encodeId } from './names.js';

const CODE_INLINE_BYTES = 256 * 1024;
const packr = new Packr({ useRecords: false });

/** How a stored record refers to code kept beside it. */
interface CodeRef {
  hash: string;
  parts: number;
}

type StoredRecord = Omit<ExecutionRecord, 'code'> & { code?: string; code_ref?: CodeRef };

export class RecordCodec {
  readonly #code: KV;

  constructor(code: KV) {
    this.#code = code;
  }

  /** The KV value of a record, its large code written beside it first. */
  async pack(record: ExecutionRecord): Promise<Uint8Array> {
    const bytes = Buffer.from(record.code ?? '', 'utf8');
    if (bytes.length <= CODE_INLINE_BYTES) return packr.pack(record);
    const hash = createHash('sha256').update(bytes).digest('base64url').slice(0, 22);
    const parts = Math.ceil(bytes.length / CODE_INLINE_BYTES);
    await Promise.all(
      Array.from({ length: parts }, (_, i) => this.#code.put(partKey(record, hash, i), bytes.subarray(i * CODE_INLINE_BYTES, (i + 1) * CODE_INLINE_BYTES))),
    );
    const { code: _code, ...rest } = record;
    return packr.pack({ ...rest, code_ref: { hash, parts } } satisfies StoredRecord);
  }

  async unpack(value: Uint8Array): Promise<ExecutionRecord> {
    const stored = packr.unpack(value) as StoredRecord;
    if (!stored.code_ref) return stored as ExecutionRecord;
    const { code_ref: ref, ...rest } = stored;
    const parts = await Promise.all(Array.from({ length: ref.parts }, (_, i) => this.#code.get(partKey(stored, ref.hash, i))));
    const code = Buffer.concat(parts.map((entry) => entry?.value ?? new Uint8Array(0))).toString('utf8');
    return { ...rest, code } as ExecutionRecord;
  }

  /** Deletes the code kept beside a stored record, if any. */
  async deleteCode(value: Uint8Array): Promise<void> {
    const stored = packr.unpack(value) as StoredRecord;
    const ref = stored.code_ref;
    if (!ref) return;
    await Promise.all(Array.from({ length: ref.parts }, (_, i) => this.#code.delete(partKey(stored, ref.hash, i))));
  }
}

function partKey(record: { execution_id: string }, hash: string, part: number): string {
  return `${encodeId(record.execution_id)}.${hash}.${part}`;
}

/** A session record as stored: the record, and the store instance that wrote it. */
export interface StoredSession {
  record: SessionRecord;
  writer: string;
}

export function packSession(record: SessionRecord, writer: string): Uint8Array {
  return packr.pack({ record, writer } satisfies StoredSession);
}

export function unpackSession(value: Uint8Array): StoredSession {
  return packr.unpack(value) as StoredSession;
}
