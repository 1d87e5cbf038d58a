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
import { tokenFromRequest, type Authenticator } from '../auth/tokens.js';
import type { ExecutionService } from '../sessions/service.js';
import { createMcpServer, type McpCall } from './server.js';

export interface McpEndpointOptions {
  authenticator: Authenticator;
  /** Browser origins allowed, as for the socket (VMSTREAM_ORIGINS); empty allows any. */
  allowedOrigins: string[];
  onCall(call: McpCall): void;
  onInternalError(error: unknown): void;
}

export class McpEndpoint implements HttpHandler {
  readonly #service: ExecutionService;
  readonly #next: HttpHandler;
  readonly #options: McpEndpointOptions;
  /** MCP requests being answered now (a run_code holds one until its run ends), by tenant. */
  readonly #exchanges = new Set<{ tenant: string; revoked: AbortController }>();

  constructor(service: ExecutionService, next: HttpHandler, options: McpEndpointOptions) {
    this.#service = service;
    this.#next = next;
    this.#options = options;
  }

  /** For metrics. */
  get open(): number {
    return this.#exchanges.size;
  }

  /** The tenant's token was revoked: its calls still waiting (a run_code) answer UNAUTHORIZED now. */
  revokeTenant(tenant: string, reason: string): void {
    for (const exchange of this.#exchanges) if (exchange.tenant === tenant) exchange.revoked.abort(new ProtocolError('UNAUTHORIZED', reason));
  }

  handle(request: HttpRequest, response: HttpResponse): void {
    if (request.path !== MCP_PATH) {
      this.#next.handle(request, response);
      return;
    }
    this.#answer(request, response).catch((error: unknown) => sendError(response, error, this.#options.onInternalError));
  }

  async #answer(request: HttpRequest, response: HttpResponse): Promise<void> {
    // MCP asks servers to check Origin (DNS rebinding); the socket's rule applies.
    const origin = request.headers.origin;
    const { allowedOrigins } = this.#options;
    if (origin !== undefined && allowedOrigins.length > 0 && !allowedOrigins.includes(origin)) {
      throw new ProtocolError('FORBIDDEN', `origin ${origin.slice(0, 200)} is not allowed`);
    }
    let tenant = await this.#tenantOf(request);
    if (request.method !== 'POST') {
      const message = `${request.method.slice(0, 16)} is not allowed here; allowed: POST (this MCP server is stateless: no GET stream, no session to DELETE)`;
      sendError(response, new ProtocolError('METHOD_NOT_ALLOWED', message), this.#options.onInternalError, { allow: 'POST' });
      return;
    }
    const body = await request.body();
    // Gone while its body was read: onAborted has fired already and would not fire again.
    if (response.aborted) return;
    // Checked again: a revocation while the body was read must not miss this exchange.
    tenant = await this.#tenantOf(request);
    const exchange = { tenant, revoked: new AbortController() };
    this.#exchanges.add(exchange);
    const server = createMcpServer(this.#service, tenant, { ...this.#options, revoked: exchange.revoked.signal });
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    try {
      await server.connect(transport);
      // However the exchange ends, the server closes: an unfinished tool call sees its signal abort.
      response.onAborted(() => void server.close());
      await pipeResponse(await transport.handleRequest(webRequest(request, body)), response);
    } finally {
      this.#exchanges.delete(exchange);
      await server.close();
    }
  }

  async #tenantOf(request: HttpRequest): Promise<string> {
    const tenant = await this.#options.authenticator.tenantOf(tokenFromRequest(request.headers.authorization ?? '', request.query));
    if (tenant === null) throw new ProtocolError('UNAUTHORIZED', 'a valid token is required (Authorization: Bearer <token>)');
    return tenant;
  }
}

/** What the SDK's transport reads of a request; nothing else is copied (nor checked again by fetch's rules). */
const MCP_HEADERS = ['accept', 'content-type', 'mcp-protocol-version', 'mcp-session-id', 'last-event-id'];

/** The request as the SDK's transport takes it. Its URL is fixed: the Host header is the client's to choose. */
function webRequest(request: HttpRequest, body: Uint8Array): Request {
  const headers: Record<string, string> = {};
  for (const name of MCP_HEADERS) if (request.headers[name] !== undefined) headers[name] = request.headers[name];
  try {
    return new Request(`http://localhost${MCP_PATH}`, { method: 'POST', headers, body });
  } catch (error) {
    throw new ProtocolError('BAD_REQUEST', `headers: ${(error as Error).message}`, { cause: error });
  }
}

/** Hop-by-hop and length headers are the HTTP layer's own business. */
const SKIPPED_HEADERS = new Set(['connection', 'content-length', 'transfer-encoding', 'keep-alive']);

/**
 * Writes a web Response to the port: status and headers, then the body as it comes, honouring
 * backpressure. What the stream already holds goes out in one write with the headers (and the end,
 * when it follows at once): headers, data and the final chunk written apart would leave as small
 * segments that each wait out the client's delayed ACK, some 40 ms per call.
 */
async function pipeResponse(web: Response, response: HttpResponse): Promise<void> {
  let drained: (() => void) | null = null;
  const wake = () => {
    drained?.();
    drained = null;
  };
  response.onWritable(wake);
  response.onAborted(wake);
  const head = () => {
    response.writeStatus(web.statusText ? `${web.status} ${web.statusText}` : statusLine(web.status));
    web.headers.forEach((value, name) => {
      if (!SKIPPED_HEADERS.has(name)) response.writeHeader(name, value);
    });
  };
  if (web.body === null) {
    response.cork(() => {
      head();
      response.end();
    });
    return;
  }
  const reader: Reader = web.body.getReader();
  const decoder = new TextDecoder();
  let headWritten = false;
  let done = false;
  let next: Promise<ReadResult> = reader.read();
  try {
    while (!done && !response.aborted) {
      const { text, ended, pending } = await readBatch(next, reader, decoder);
      next = pending;
      done = ended;
      let flushed = true;
      response.cork(() => {
        if (!headWritten) head();
        headWritten = true;
        if (text !== '') flushed = response.write(text);
        if (done) response.end();
      });
      if (!flushed && !done && !response.aborted) await new Promise<void>((resolve) => (drained = resolve));
    }
  } finally {
    if (!done) {
      await reader.cancel().catch(() => undefined);
      response.cork(() => response.end());
    }
  }
}

const LATER = Symbol('later');
type ReadResult = { done: true; value?: unknown } | { done: false; value: Uint8Array };
interface Reader {
  read(): Promise<ReadResult>;
  cancel(): Promise<void>;
}

/** The chunk `first` brings, and every one already queued behind it; `pending` is the read still open. */
async function readBatch(first: Promise<ReadResult>, reader: Reader, decoder: InstanceType<typeof TextDecoder>) {
  let read = await first;
  let text = '';
  for (;;) {
    if (read.done) return { text, ended: true, pending: first };
    text += decoder.decode(read.value, { stream: true });
    const pending = reader.read();
    const soon = await Promise.race([pending, new Promise<typeof LATER>((resolve) => setImmediate(resolve, LATER))]);
    if (soon === LATER) return { text, ended: false, pending };
    read = soon;
  }
}
