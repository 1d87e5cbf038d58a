/**
 * The HTTP API beside the socket (protocol/openapi.yaml). Routes come from protocol/http.ts; each
 * request's token is resolved to its tenant by the socket's Authenticator; path, query and body are
 * checked by validators derived from the socket's; then the same ExecutionService calls run. So a
 * tenant sees the same sessions and executions on both, and another tenant's are NOT_FOUND on both.
 */
import type { Logger } from 'pino';
import { ProtocolError, wireError } from '../../protocol/errors.js';
import {
  EVENTS_LIMIT_DEFAULT,
  HTTP_CHECKERS,
  HTTP_OPERATIONS,
  type Checker,
  type HttpOperation,
  type HttpOperationId,
  type ObjectSchema,
} from '../../protocol/http.js';
import { WS_PATH, type EventFrame, type ExecutionKind } from '../../protocol/types.js';
import { decodeValue } from '../../protocol/codec.js';
import type { ExecuteInput, ExecutionService } from '../sessions/service.js';
import { tokenFromRequest, type Authenticator } from '../auth/tokens.js';
import type { HttpHandler, HttpRequest, HttpResponse } from './port.js';
import { sendError, sendJson, sendText, statusLine } from './respond.js';
import { Router } from './router.js';
import { EventStreams } from './sse.js';
import type { SendBudget } from '../transport/send-budget.js';
import { EventCollector, requestedWait } from './wait.js';

/** What the operator's endpoints report; server.ts knows where each figure lives. */
export interface OperatorView {
  readiness(): { ready: boolean; checks: Record<string, boolean>; sandbox?: object };
  metrics(): Promise<{ contentType: string; body: string }>;
}

export interface HttpApiOptions {
  authenticator: Authenticator;
  operator: OperatorView;
  logger: Logger;
  /** The server's bound on bytes waiting in socket buffers: event streams count against it too. */
  sendBudget: SendBudget;
  onInternalError(error: unknown): void;
}

interface Call {
  tenant: string;
  params: Record<string, string>;
  query: Record<string, unknown>;
  body: Record<string, unknown>;
  request: HttpRequest;
  response: HttpResponse;
}

/** A JSON answer, or null when the handler answered by itself (a stream, the metrics text). */
type Reply = { status: number; body: unknown; headers?: Record<string, string> } | null;
type Handler = (call: Call) => Promise<Reply>;

const ok = (body: unknown): Reply => ({ status: 200, body });

export class HttpApi implements HttpHandler {
  readonly #router = new Router(HTTP_OPERATIONS);
  readonly #service: ExecutionService;
  readonly #options: HttpApiOptions;
  readonly #handlers: Readonly<Record<HttpOperationId, Handler>>;
  readonly #onInternalError: (error: unknown) => void;
  readonly #streams: EventStreams;

  constructor(service: ExecutionService, options: HttpApiOptions) {
    this.#service = service;
    this.#options = options;
    this.#onInternalError = options.onInternalError;
    this.#streams = new EventStreams(options.sendBudget);
    this.#handlers = {
      createSession: async ({ tenant, body }) => ({ status: 201, body: await service.createSession(tenant, body.name as string | undefined) }),
      listSessions: async ({ tenant }) => ok({ items: service.listSessions(tenant) }),
      getSession: async ({ tenant, params }) => ok(await service.getSession(tenant, params.session_id!)),
      closeSession: async ({ tenant, params }) => ok(await service.closeSession(tenant, params.session_id!)),
      renameSession: async ({ tenant, params, body }) => ok(await service.renameSession(tenant, params.session_id!, body.name as string)),
      executeRepl: (call) => this.#execute(call, 'repl'),
      executeRunFile: (call) => this.#execute(call, 'run-file'),
      listExecutions: async ({ tenant, query }) => ok({ items: await service.listExecutions(tenant, query.session_id as string, query.limit as number | undefined) }),
      getExecution: async ({ tenant, params }) => ok(await service.getExecution(tenant, params.execution_id!)),
      listEvents: (call) => this.#events(call),
      cancelExecution: async ({ tenant, params }) => ok(await service.cancel(tenant, params.execution_id!)),
      // A WebSocket upgrade never gets here (the transport takes it); a plain GET is told what to do.
      socket: async ({ response }) => {
        const error = new ProtocolError('UPGRADE_REQUIRED', `${WS_PATH} speaks WebSocket only: open it with a WebSocket client (an Upgrade: websocket request)`);
        sendError(response, error, this.#onInternalError, { upgrade: 'websocket' });
        return null;
      },
      listFiles: async ({ tenant }) => ok({ items: await service.listFiles(tenant) }),
      getFile: async ({ tenant, params, response }) => {
        sendText(response, 200, 'text/plain; charset=utf-8', await service.readFile(tenant, params.path!));
        return null;
      },
      putFile: async ({ tenant, params, request }) => {
        const { file, created } = await service.writeFile(tenant, params.path!, utf8(await request.body()));
        return { status: created ? 201 : 200, body: file };
      },
      deleteFile: async ({ tenant, params, response }) => {
        await service.deleteFile(tenant, params.path!);
        response.cork(() => {
          response.writeStatus(statusLine(204));
          response.end();
        });
        return null;
      },
      health: async () => ok({ status: 'ok' }),
      ready: async () => {
        const { ready, checks, sandbox } = options.operator.readiness();
        return { status: ready ? 200 : 503, body: { status: ready ? 'ready' : 'not_ready', checks, ...(sandbox ? { sandbox } : {}) } };
      },
      metrics: async ({ response }) => {
        const { contentType, body } = await options.operator.metrics();
        sendText(response, 200, contentType, body);
        return null;
      },
    };
  }

  /** Event streams open now, for the metrics. */
  get openStreams(): number {
    return this.#streams.size;
  }

  /** Ends the event streams of a tenant whose token was revoked, with an UNAUTHORIZED error message. */
  revokeTenant(tenant: string, reason: string): void {
    this.#streams.failTenant(tenant, wireError(new ProtocolError('UNAUTHORIZED', reason)));
  }

  handle(request: HttpRequest, response: HttpResponse): void {
    const match = this.#router.match(request.method, request.path);
    if (match.kind === 'no-route') {
      sendError(response, new ProtocolError('NOT_FOUND', `no route ${request.path.slice(0, 200)}`), this.#onInternalError);
      return;
    }
    if (match.kind === 'wrong-method') {
      const allow = match.allow.join(', ');
      const error = new ProtocolError('METHOD_NOT_ALLOWED', `${request.method.slice(0, 16)} is not allowed here; allowed: ${allow}`);
      sendError(response, error, this.#onInternalError, { allow });
      return;
    }
    this.#run(match.operation, match.params, request, response).then(
      (reply) => {
        if (reply) sendJson(response, reply.status, reply.body, reply.headers);
      },
      (error: unknown) => sendError(response, error, this.#onInternalError),
    );
  }

  async #run(id: HttpOperationId, params: Record<string, string>, request: HttpRequest, response: HttpResponse): Promise<Reply> {
    const operation: HttpOperation = HTTP_OPERATIONS[id];
    const checks = HTTP_CHECKERS[id];
    const tenant = operation.auth ? await this.#tenantOf(request) : '';
    check(checks.params, params, 'path');
    const query = operation.query ? queryObject(operation.query, request.query) : {};
    check(checks.query, query, 'query');
    const body = operation.body ? await readJson(request) : {};
    check(checks.body, body, 'body');
    return this.#handlers[id]({ tenant, params, query, body, request, response });
  }

  async #tenantOf(request: HttpRequest): Promise<string> {
    const token = tokenFromRequest(request.headers.authorization ?? '', request.query);
    const tenant = await this.#options.authenticator.tenantOf(token);
    if (tenant === null) throw new ProtocolError('UNAUTHORIZED', 'a valid token is required (Authorization: Bearer <token>)');
    return tenant;
  }

  async #execute({ tenant, body, query, request }: Call, kind: ExecutionKind): Promise<Reply> {
    // Only the fields the socket's `execute` takes go on: the schema lets unknown fields pass.
    const input: ExecuteInput = { session_id: body.session_id as string, kind };
    if (kind === 'repl') input.code = body.code as string;
    else input.path = body.path as string;
    if (body.timeout_ms !== undefined) input.timeout_ms = body.timeout_ms as number;
    if (body.execution_id !== undefined) input.execution_id = body.execution_id as string;
    if (kind === 'repl' && body.filename !== undefined) input.filename = body.filename as string;
    const wait = requestedWait(query.wait as number | undefined, request.headers.prefer);
    const collector = wait.ms > 0 ? new EventCollector() : undefined;
    const { record, created } = await this.#service.execute(tenant, input, collector);
    // A repeated execution_id creates nothing: the existing record, as 200.
    const status = created ? 201 : 200;
    if (!collector) return { status, body: record };
    // As a socket's execute: a new execution's held events go; a known one is followed from the start.
    if (created) this.#service.release(collector, tenant, record.execution_id);
    else this.#service.subscribe(collector, tenant, record.execution_id, 0, null);
    const finished = await collector.finishedWithin(wait.ms);
    this.#service.detachAll(collector);
    if (collector.endedEarly) throw collector.endedEarly;
    const headers = wait.applied ? { 'preference-applied': wait.applied } : undefined;
    // Ended in time: the final record with its events; else the record as it stands now.
    const now = await this.#service.getExecution(tenant, record.execution_id);
    return { status, body: finished ? { ...now, events: collector.events } : now, ...(headers ? { headers } : {}) };
  }

  async #events({ tenant, params, query, request, response }: Call): Promise<Reply> {
    const executionId = params.execution_id!;
    let afterSeq = (query.after_seq as number | undefined) ?? 0;
    if (!(request.headers.accept ?? '').includes('text/event-stream')) {
      const limit = (query.limit as number | undefined) ?? EVENTS_LIMIT_DEFAULT;
      const page = await this.#service.readEvents(tenant, executionId, afterSeq, limit);
      const items = page.events.map((event) => decodeValue(event.frame) as EventFrame);
      const done = page.endSeq !== null || items.at(-1)?.type === 'done';
      return ok({ items, last_seq: page.lastSeq, done });
    }
    // A reconnecting EventSource says where it was in Last-Event-ID; it wins over the query.
    const lastEventId = request.headers['last-event-id'];
    if (lastEventId !== undefined && lastEventId !== '') {
      afterSeq = /^\d{1,15}$/.test(lastEventId) ? Number(lastEventId) : -1;
      if (afterSeq < 0) throw new ProtocolError('BAD_REQUEST', 'header `Last-Event-ID` must be the seq of an event (an integer >= 0)');
    }
    const log = this.#options.logger;
    await this.#streams.stream(this.#service, tenant, executionId, afterSeq, response, () => this.#tenantOf(request), {
      opened: () => log.info({ tenant, execution_id: executionId, after_seq: afterSeq }, 'event stream opened'),
      closed: () => log.info({ tenant, execution_id: executionId }, 'event stream closed'),
    });
    return null;
  }
}

function check(checker: Checker | undefined, value: unknown, where: string): void {
  const problem = checker?.(value) ?? null;
  if (problem !== null) throw new ProtocolError('BAD_REQUEST', `${where}: ${problem}`);
}

/** The query parameters a schema names; integer ones converted when they are written as integers. */
function queryObject(schema: ObjectSchema, raw: string): Record<string, unknown> {
  const search = new URLSearchParams(raw);
  const query: Record<string, unknown> = {};
  for (const name in schema.properties) {
    const value = search.get(name);
    if (value === null) continue;
    // Anything else stays a string, and the checker says the field must be an integer.
    query[name] = schema.properties[name]!.type === 'integer' && /^-?\d{1,15}$/.test(value) ? Number(value) : value;
  }
  return query;
}

/** A workspace file's body: text, as run-file reads it. */
function utf8(bytes: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (error) {
    throw new ProtocolError('BAD_REQUEST', 'a workspace file must be UTF-8 text', { cause: error });
  }
}

/** The body as a JSON object (empty: `{}`); anything else is a BAD_REQUEST. */
export async function readJson(request: HttpRequest): Promise<Record<string, unknown>> {
  const bytes = await request.body();
  if (bytes.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8'));
  } catch (error) {
    throw new ProtocolError('BAD_REQUEST', `body is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ProtocolError('BAD_REQUEST', 'body must be a JSON object');
  return value as Record<string, unknown>;
}
