/**
 * `vmstream/client`: the SDK, for Node (20+, over `ws`) and browsers (over their WebSocket).
 * Every export is named here, so the public surface is this one list.
 */
export { Client } from './client.js';
export type { Completion, ExecuteOptions, ExecuteSource, SessionRef, StartOptions, SubscribeOptions } from './client.js';
export { Execution } from './execution.js';
export type { RunCodeOptions, RunCodeResult } from './run-code.js';
export type { Status, StatusType } from './status.js';
export { CLIENT_DEFAULTS } from './options.js';
export type { ClientOptions } from './options.js';
export { resolveTarget } from './socket.js';
export type { Target, WebSocketConstructor, WebSocketLike } from './socket.js';
export {
  AbortError,
  CLIENT_ERROR_CODES,
  ClientClosedError,
  ConnectionError,
  RequestTimeoutError,
  ServerError,
  VmstreamError,
} from './errors.js';
export type { ClientErrorCode, ConnectionErrorCode, VmstreamErrorCode } from './errors.js';
export { ERROR_CODES } from '../../protocol/errors.js';
export type { ErrorCode } from '../../protocol/errors.js';
export { PROTOCOL_VERSION, TERMINAL_STATUSES, WS_PATH } from '../../protocol/types.js';
export type {
  ConsoleLevel,
  ConsolePayload,
  ConsoleTable,
  DonePayload,
  ErrorFrame,
  EventFrame,
  EventFrameOf,
  EventPayloads,
  EventType,
  ExceptionPayload,
  ExecutionKind,
  ExecutionRecord,
  ExecutionStatus,
  PreviewKind,
  PreviewNode,
  RequestId,
  SessionLostPayload,
  SessionRecord,
  SessionRestoredPayload,
  SessionRestoringPayload,
  SessionState,
  SessionStatus,
  TerminalStatus,
  ValuePayload,
} from '../../protocol/types.js';
