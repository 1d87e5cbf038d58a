/**
 * MCP over Streamable HTTP at /mcp, on the HTTP port beside the API. It sits in front of the
 * HTTP API as the web console does: requests for /mcp are answered here, everything else goes on.
 *
 * The SDK's transport speaks web-standard Request/Response; this is the thinnest adapter from
 * src/http/port.ts to it and back: the request is copied into a Request (the body read under the
 * HTTP API's size limit), the Response's status and headers are written, and its body (JSON, or an
 * SSE stream of progress notifications and the result) is piped out chunk by chunk, waiting for the
 * socket to drain when it is full. The server is stateless: a fresh McpServer and transport per
 * POST, bound to the tenant of that request's token, so a client keeps working across restarts.
 * Without server-initiated messages there is no GET stream and no session to DELETE: both are 405.
 */
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { ProtocolError } from '../../protocol/errors.js';
import { MCP_PATH } from '../../protocol/types.js';
import type { HttpHandler, HttpRequest, HttpResponse } from '../http/port.js';
import { sendError, statusLine } from '../http/respond.js';
import { tokenFromRequest, type Authenticator } from '../transport/auth.js';
import type { ExecutionService } from '../sessions/service.js';
import { createMcpServer, type McpCall } from './server.js';

export interface McpEndpointOptions {
  authenticator: Authenticator;
  onCall(call: McpCall): void;
  onInternalError(error: unknown): void;
}

export class McpEndpoint implements HttpHandler {
  readonly #service: ExecutionService;
  readonly #next: HttpHandler;
  readonly #options: McpEndpointOptions;
  /** MCP requests being answered now (a run_code holds one until its run ends): for metrics. */
  open = 0;

  constructor(service: ExecutionService, next: HttpHandler, options: McpEndpointOptions) {
    this.#service = service;
    this.#next = next;
    this.#options = options;
  }

  handle(request: HttpRequest, response: HttpResponse): void {
    if (request.path !== MCP_PATH) {
      this.#next.handle(request, response);
      return;
    }
    this.open++;
    this.#answer(request, response)
      .catch((error: unknown) => sendError(response, error, this.#options.onInternalError))
      .finally(() => this.open--);
  }

  async #answer(request: HttpRequest, response: HttpResponse): Promise<void> {
    const tenant = await this.#options.authenticator.tenantOf(tokenFromRequest(request.headers.authorization ?? '', request.query));
    if (tenant === null) throw new ProtocolError('UNAUTHORIZED', 'a valid token is required (Authorization: Bearer <token>)');
    if (request.method !== 'POST') {
      const message = `${request.method.slice(0, 16)} is not allowed here; allowed: POST (this MCP server is stateless: no GET stream, no session to DELETE)`;
      sendError(response, new ProtocolError('METHOD_NOT_ALLOWED', message), this.#options.onInternalError, { allow: 'POST' });
      return;
    }
    const body = await request.body();
    // Gone while its body was read: onAborted has fired already and would not fire again.
    if (response.aborted) return;
    const server = createMcpServer(this.#service, tenant, this.#options);
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    await server.connect(transport);
    // However the exchange ends, the server closes: an unfinished tool call sees its signal abort.
    response.onAborted(() => void server.close());
    try {
      const host = request.headers.host ?? 'localhost';
      const webRequest = new Request(`http://${host}${MCP_PATH}`, { method: 'POST', headers: request.headers, body });
      await pipeResponse(await transport.handleRequest(webRequest), response);
    } finally {
      await server.close();
    }
  }
}

/** Hop-by-hop and length headers are the HTTP layer's own business. */
const SKIPPED_HEADERS = new Set(['connection', 'content-length', 'transfer-encoding', 'keep-alive']);

/** Writes a web Response to the port: status, headers, then the body as it comes, honouring backpressure. */
async function pipeResponse(web: Response, response: HttpResponse): Promise<void> {
  let drained: (() => void) | null = null;
  const wake = () => {
    drained?.();
    drained = null;
  };
  response.onWritable(wake);
  response.onAborted(wake);
  response.cork(() => {
    response.writeStatus(web.statusText ? `${web.status} ${web.statusText}` : statusLine(web.status));
    web.headers.forEach((value, name) => {
      if (!SKIPPED_HEADERS.has(name)) response.writeHeader(name, value);
    });
  });
  if (web.body === null) {
    response.cork(() => response.end());
    return;
  }
  const reader = web.body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done || response.aborted) break;
      let flushed = true;
      response.cork(() => (flushed = response.write(decoder.decode(value, { stream: true }))));
      if (!flushed && !response.aborted) await new Promise<void>((resolve) => (drained = resolve));
    }
  } finally {
    if (response.aborted) await reader.cancel().catch(() => undefined);
    response.cork(() => response.end());
  }
}
