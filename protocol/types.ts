/**
 * Protocol v1 as TypeScript types, shared by the server and the client. protocol/README.md is the
 * written contract; protocol/schemas.ts holds the runtime validators built from the same shapes.
 */
import type { ErrorCode } from './errors.js';

export const PROTOCOL_VERSION = 1;
/**
 * The revision of v1 this code speaks, announced in `pong`. 1.1 added `batch` (on `execute` and
 * `subscribe`) and the `events` frame; a 1.0 server ignores `batch` and sends `event` frames.
 */
export const PROTOCOL_REVISION = '1.1';
export const WS_PATH = '/v1/ws';
/** MCP over Streamable HTTP (protocol/MCP.md). */
export const MCP_PATH = '/mcp';

export type RequestId = string | number;

export type SessionStatus = 'ready' | 'closed';

export interface SessionRecord {
  session_id: string;
  /** The tenant whose token created it; nobody else can see or use it. */
  tenant: string;
  name: string;
  status: SessionStatus;
  created_at: number;
  closed_at?: number;
  /** How many executions the session has been given; the next one gets `execution_count + 1` as its `number`. */
  execution_count: number;
  /**
   * Set when the session's context was reset (a Jupyter kernel restart): executions numbered below
   * it are not replayed when the context is rebuilt.
   */
  replay_from?: number;
}

export type ExecutionKind = 'repl' | 'run-file';

export const TERMINAL_STATUSES = ['ok', 'error', 'timeout', 'cancelled', 'crashed'] as const;
export type TerminalStatus = (typeof TERMINAL_STATUSES)[number];
export type ExecutionStatus = 'queued' | 'running' | TerminalStatus;

export interface ExecutionRecord {
  execution_id: string;
  session_id: string;
  /** 1-based position in its session, like a notebook's In [n]; executions of a session run in this order. */
  number: number;
  kind: ExecutionKind;
  status: ExecutionStatus;
  created_at: number;
  started_at?: number;
  ended_at?: number;
  last_seq: number;
  timeout_ms: number;
  /** The input: `code` for a repl execution, `path` for run-file. */
  code?: string;
  path?: string;
  /** The `filename` a repl execution was given, when it was given one. */
  filename?: string;
  /** Why a terminal status other than `ok` happened, in a word (`timeout`, `out_of_memory`, `server_restart`…; protocol/README.md lists them). */
  reason?: string;
}

export type ConsoleLevel = 'log' | 'info' | 'warn' | 'error' | 'debug';

/**
 * What a structured preview says a value is (protocol/README.md, "Structured previews"). A client
 * renders an unknown kind from `text`, or as an object when it has `props`.
 */
export type PreviewKind =
  | 'undefined' | 'null' | 'boolean' | 'number' | 'bigint' | 'string' | 'symbol'
  | 'function' | 'class' | 'object' | 'array' | 'map' | 'set' | 'error' | 'date' | 'regexp'
  | 'promise' | 'proxy' | 'typedarray' | 'arraybuffer' | 'weakmap' | 'weakset' | 'boxed'
  | 'accessor' | 'circular';

/**
 * A value as data, built inside the sandbox: a bounded tree of kinds, keys and leaf texts. A node
 * of kind object, array, map, set, typedarray or error without `props`, `entries` or `items` was
 * not walked (a depth or size bound); `more` counts the children left out of one that was.
 */
export interface PreviewNode {
  kind: PreviewKind;
  /**
   * A leaf's text: a primitive as the REPL shows it (strings unquoted), the name of a function or
   * class, a date's ISO time, a regexp as `/source/flags`, an error's `Name: message`, an accessor's
   * `Getter`, `Setter` or `Getter/Setter`, a boxed primitive's value.
   */
  text?: string;
  /** A string's full length, when `text` holds only its beginning. */
  length?: number;
  /** The constructor's name where it says more than the kind (class instances, subclasses of Array, Map and Set, typed arrays, errors); null for a null prototype. */
  class?: string | null;
  /** Array or typed array length, Map or Set size, ArrayBuffer byte length. */
  size?: number;
  /** Own enumerable properties in order, as [key, value]; array items under their index (holes left out); symbol keys as `[Symbol(…)]`. */
  props?: Array<[string, PreviewNode]>;
  /** A Map's entries, as [key, value]. */
  entries?: Array<[PreviewNode, PreviewNode]>;
  /** A Set's members. */
  items?: PreviewNode[];
  /** Children left out by the width or size bounds. */
  more?: number;
  /** An error's stack frames (`    at …` lines, without the server's own). */
  frames?: string[];
}

/** `console.table`: a header and rows of leaf previews; `null` where a row has no such column. */
export interface ConsoleTable {
  /** The first is `(index)`; `Values` (last) holds rows that are not objects. */
  columns: string[];
  rows: Array<Array<PreviewNode | null>>;
  /** Rows left out after the first ones. */
  more?: number;
}

export interface ConsolePayload {
  level: ConsoleLevel;
  text: string;
  truncated?: boolean;
  /** Present when an argument is an object or function: the line's parts as previews (see protocol/README.md). */
  data?: PreviewNode[];
  /** Present for `console.table` of an object or array. */
  table?: ConsoleTable;
}
export interface ValuePayload {
  type: string;
  preview: string;
  /** Present when the value is an object or function. */
  data?: PreviewNode;
}
export interface ExceptionPayload { name: string; message: string; stack: string }
/** What a stopped or lost run left of its session's context (protocol/README.md, `done`). */
export type SessionState = 'kept' | 'rebuilt';
export interface DonePayload { status: TerminalStatus; duration_ms: number; reason?: string; session?: SessionState }
/** A rebuild of the session's context is under way: `replayed` of `inputs` earlier inputs re-run so far. */
export interface SessionRestoringPayload { session_id: string; inputs: number; replayed: number }
export interface SessionRestoredPayload { session_id: string; replayed: number }
export interface SessionLostPayload { session_id: string; reason: string }

export interface EventPayloads {
  console: ConsolePayload;
  value: ValuePayload;
  exception: ExceptionPayload;
  'session.restoring': SessionRestoringPayload;
  'session.restored': SessionRestoredPayload;
  'session.lost': SessionLostPayload;
  done: DonePayload;
}
export type EventType = keyof EventPayloads;

/**
 * An event frame. `EventFrame` (no argument) is the union of one frame type per event type, so
 * checking `type` narrows `payload`: `if (event.type === 'value') event.payload.preview`.
 */
export type EventFrame<T extends EventType = EventType> = { [K in T]: EventFrameOf<K> }[T];

/** The frame of one event type (what `EventFrame<K>` is for a single `K`). */
export interface EventFrameOf<K extends EventType> {
  op: 'event';
  execution_id: string;
  seq: number;
  type: K;
  ts: number;
  payload: EventPayloads[K];
}

/** One event inside an `events` frame: an event frame without `op` and `execution_id`. */
export type BatchedEvent = EventFrame extends infer F ? (F extends EventFrame ? Omit<F, 'op' | 'execution_id'> : never) : never;

/**
 * v1.1: the events of one execution committed together, in seq order, contiguous with the frames
 * before and after it (protocol/README.md, `events`).
 */
export interface EventsFrame {
  op: 'events';
  execution_id: string;
  events: BatchedEvent[];
}

// Client → server requests.
interface RequestBase { id?: RequestId }
export interface SessionCreateRequest extends RequestBase { op: 'session.create'; name?: string }
export interface SessionListRequest extends RequestBase { op: 'session.list' }
export interface SessionCloseRequest extends RequestBase { op: 'session.close'; session_id: string }
export interface SessionRenameRequest extends RequestBase { op: 'session.rename'; session_id: string; name: string }
export interface ExecuteRequest extends RequestBase {
  op: 'execute';
  session_id: string;
  kind: ExecutionKind;
  code?: string;
  path?: string;
  timeout_ms?: number;
  execution_id?: string;
  /** repl only: the name stack traces give the code (`REPL<number>` by default); run-file code is named by its path. */
  filename?: string;
  /** v1.1: this socket gets the execution's events as `events` frames. */
  batch?: boolean;
}
export interface SubscribeRequest extends RequestBase {
  op: 'subscribe';
  execution_id: string;
  after_seq?: number;
  /** v1.1: the events come as `events` frames. */
  batch?: boolean;
}
export interface UnsubscribeRequest extends RequestBase { op: 'unsubscribe'; execution_id: string }
export interface CancelRequest extends RequestBase { op: 'cancel'; execution_id: string }
export interface ExecutionGetRequest extends RequestBase { op: 'execution.get'; execution_id: string }
export interface ExecutionListRequest extends RequestBase { op: 'execution.list'; session_id: string; limit?: number }
export interface CompleteRequest extends RequestBase { op: 'complete'; session_id: string; code: string; cursor: number }
export interface PingRequest extends RequestBase { op: 'ping' }

export type ClientRequest =
  | SessionCreateRequest
  | SessionListRequest
  | SessionCloseRequest
  | SessionRenameRequest
  | ExecuteRequest
  | SubscribeRequest
  | UnsubscribeRequest
  | CancelRequest
  | ExecutionGetRequest
  | ExecutionListRequest
  | CompleteRequest
  | PingRequest;

export type ClientOp = ClientRequest['op'];

// Server → client replies.
interface ReplyBase { id?: RequestId }
export interface SessionReply extends ReplyBase { op: 'session'; session: SessionRecord }
export interface SessionsReply extends ReplyBase { op: 'sessions'; items: SessionRecord[] }
export interface ExecutionReply extends ReplyBase { op: 'execution'; execution: ExecutionRecord }
export interface ExecutionsReply extends ReplyBase { op: 'executions'; items: ExecutionRecord[] }
export interface SubscribedReply extends ReplyBase { op: 'subscribed'; execution_id: string; last_seq: number }
export interface UnsubscribedReply extends ReplyBase { op: 'unsubscribed'; execution_id: string }
export interface CompletionReply extends ReplyBase { op: 'completion'; matches: string[]; start: number; end: number }
export interface PongReply extends ReplyBase {
  op: 'pong';
  /** The protocol revision the server speaks (`"1.1"`); absent from a 1.0 server. */
  version?: string;
}
export interface ErrorFrame extends ReplyBase {
  op: 'error';
  code: ErrorCode;
  message: string;
  /** The execution whose subscription ended with this error (LOG_DELETED, LOG_UNREADABLE, LOG_REFUSED); absent in a request's reply. */
  execution_id?: string;
}

export type ServerFrame =
  | SessionReply
  | SessionsReply
  | ExecutionReply
  | ExecutionsReply
  | SubscribedReply
  | UnsubscribedReply
  | CompletionReply
  | PongReply
  | ErrorFrame
  | EventFrame
  | EventsFrame;
