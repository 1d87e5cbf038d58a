/**
 * The HTTP API beside the socket, as data: each operation's method, path, and the schemas of its
 * JSON body, path parameters and query parameters. Those schemas are derived from REQUEST_SCHEMAS
 * (the socket's), never written again, so a field checks and means the same on both transports.
 * src/http/ routes from this table, protocol/openapi.yaml describes it, and
 * test/api-docs.test.ts holds the three to each other in both directions.
 */
import { compileChecker, REQUEST_SCHEMAS } from './schemas.js';
import { WS_PATH, type ClientOp } from './types.js';

export const API_PREFIX = '/api/v1';
/** Events per page of `GET /executions/{id}/events`: a page is one store read. */
export const EVENTS_LIMIT_MAX = 1000;
export const EVENTS_LIMIT_DEFAULT = 100;
/** The longest an execute request may wait for its execution to end (`?wait=`, `Prefer: wait=`). */
export const WAIT_MS_MAX = 60_000;
const waitQuery: ObjectSchema = { type: 'object', properties: { wait: { type: 'integer', minimum: 0, maximum: WAIT_MS_MAX } } };

export interface ObjectSchema {
  type: 'object';
  properties: Record<string, Record<string, unknown>>;
  required?: string[];
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface HttpOperation {
  method: HttpMethod;
  /** The path, with `{name}` for a path parameter. */
  path: string;
  /** False for the operator's endpoints (probes and scrapers carry no token). */
  auth: boolean;
  body?: ObjectSchema;
  params?: ObjectSchema;
  query?: ObjectSchema;
  /** The last path parameter takes the rest of the path, `/`s included (a workspace file's path). */
  rest?: boolean;
}

interface RequestSchema {
  properties: Record<string, Record<string, unknown>>;
  required: string[];
  allOf?: Array<{ if: { properties: Record<string, { const: string }> }; then: { required: string[] } }>;
}

/**
 * A request schema as HTTP sees it: without the socket's framing (`op`, `id`), without the fields
 * that the route fixes (`kind` of /executions/repl) or carries in its path, and with the
 * conditional rules of a fixed field resolved: the branch that holds adds its required fields, and
 * fields only the other branches want are dropped.
 */
function derive(op: ClientOp, options: { fixed?: Record<string, string>; omit?: string[] } = {}): ObjectSchema {
  const source = REQUEST_SCHEMAS[op] as RequestSchema;
  const fixed = options.fixed ?? {};
  // `batch` chooses socket frame shapes (protocol v1.1): HTTP and SSE send one event at a time.
  const drop = new Set(['op', 'id', 'batch', ...Object.keys(fixed), ...(options.omit ?? [])]);
  const required = source.required.filter((name) => !drop.has(name));
  const otherBranches: string[] = [];
  for (const rule of source.allOf ?? []) {
    const [field, condition] = Object.entries(rule.if.properties)[0]!;
    if (!(field in fixed)) throw new Error(`${op}: a rule on \`${field}\` needs a fixed value to be derived`);
    if (condition.const === fixed[field]) required.push(...rule.then.required);
    else otherBranches.push(...rule.then.required);
  }
  for (const name of otherBranches) if (!required.includes(name)) drop.add(name);
  const properties = Object.fromEntries(Object.entries(source.properties).filter(([name]) => !drop.has(name)));
  return required.length > 0 ? { type: 'object', properties, required } : { type: 'object', properties };
}

function withProperties(schema: ObjectSchema, extra: ObjectSchema['properties']): ObjectSchema {
  return { ...schema, properties: { ...schema.properties, ...extra } };
}

const sessionPath = derive('session.close');
/** A workspace file: the same `path` as run-file's. */
const filePath: ObjectSchema = { type: 'object', properties: { path: (REQUEST_SCHEMAS.execute as RequestSchema).properties.path! }, required: ['path'] };
const workspaceFile = `${API_PREFIX}/workspace/{path}`;

export const HTTP_OPERATIONS = Object.freeze({
  createSession: { method: 'POST', path: `${API_PREFIX}/sessions`, auth: true, body: derive('session.create') },
  listSessions: { method: 'GET', path: `${API_PREFIX}/sessions`, auth: true },
  getSession: { method: 'GET', path: `${API_PREFIX}/sessions/{session_id}`, auth: true, params: sessionPath },
  closeSession: { method: 'DELETE', path: `${API_PREFIX}/sessions/{session_id}`, auth: true, params: sessionPath },
  renameSession: { method: 'POST', path: `${API_PREFIX}/sessions/{session_id}/rename`, auth: true, params: sessionPath, body: derive('session.rename', { omit: ['session_id'] }) },
  executeRepl: { method: 'POST', path: `${API_PREFIX}/executions/repl`, auth: true, body: derive('execute', { fixed: { kind: 'repl' } }), query: waitQuery },
  executeRunFile: { method: 'POST', path: `${API_PREFIX}/executions/run-file`, auth: true, body: derive('execute', { fixed: { kind: 'run-file' }, omit: ['filename'] }), query: waitQuery },
  listExecutions: { method: 'GET', path: `${API_PREFIX}/executions`, auth: true, query: derive('execution.list') },
  getExecution: { method: 'GET', path: `${API_PREFIX}/executions/{execution_id}`, auth: true, params: derive('execution.get') },
  listEvents: {
    method: 'GET',
    path: `${API_PREFIX}/executions/{execution_id}/events`,
    auth: true,
    params: derive('subscribe', { omit: ['after_seq'] }),
    query: withProperties(derive('subscribe', { omit: ['execution_id'] }), {
      limit: { type: 'integer', minimum: 1, maximum: EVENTS_LIMIT_MAX },
    }),
  },
  cancelExecution: { method: 'POST', path: `${API_PREFIX}/executions/{execution_id}/cancel`, auth: true, params: derive('cancel') },
  socket: { method: 'GET', path: WS_PATH, auth: false },
  listFiles: { method: 'GET', path: `${API_PREFIX}/workspace`, auth: true },
  getFile: { method: 'GET', path: workspaceFile, auth: true, params: filePath, rest: true },
  putFile: { method: 'PUT', path: workspaceFile, auth: true, params: filePath, rest: true },
  deleteFile: { method: 'DELETE', path: workspaceFile, auth: true, params: filePath, rest: true },
  health: { method: 'GET', path: '/healthz', auth: false },
  ready: { method: 'GET', path: '/readyz', auth: false },
  metrics: { method: 'GET', path: '/metrics', auth: false },
} satisfies Record<string, HttpOperation>);

export type HttpOperationId = keyof typeof HTTP_OPERATIONS;

export type Checker = (value: unknown) => string | null;

/** Each operation's checkers, compiled once at load with the socket's Ajv instance and messages. */
export const HTTP_CHECKERS: Readonly<Record<HttpOperationId, { body?: Checker; params?: Checker; query?: Checker }>> = Object.freeze(
  Object.fromEntries(
    Object.entries(HTTP_OPERATIONS as Record<HttpOperationId, HttpOperation>).map(([id, operation]) => [
      id,
      {
        ...(operation.body ? { body: compileChecker(operation.body) } : {}),
        ...(operation.params ? { params: compileChecker(operation.params) } : {}),
        ...(operation.query ? { query: compileChecker(operation.query) } : {}),
      },
    ]),
  ) as Record<HttpOperationId, { body?: Checker; params?: Checker; query?: Checker }>,
);
