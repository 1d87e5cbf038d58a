/**
 * Jupyter messages (protocol 5.3) and their two WebSocket encodings: JSON text frames, and the
 * `v1.kernel.websocket.jupyter.org` binary framing. Also the execution_id a Jupyter execute gets:
 * it carries the request's msg_id, its client session and its flags, so that every message derived
 * from the execution's stored events can name its parent again after a restart — the execution_id
 * is durable and makes a repeated request idempotent, so nothing else needs storing.
 */
import { randomUUID } from 'node:crypto';

export const PROTOCOL_VERSION = '5.3';
export const V1_SUBPROTOCOL = 'v1.kernel.websocket.jupyter.org';

export type Channel = 'shell' | 'control' | 'iopub' | 'stdin';

export interface Header {
  msg_id: string;
  msg_type: string;
  session: string;
  username: string;
  date: string;
  version: string;
}

export interface Message {
  channel: Channel;
  header: Header;
  parent_header: Header | Record<string, never>;
  metadata: Record<string, unknown>;
  content: Record<string, unknown>;
  buffers?: unknown[];
}

/** Who the kernel says it is in every header it writes. */
export interface KernelIdentity {
  /** The kernel's own session: its id, the same before and after a server restart. */
  session: string;
}

export function makeMessage(
  kernel: KernelIdentity,
  channel: Channel,
  msgType: string,
  content: Record<string, unknown>,
  parent: Header | null,
  ids: { msgId?: string; date?: number } = {},
): Message {
  return {
    channel,
    header: {
      msg_id: ids.msgId ?? randomUUID(),
      msg_type: msgType,
      session: kernel.session,
      username: 'vmstream',
      date: new Date(ids.date ?? Date.now()).toISOString(),
      version: PROTOCOL_VERSION,
    },
    parent_header: parent ?? {},
    metadata: {},
    content,
  };
}

/** A client message, checked for the shape every handler relies on; null when it is not one. */
export function parseMessage(data: Uint8Array, isBinary: boolean, binaryFraming: boolean): Message | null {
  let message: unknown;
  try {
    message = binaryFraming && isBinary ? decodeV1(data) : isBinary ? null : JSON.parse(Buffer.from(data).toString('utf8'));
  } catch {
    return null;
  }
  if (!isObject(message) || !isObject(message.header) || !isObject(message.content)) return null;
  const header = message.header as Record<string, unknown>;
  if (typeof header.msg_id !== 'string' || typeof header.msg_type !== 'string') return null;
  const channel = message.channel;
  if (channel !== 'shell' && channel !== 'control' && channel !== 'stdin' && channel !== 'iopub') return null;
  return {
    channel,
    header: {
      msg_id: header.msg_id,
      msg_type: header.msg_type,
      session: typeof header.session === 'string' ? header.session : '',
      username: typeof header.username === 'string' ? header.username : '',
      date: typeof header.date === 'string' ? header.date : new Date().toISOString(),
      version: typeof header.version === 'string' ? header.version : PROTOCOL_VERSION,
    },
    parent_header: isObject(message.parent_header) ? (message.parent_header as unknown as Header) : {},
    metadata: isObject(message.metadata) ? (message.metadata as Record<string, unknown>) : {},
    content: message.content as Record<string, unknown>,
  };
}

/** The frame a message becomes on a socket that speaks JSON, or the v1 binary framing. */
export function encodeMessage(message: Message, binaryFraming: boolean): string | Uint8Array {
  if (!binaryFraming) return JSON.stringify({ ...message, buffers: [] });
  const { channel, header, parent_header, metadata, content } = message;
  return encodeV1(channel, [header, parent_header, metadata, content].map((part) => Buffer.from(JSON.stringify(part), 'utf8')));
}

/**
 * v1 framing: a little-endian uint64 count of offsets, the offsets (uint64 each), then the channel
 * name, header, parent header, metadata, content and any buffers; offset i is where part i starts,
 * the last one where the last part ends.
 */
function encodeV1(channel: string, parts: Buffer[]): Uint8Array {
  const all = [Buffer.from(channel, 'utf8'), ...parts];
  const offsetCount = all.length + 1;
  const table = Buffer.alloc(8 * (offsetCount + 1));
  table.writeBigUInt64LE(BigInt(offsetCount), 0);
  let offset = table.length;
  for (let index = 0; index < all.length; index++) {
    table.writeBigUInt64LE(BigInt(offset), 8 * (index + 1));
    offset += all[index]!.length;
  }
  table.writeBigUInt64LE(BigInt(offset), 8 * offsetCount);
  return Buffer.concat([table, ...all]);
}

function decodeV1(data: Uint8Array): unknown {
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const count = Number(view.readBigUInt64LE(0));
  if (count < 6 || 8 * (count + 1) > view.length) throw new Error('bad offset table');
  const offsets: number[] = [];
  for (let index = 0; index < count; index++) offsets.push(Number(view.readBigUInt64LE(8 * (index + 1))));
  const part = (index: number) => view.subarray(offsets[index], offsets[index + 1]).toString('utf8');
  return {
    channel: part(0),
    header: JSON.parse(part(1)),
    parent_header: JSON.parse(part(2)),
    metadata: JSON.parse(part(3)),
    content: JSON.parse(part(4)),
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** What an execute_request asked for, beyond its code. */
export interface ExecuteFlags {
  silent: boolean;
  storeHistory: boolean;
  stopOnError: boolean;
}

/** The parts of an execute_request that its derived messages need. */
export interface ExecuteOrigin {
  msgId: string;
  /** The client session that sent it: only that session gets its execute_reply. */
  session: string;
  flags: ExecuteFlags;
}

/** Longest execution_id the protocol accepts (protocol/schemas.ts ID_PATTERN). */
const MAX_EXECUTION_ID = 128;
const ORIGIN_PATTERN = /^j([0-7])\.([A-Za-z0-9_-]*)\.([A-Za-z0-9_-]*)$/;

/**
 * `j<flags>.<msg_id>.<session>`, both base64url: 100 characters for the UUIDs JupyterLab and VS
 * Code use. When that is too long, the session is left out (its reply then goes to whichever client
 * of the kernel is connected), and past that the msg_id is shortened to a hash: such a client still
 * gets its messages while the server runs, since the kernel keeps the origins it created in memory.
 */
export function executionIdFor(origin: ExecuteOrigin): { executionId: string; exact: boolean } {
  const flags = (origin.flags.silent ? 1 : 0) | (origin.flags.storeHistory ? 2 : 0) | (origin.flags.stopOnError ? 4 : 0);
  const msgId = Buffer.from(origin.msgId, 'utf8').toString('base64url');
  const full = `j${flags}.${msgId}.${Buffer.from(origin.session, 'utf8').toString('base64url')}`;
  if (full.length <= MAX_EXECUTION_ID) return { executionId: full, exact: true };
  const noSession = `j${flags}.${msgId}.`;
  if (noSession.length <= MAX_EXECUTION_ID) return { executionId: noSession, exact: false };
  return { executionId: `j${flags}.h${randomUUID().replaceAll('-', '')}.`, exact: false };
}

/** The origin an execution_id carries; null for an execution a native client started. */
export function originOf(executionId: string): ExecuteOrigin | null {
  const match = ORIGIN_PATTERN.exec(executionId);
  if (!match) return null;
  const flags = Number(match[1]);
  return {
    msgId: Buffer.from(match[2]!, 'base64url').toString('utf8'),
    session: Buffer.from(match[3]!, 'base64url').toString('utf8'),
    flags: { silent: (flags & 1) !== 0, storeHistory: (flags & 2) !== 0, stopOnError: (flags & 4) !== 0 },
  };
}
