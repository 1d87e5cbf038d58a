/**
 * The MCP tools, each a thin call into ExecutionService as one tenant. Descriptions are written
 * for the model that picks and calls them: what persists, the limits, and that `execution_id`
 * makes a retry safe. Every result carries its object in `structuredContent` (checked against the
 * tool's output schema); `run_code` answers with exactly one text block, the others with the
 * object's JSON, as the MCP spec recommends for clients that read only text.
 */
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { CallToolResult, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import { z, type ZodRawShape } from 'zod';
import { ProtocolError } from '../../protocol/errors.js';
import { ID_PATTERN, MAX_SESSION_NAME } from '../../protocol/schemas.js';
import { EVENTS_LIMIT_MAX } from '../../protocol/http.js';
import type { EventFrame, ExecutionRecord } from '../../protocol/types.js';
import { decodeStored } from '../protocol/codec.js';
import type { ExecuteInput, ExecutionService } from '../sessions/service.js';
import { ExecutionFollower } from './follow.js';
import { OUTPUT_CHAR_LIMIT } from './output.js';
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
}

/** The name given to sessions that run_code opens when no session_id is given. */
export const MCP_SESSION_NAME = 'mcp';

const id = () => z.string().regex(new RegExp(ID_PATTERN));
const STATUSES = ['queued', 'running', 'ok', 'error', 'timeout', 'cancelled', 'crashed'] as const;

const RETRY_NOTE =
  'Give your own `execution_id` (letters, digits, `_.:-`, up to 128) to make the call safe to retry: ' +
  'the same id never runs twice, so calling again after a timeout or a dropped connection returns ' +
  'the first run\'s result (waiting for it if it is still running) instead of running the code again.';

export function registerTools(server: McpServer, context: ToolContext): void {
  const { service, tenant } = context;
  const tool = toolRegistrar(server, context);

  tool('create_session', {
    title: 'Create a JavaScript session',
    description:
      'Opens a new JavaScript session: a persistent REPL context (like a notebook kernel) in which ' +
      'variables, functions and imports defined by one run_code call stay available to the next. ' +
      'Returns its session_id. Sessions stay open until close_session; the server limits how many are open.',
    inputSchema: { name: z.string().max(MAX_SESSION_NAME).optional().describe('A label for the session, shown by list_sessions.') },
    outputSchema: { session_id: z.string() },
  }, async ({ name }) => ({ session_id: (await service.createSession(tenant, name)).session_id }));

  tool('list_sessions', {
    title: 'List open sessions',
    description: 'Lists your open JavaScript sessions, newest first, with their names.',
    inputSchema: {},
    outputSchema: { sessions: z.array(z.object({ session_id: z.string(), name: z.string(), status: z.enum(['ready', 'closed']) })) },
  }, async () => ({
    sessions: service.listSessions(tenant).map(({ session_id, name, status }) => ({ session_id, name, status })),
  }));

  tool('close_session', {
    title: 'Close a session',
    description: 'Closes a session: its state is dropped and anything still running or queued in it is cancelled. Its executions stay readable with read_output.',
    inputSchema: { session_id: id().describe('The session to close.') },
    outputSchema: { session_id: z.string(), status: z.enum(['ready', 'closed']) },
  }, async ({ session_id }) => {
    const record = await service.closeSession(tenant, session_id);
    return { session_id: record.session_id, status: record.status };
  });

  server.registerTool('run_code', {
    title: 'Run JavaScript',
    description:
      'Runs JavaScript in a session and waits until it has finished. The code runs like a REPL cell ' +
      '(Node-style, top-level await allowed): top-level declarations persist in the session for later ' +
      'calls, and the value of the last expression is shown as `=> value`. Without session_id it runs ' +
      'in a new session and returns that session_id: pass it on the next calls to keep the state. ' +
      'The result is the console output in order (lines from console.warn/console.error marked ' +
      '[stderr]), the value, and any uncaught exception with its stack; isError is true when the run ' +
      `did not end ok (exception, timeout, cancelled, crashed). The text is cut at ${OUTPUT_CHAR_LIMIT} ` +
      'characters: the note at the end gives the after_seq to page the rest with read_output. ' +
      `timeout_ms bounds the run (the server has a default and a maximum). ${RETRY_NOTE}`,
    inputSchema: {
      code: z.string().describe('The JavaScript to run.'),
      session_id: id().optional().describe('The session to run in; omitted: a new session.'),
      timeout_ms: z.number().int().min(1).optional().describe('Time limit of this run, in milliseconds.'),
      execution_id: id().optional().describe('Your id for this run, which makes retrying it safe.'),
    },
    outputSchema: {
      execution_id: z.string(),
      session_id: z.string(),
      status: z.enum(STATUSES),
      last_seq: z.number().int().describe('Seq of the last event of the execution log.'),
      output_truncated: z.boolean().describe('True when the text was cut; read_output gives the rest.'),
    },
  }, observed(context, 'run_code', (args: RunCodeArgs, extra) => runCode(context, args, extra)));

  tool('read_output', {
    title: 'Read an execution\'s events',
    description:
      'Reads the stored events of an execution (one run_code call), from any point: to page output ' +
      'that run_code cut, to follow a run after a dropped connection, or to look at an earlier run, ' +
      'even after the server restarted. Returns events with contiguous seqs from after_seq + 1 ' +
      `(at most \`limit\`, 1 to ${EVENTS_LIMIT_MAX}), last_seq (the log's end so far) and done: true ` +
      'once the execution has ended and this page reaches its final `done` event. Event types: ' +
      'console {level, text}, value {type, preview}, exception {name, message, stack}, ' +
      'session.restored, session.lost, done {status, reason?}.',
    inputSchema: {
      execution_id: id().describe('The execution, as run_code returned it.'),
      after_seq: z.number().int().min(0).optional().describe('Read events after this seq (default 0: from the start).'),
      limit: z.number().int().min(1).max(EVENTS_LIMIT_MAX).optional().describe(`At most this many events (default ${EVENTS_LIMIT_MAX}).`),
    },
    outputSchema: {
      events: z.array(z.object({ seq: z.number().int(), type: z.string(), payload: z.record(z.string(), z.unknown()) })),
      last_seq: z.number().int(),
      done: z.boolean(),
    },
  }, async ({ execution_id, after_seq = 0, limit = EVENTS_LIMIT_MAX }) => {
    const page = await service.readEvents(tenant, execution_id, after_seq, limit);
    const events = page.events.map((stored) => {
      const { seq, type, payload } = decodeStored(stored.frame) as EventFrame;
      return { seq, type, payload: payload as unknown as Record<string, unknown> };
    });
    const end = events.at(-1)?.seq ?? after_seq;
    return { events, last_seq: page.lastSeq, done: page.finalSeq !== null && end >= page.finalSeq };
  });

  tool('cancel', {
    title: 'Cancel a run',
    description:
      'Stops a queued or running execution (a runaway loop included) and returns its status once it ' +
      'has ended: `cancelled`, or the status it had already ended with. A run_code call waiting for ' +
      'it then returns with isError. The session stays usable.',
    inputSchema: { execution_id: id().describe('The execution to stop.') },
    outputSchema: { status: z.enum(STATUSES) },
  }, async ({ execution_id }) => ({ status: (await service.cancel(tenant, execution_id)).status }));
}

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

interface RunCodeArgs {
  code: string;
  session_id?: string | undefined;
  timeout_ms?: number | undefined;
  execution_id?: string | undefined;
}

async function runCode(context: ToolContext, args: RunCodeArgs, extra: Extra): Promise<CallToolResult> {
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
  const follower = new ExecutionFollower((line, seq) => progress.report(line, seq));
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
  // The client went away: the run goes on (read_output or a retry gets its result), the follower stops.
  const stop = () => service.unsubscribe(follower, tenant, executionId);
  extra.signal.addEventListener('abort', stop, { once: true });
  const followed = await follower.finished;
  extra.signal.removeEventListener('abort', stop);
  progress.stop();
  // Without `done` the log was deleted by retention under us: the record still says how it ended.
  const status = followed.done?.status ?? (await service.getExecution(tenant, executionId)).status;
  const structured = {
    execution_id: executionId,
    session_id: record.session_id,
    status,
    last_seq: followed.lastSeq,
    output_truncated: followed.text.truncated,
  };
  return {
    content: [{ type: 'text', text: followed.text.render(executionId, followed.lastSeq) }],
    structuredContent: structured,
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

interface ToolConfig<In extends ZodRawShape, Out extends ZodRawShape> {
  title: string;
  description: string;
  inputSchema: In;
  outputSchema: Out;
}

/** Registers a tool whose handler returns its structured object; content and errors are added here. */
function toolRegistrar(server: McpServer, context: ToolContext) {
  return <In extends ZodRawShape, Out extends ZodRawShape>(
    name: string,
    config: ToolConfig<In, Out>,
    handler: (args: z.output<z.ZodObject<In>>, extra: Extra) => Promise<z.output<z.ZodObject<Out>>>,
  ): void => {
    const callback = observed(context, name, async (args: z.output<z.ZodObject<In>>, extra) => {
      const structured = await handler(args, extra);
      return { content: [{ type: 'text', text: JSON.stringify(structured) }], structuredContent: structured };
    });
    // The SDK types a callback by a conditional type TypeScript cannot resolve for a generic shape.
    server.registerTool(name, config, callback as never);
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
