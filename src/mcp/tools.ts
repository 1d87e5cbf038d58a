/**
 * The MCP tools' handlers (definitions.ts says what the tools are), each a thin call into
 * ExecutionService as one tenant. Every result carries its object in `structuredContent` (checked
 * against the tool's output schema); `run_code` answers with exactly one text block, the others
 * with the object's JSON, as the MCP spec recommends for clients that read only text.
 */
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { CallToolResult, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import { ProtocolError } from '../../protocol/errors.js';
import { EVENTS_LIMIT_MAX } from '../../protocol/http.js';
import type { EventFrame, ExecutionRecord } from '../../protocol/types.js';
import { decodeValue } from '../../protocol/codec.js';
import type { ExecuteInput, ExecutionService } from '../sessions/service.js';
import { TOOLS, type ToolArgs, type ToolName, type ToolResult } from './definitions.js';
import { ExecutionFollower } from './follow.js';
import { Progress } from './progress.js';

/** What a tool call reports, for logs and metrics. */
export interface McpCall {
  tenant: string;
  tool: string;
  outcome: 'ok' | 'error';
  ms: number;
}

export interface ToolContext {
  service: ExecutionService;
  tenant: string;
  onCall(call: McpCall): void;
  onInternalError(error: unknown): void;
  /** Aborts, with a ProtocolError as its reason, when the tenant's token is revoked. */
  revoked: AbortSignal;
}

/** The name given to sessions that run_code opens when no session_id is given. */
export const MCP_SESSION_NAME = 'mcp';

type Handlers = { [Name in ToolName]: (args: ToolArgs<Name>, extra: Extra) => Promise<CallToolResult> };

export function registerTools(server: McpServer, context: ToolContext): void {
  const { service, tenant } = context;
  const handlers: Handlers = {
    create_session: structured(async ({ name }) => ({ session_id: (await service.createSession(tenant, name)).session_id })),
    list_sessions: structured(async () => ({
      sessions: service.listSessions(tenant).map(({ session_id, name, status }) => ({ session_id, name, status })),
    })),
    close_session: structured(async ({ session_id }) => {
      const record = await service.closeSession(tenant, session_id);
      return { session_id: record.session_id, status: record.status };
    }),
    run_code: (args, extra) => runCode(context, args, extra),
    read_output: structured(async ({ execution_id, after_seq = 0, limit = EVENTS_LIMIT_MAX }) => {
      const page = await service.readEvents(tenant, execution_id, after_seq, limit);
      const events = page.events.map((stored) => {
        const { seq, type, payload } = decodeValue(stored.frame) as EventFrame;
        return { seq, type, payload: payload as unknown as Record<string, unknown> };
      });
      const end = events.at(-1)?.seq ?? after_seq;
      return { events, last_seq: page.lastSeq, done: page.endSeq !== null && end >= page.endSeq };
    }),
    cancel: structured(async ({ execution_id }) => ({ status: (await service.cancel(tenant, execution_id)).status })),
  };
  // The SDK types a tool by conditional types that TypeScript cannot resolve over a union of tools.
  type Callback = (args: unknown, extra: Extra) => Promise<CallToolResult>;
  const register = server.registerTool.bind(server) as (name: string, config: (typeof TOOLS)[ToolName], callback: Callback) => void;
  for (const name of Object.keys(TOOLS) as ToolName[]) register(name, TOOLS[name], observed(context, name, handlers[name] as Callback));
}

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

async function runCode(context: ToolContext, args: ToolArgs<'run_code'>, extra: Extra): Promise<CallToolResult> {
  const { service, tenant } = context;
  let sessionId = args.session_id;
  // A retry without session_id belongs to the session of the first call, not to a new one.
  if (sessionId === undefined && args.execution_id !== undefined) sessionId = (await findExecution(service, tenant, args.execution_id))?.session_id;
  const newSession = sessionId === undefined;
  sessionId ??= (await service.createSession(tenant, MCP_SESSION_NAME)).session_id;
  const input: ExecuteInput = { session_id: sessionId, kind: 'repl', code: args.code };
  if (args.timeout_ms !== undefined) input.timeout_ms = args.timeout_ms;
  if (args.execution_id !== undefined) input.execution_id = args.execution_id;

  const progress = new Progress(extra);
  const follower = new ExecutionFollower((line) => progress.report(line));
  let created = false;
  let record: ExecutionRecord;
  try {
    ({ record, created } = await service.execute(tenant, input, follower));
  } finally {
    // Two calls with one new execution_id raced: the session opened for the one that did not run stays empty.
    if (newSession && !created) await service.closeSession(tenant, sessionId);
  }
  const executionId = record.execution_id;
  if (created) service.release(follower, tenant, executionId);
  else service.subscribe(follower, tenant, executionId, 0, null);
  // The client went away or its token was revoked: the run goes on (read_output or a retry gets
  // its result), the follower stops.
  const stop = () => service.unsubscribe(follower, tenant, executionId);
  const signals = [extra.signal, context.revoked];
  if (signals.some((signal) => signal.aborted)) stop();
  else for (const signal of signals) signal.addEventListener('abort', stop, { once: true });
  progress.start();
  const followed = await follower.finished;
  progress.stop();
  for (const signal of signals) signal.removeEventListener('abort', stop);
  if (context.revoked.aborted) throw context.revoked.reason;
  // Its log was deleted, could not be read under us, or ends without a `done` (the store refused the
  // rest): the tool call fails with LOG_DELETED, LOG_UNREADABLE or LOG_REFUSED (read_output, or a
  // retry with the same execution_id, reads what is stored).
  if (followed.error) throw followed.error;
  // Without `done`, the client went away: this result goes nowhere.
  const status = followed.done?.status ?? (await service.getExecution(tenant, executionId)).status;
  const result: ToolResult<'run_code'> = {
    execution_id: executionId,
    session_id: record.session_id,
    status,
    last_seq: followed.lastSeq,
    output_truncated: followed.text.truncated,
  };
  return {
    content: [{ type: 'text', text: followed.text.render(executionId, followed.lastSeq) }],
    structuredContent: result,
    isError: status !== 'ok',
  };
}

async function findExecution(service: ExecutionService, tenant: string, executionId: string): Promise<ExecutionRecord | null> {
  try {
    return await service.getExecution(tenant, executionId);
  } catch (error) {
    if (error instanceof ProtocolError && error.code === 'NOT_FOUND') return null;
    throw error;
  }
}

/** A result whose object is its structuredContent, and its JSON the text (for clients that read only text). */
function structured<Args, Result extends Record<string, unknown>>(handler: (args: Args) => Promise<Result>) {
  return async (args: Args): Promise<CallToolResult> => {
    const object = await handler(args);
    return { content: [{ type: 'text', text: JSON.stringify(object) }], structuredContent: object };
  };
}

/**
 * Wraps a handler: a ProtocolError becomes an error result naming its code (as the socket's error
 * frame does); anything else is the server's fault, reported and not shown. Each call is counted.
 */
function observed<Args>(context: ToolContext, tool: string, handler: (args: Args, extra: Extra) => Promise<CallToolResult>) {
  return async (args: Args, extra: Extra): Promise<CallToolResult> => {
    const started = performance.now();
    let result: CallToolResult;
    try {
      result = await handler(args, extra);
    } catch (error) {
      if (!(error instanceof ProtocolError)) context.onInternalError(error);
      const text = error instanceof ProtocolError ? `${error.code}: ${error.message}` : 'INTERNAL: internal error';
      result = { content: [{ type: 'text', text }], isError: true };
    }
    context.onCall({ tenant: context.tenant, tool, outcome: result.isError ? 'error' : 'ok', ms: performance.now() - started });
    return result;
  };
}
