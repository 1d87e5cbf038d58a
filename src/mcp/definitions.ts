/**
 * What the MCP tools are, as a model sees them: names, titles, descriptions, input and output
 * schemas. Built once per process (the HTTP endpoint makes a server per request, and building zod
 * schemas is most of what that would cost); tools.ts binds them to a tenant's handlers. The
 * descriptions are written for the model that picks and calls the tools: what persists, the
 * limits, and that `execution_id` makes a retry safe.
 */
import { z } from 'zod';
import { EVENTS_LIMIT_MAX } from '../../protocol/http.js';
import { ID_PATTERN, MAX_SESSION_NAME } from '../../protocol/schemas.js';
import { OUTPUT_CHAR_LIMIT } from './output.js';

const id = z.string().regex(new RegExp(ID_PATTERN));
const sessionStatus = z.enum(['ready', 'closed']);
const executionStatus = z.enum(['queued', 'running', 'ok', 'error', 'timeout', 'cancelled', 'crashed']);

const RETRY_NOTE =
  'Give your own `execution_id` (letters, digits, `_.:-`, up to 128) to make the call safe to retry: ' +
  'the same id never runs twice, so calling again after a timeout or a dropped connection returns ' +
  'the first run\'s result (waiting for it if it is still running) instead of running the code again.';

export const TOOLS = {
  create_session: {
    title: 'Create a JavaScript session',
    description:
      'Opens a new JavaScript session: a persistent REPL context (like a notebook kernel) in which ' +
      'the variables, functions and classes one run_code call declares stay available to the next. ' +
      'Returns its session_id. Sessions stay open until close_session; the server limits how many are open.',
    inputSchema: z.object({ name: z.string().max(MAX_SESSION_NAME).optional().describe('A label for the session, shown by list_sessions.') }),
    outputSchema: z.object({ session_id: z.string() }),
  },
  list_sessions: {
    title: 'List open sessions',
    description: 'Lists your open JavaScript sessions, newest first, with their names.',
    inputSchema: z.object({}),
    outputSchema: z.object({ sessions: z.array(z.object({ session_id: z.string(), name: z.string(), status: sessionStatus })) }),
  },
  close_session: {
    title: 'Close a session',
    description: 'Closes a session: its state is dropped and anything still running or queued in it is cancelled. Its executions stay readable with read_output.',
    inputSchema: z.object({ session_id: id.describe('The session to close.') }),
    outputSchema: z.object({ session_id: z.string(), status: sessionStatus }),
  },
  run_code: {
    title: 'Run JavaScript',
    description:
      'Runs JavaScript in a session and waits until it has finished. The code runs like a REPL cell ' +
      '(Node-style, top-level await allowed): top-level declarations persist in the session for later ' +
      'calls, and the value of the last expression is shown as `=> value`. Without session_id it runs ' +
      'in a new session and returns that session_id: pass it on the next calls to keep the state. ' +
      'It is plain, isolated JavaScript: console, timers and the language built-ins, but no require, ' +
      'import(), process, network or file access. A run ends when its code has settled and none of ' +
      'its timers is pending (a setInterval never cleared runs until the time limit). ' +
      'The result is the console output in order (lines from console.warn/console.error marked ' +
      '[stderr]), the value, and any uncaught exception with its stack; isError is true when the run ' +
      `did not end ok (exception, timeout, cancelled, crashed). The text is cut at ${OUTPUT_CHAR_LIMIT} ` +
      'characters: the note at the end gives the after_seq to page the rest with read_output. ' +
      `timeout_ms bounds the run (the server has a default and a maximum). ${RETRY_NOTE}`,
    inputSchema: z.object({
      code: z.string().describe('The JavaScript to run.'),
      session_id: id.optional().describe('The session to run in; omitted: a new session.'),
      timeout_ms: z.number().int().min(1).optional().describe('Time limit of this run, in milliseconds.'),
      execution_id: id.optional().describe('Your id for this run, which makes retrying it safe.'),
    }),
    outputSchema: z.object({
      execution_id: z.string(),
      session_id: z.string(),
      status: executionStatus,
      last_seq: z.number().int().describe('Seq of the last event of the execution log.'),
      output_truncated: z.boolean().describe('True when the text was cut; read_output gives the rest.'),
    }),
  },
  read_output: {
    title: 'Read an execution\'s events',
    description:
      'Reads the stored events of an execution (one run_code call), from any point: to page output ' +
      'that run_code cut, to follow a run after a dropped connection, or to look at an earlier run, ' +
      'even after the server restarted. Returns events with contiguous seqs from after_seq + 1 ' +
      `(at most \`limit\`, 1 to ${EVENTS_LIMIT_MAX}), last_seq (the log's end so far) and done: true ` +
      'once the execution has ended and this page reaches its final `done` event. Event types: ' +
      'console {level, text}, value {type, preview}, exception {name, message, stack}, ' +
      'session.restoring {inputs, replayed}, session.restored, session.lost, done {status, reason?}.',
    inputSchema: z.object({
      execution_id: id.describe('The execution, as run_code returned it.'),
      after_seq: z.number().int().min(0).optional().describe('Read events after this seq (default 0: from the start).'),
      limit: z.number().int().min(1).max(EVENTS_LIMIT_MAX).optional().describe(`At most this many events (default ${EVENTS_LIMIT_MAX}).`),
    }),
    outputSchema: z.object({
      events: z.array(z.object({ seq: z.number().int(), type: z.string(), payload: z.record(z.string(), z.unknown()) })),
      last_seq: z.number().int(),
      done: z.boolean(),
    }),
  },
  cancel: {
    title: 'Cancel a run',
    description:
      'Stops a queued or running execution (a runaway loop included) and returns its status once it ' +
      'has ended: `cancelled`, or the status it had already ended with. A run_code call waiting for ' +
      'it then returns with isError. The session stays usable.',
    inputSchema: z.object({ execution_id: id.describe('The execution to stop.') }),
    outputSchema: z.object({ status: executionStatus }),
  },
};

export type ToolName = keyof typeof TOOLS;
export type ToolArgs<Name extends ToolName> = z.output<(typeof TOOLS)[Name]['inputSchema']>;
export type ToolResult<Name extends ToolName> = z.output<(typeof TOOLS)[Name]['outputSchema']>;
