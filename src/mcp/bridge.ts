/**
 * `vmstream mcp`: the MCP server for clients that launch their tools as processes. It is a pure
 * proxy: JSON-RPC messages read from stdin go to the running server's /mcp (Streamable HTTP), and
 * what comes back (progress notifications, results) goes to stdout, so the tools exist once, in
 * the server, and this process keeps no state: it survives a server restart untouched.
 *
 * The URL and token come as for `vmstream repl` (--url, --token, VMSTREAM_URL, VMSTREAM_TOKEN, the
 * URL's ?token=); a socket URL is turned into its /mcp sibling. A request the server cannot answer
 * (it is down, the token is refused, the stream broke) gets a JSON-RPC error at once, instead of
 * leaving the client waiting. It exits when stdin closes.
 */
import { parseArgs } from 'node:util';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { ErrorCode, isJSONRPCErrorResponse, isJSONRPCRequest, isJSONRPCResultResponse, type JSONRPCMessage, type RequestId } from '@modelcontextprotocol/sdk/types.js';
import { MCP_PATH, WS_PATH } from '../../protocol/types.js';
import { CONNECTION_OPTIONS, targetFromArgs } from '../cli/connect.js';

export async function bridge(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: CONNECTION_OPTIONS });
  const target = targetFromArgs(values.url, values.token);
  const url = mcpUrl(target.url);
  const upstream = new StreamableHTTPClientTransport(url, { requestInit: { headers: { authorization: `Bearer ${target.token}` } } });
  const local = new StdioServerTransport();
  const pending = new Set<RequestId>();
  const fail = (id: RequestId, error: unknown) => {
    if (!pending.delete(id)) return;
    // The SDK's StreamableHTTPError carries the HTTP status as `code`: a 401 should say so.
    const status = (error as { code?: unknown }).code;
    const http = typeof status === 'number' && status > 0 ? `HTTP ${status}: ` : '';
    const message = `vmstream at ${url.href}: ${http}${(error as Error).message ?? String(error)}`;
    void local.send({ jsonrpc: '2.0', id, error: { code: ErrorCode.ConnectionClosed, message } });
  };

  local.onmessage = (message) => {
    if (isJSONRPCRequest(message)) pending.add(message.id);
    upstream.send(message).catch((error: unknown) => {
      if (isJSONRPCRequest(message)) fail(message.id, error);
    });
  };
  upstream.onmessage = (message) => {
    if (isJSONRPCResultResponse(message) || isJSONRPCErrorResponse(message)) {
      if (message.id !== undefined) pending.delete(message.id);
      noteProtocolVersion(upstream, message);
    }
    void local.send(message);
  };
  upstream.onerror = (error) => {
    process.stderr.write(`vmstream mcp: ${error.message}\n`);
    // The SDK reports a response stream that broke mid-call only this way, without its request:
    // every unanswered request is told, and may be retried (with the same execution_id, safely).
    if (error.message.startsWith('SSE stream disconnected')) for (const id of [...pending]) fail(id, error);
  };
  local.onerror = (error) => process.stderr.write(`vmstream mcp: ${error.message}\n`);

  await upstream.start();
  await local.start();
  await new Promise<void>((resolve) => {
    process.stdin.once('end', resolve);
    process.stdin.once('close', resolve);
  });
  await Promise.all([local.close(), upstream.close()]);
  return 0;
}

/** The /mcp URL of the server a socket URL (ws:, wss:, from the repl's defaults) points at. */
export function mcpUrl(socketUrl: string): URL {
  const url = new URL(socketUrl);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  if (url.pathname.endsWith(WS_PATH)) url.pathname = url.pathname.slice(0, -WS_PATH.length) + MCP_PATH;
  return url;
}

/** After `initialize`, the Streamable HTTP spec wants the negotiated version on every request. */
function noteProtocolVersion(upstream: StreamableHTTPClientTransport, message: JSONRPCMessage): void {
  const result = (message as { result?: { protocolVersion?: unknown; serverInfo?: unknown } }).result;
  if (typeof result?.protocolVersion === 'string' && result.serverInfo !== undefined) upstream.setProtocolVersion(result.protocolVersion);
}
