/**
 * One MCP server for one tenant, over ExecutionService only. The HTTP endpoint builds one per
 * request (stateless Streamable HTTP), so nothing of an MCP conversation lives in this process:
 * a client keeps working across a server restart, and everything it needs (sessions, execution
 * logs) is in the service.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { ExecutionService } from '../sessions/service.js';
import { OUTPUT_CHAR_LIMIT } from './output.js';
import { registerResources } from './resources.js';
import { registerTools, type McpCall } from './tools.js';

export type { McpCall } from './tools.js';

export const SERVER_INFO = Object.freeze({ name: 'vmstream', title: 'vmstream: durable JavaScript sessions', version: '1.0.0' });

const INSTRUCTIONS = `vmstream runs JavaScript for you in persistent sessions (REPL contexts in isolated workers).
- State persists per session: declare something with run_code and use it in later run_code calls with the same session_id. Without session_id, run_code opens a new session and returns its id.
- The code is plain, isolated JavaScript (top-level await allowed): console, timers and built-ins, no require, import(), process, network or files.
- Every event of every run is stored before you see it: read_output reads any run's output from any seq, also after a dropped connection or a server restart.
- Pass your own execution_id to run_code: a retry with the same id never runs the code twice; it returns the first run's result.
- run_code's text is cut at ${OUTPUT_CHAR_LIMIT} characters; the note says where read_output continues. Runs have a time limit (timeout_ms); cancel stops a runaway run.`;

export interface McpServerOptions {
  onCall(call: McpCall): void;
  onInternalError(error: unknown): void;
  /** Aborts, with a ProtocolError as its reason, when the tenant's token is revoked. */
  revoked: AbortSignal;
}

export function createMcpServer(service: ExecutionService, tenant: string, options: McpServerOptions): McpServer {
  const server = new McpServer(SERVER_INFO, { instructions: INSTRUCTIONS });
  registerTools(server, { service, tenant, ...options });
  registerResources(server, service, tenant);
  return server;
}
