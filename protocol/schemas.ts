/**
 * JSON Schemas of every client request, compiled once at load by Ajv into plain functions, so a
 * frame costs one function call to check and no schema is interpreted on the hot path.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { ClientOp } from './types.js';

/** Ids that end up inside storage keys: printable, separator-free, bounded. */
export const ID_PATTERN = '^[A-Za-z0-9_.:-]{1,128}$';
export const MAX_SESSION_NAME = 200;
/** What stack traces call a repl input: printable (no control characters: it is shown on terminals), bounded. */
export const FILENAME_PATTERN = '^[^\\u0000-\\u001f\\u007f]{1,255}$';
export const LIST_LIMIT_MAX = 100;
export const LIST_LIMIT_DEFAULT = 20;

const id = { type: ['string', 'integer'], maxLength: 128 } as const;
const entityId = { type: 'string', pattern: ID_PATTERN } as const;

function request(op: ClientOp, properties: Record<string, unknown>, required: string[] = [], extra: Record<string, unknown> = {}) {
  return {
    type: 'object',
    properties: { op: { const: op }, id, ...properties },
    required: ['op', ...required],
    ...extra,
  };
}

export const REQUEST_SCHEMAS: Readonly<Record<ClientOp, object>> = Object.freeze({
  'session.create': request('session.create', { name: { type: 'string', maxLength: MAX_SESSION_NAME } }),
  'session.list': request('session.list', {}),
  'session.close': request('session.close', { session_id: entityId }, ['session_id']),
  'session.rename': request('session.rename', { session_id: entityId, name: { type: 'string', maxLength: MAX_SESSION_NAME } }, ['session_id', 'name']),
  execute: request(
    'execute',
    {
      session_id: entityId,
      kind: { enum: ['repl', 'run-file'] },
      code: { type: 'string' },
      path: { type: 'string', minLength: 1, maxLength: 4096 },
      timeout_ms: { type: 'integer', minimum: 1 },
      execution_id: entityId,
      filename: { type: 'string', pattern: FILENAME_PATTERN },
      batch: { type: 'boolean' },
    },
    ['session_id', 'kind'],
    {
      allOf: [
        { if: { properties: { kind: { const: 'repl' } }, required: ['kind'] }, then: { required: ['code'] } },
        { if: { properties: { kind: { const: 'run-file' } }, required: ['kind'] }, then: { required: ['path'] } },
      ],
    },
  ),
  subscribe: request('subscribe', { execution_id: entityId, after_seq: { type: 'integer', minimum: 0 }, batch: { type: 'boolean' } }, ['execution_id']),
  unsubscribe: request('unsubscribe', { execution_id: entityId }, ['execution_id']),
  cancel: request('cancel', { execution_id: entityId }, ['execution_id']),
  'execution.get': request('execution.get', { execution_id: entityId }, ['execution_id']),
  'execution.list': request(
    'execution.list',
    { session_id: entityId, limit: { type: 'integer', minimum: 1, maximum: LIST_LIMIT_MAX } },
    ['session_id'],
  ),
  complete: request(
    'complete',
    { session_id: entityId, code: { type: 'string' }, cursor: { type: 'integer', minimum: 0 } },
    ['session_id', 'code', 'cursor'],
  ),
  ping: request('ping', {}),
});

const ajv = new Ajv({ allErrors: false, strict: true, strictRequired: false, allowUnionTypes: true });
const validators = new Map<string, ValidateFunction>(
  Object.entries(REQUEST_SCHEMAS).map(([op, schema]) => [op, ajv.compile(schema)]),
);

export function isKnownOp(op: string): op is ClientOp {
  return validators.has(op);
}

/** Checks a decoded request of a known op; returns null when valid, otherwise a message naming the field. */
export function checkRequest(op: ClientOp, value: object): string | null {
  const validate = validators.get(op)!;
  if (validate(value)) return null;
  return describeError(validate.errors![0]!);
}

/**
 * Compiles another schema with the same Ajv instance and the same messages as checkRequest: for
 * schemas derived from REQUEST_SCHEMAS (protocol/http.ts). Call it at load, never per request.
 */
export function compileChecker(schema: object): (value: unknown) => string | null {
  const validate = ajv.compile(schema);
  return (value) => (validate(value) ? null : describeError(validate.errors![0]!));
}

function describeError(error: ErrorObject): string {
  if (error.keyword === 'required') {
    return `missing field \`${(error.params as { missingProperty: string }).missingProperty}\``;
  }
  const field = error.instancePath.slice(1).replaceAll('/', '.') || '(frame)';
  if (error.keyword === 'pattern' && (error.params as { pattern: string }).pattern === FILENAME_PATTERN) {
    return `field \`${field}\` must be 1-255 characters, none of them a control character`;
  }
  if (error.keyword === 'pattern') return `field \`${field}\` must be 1-128 characters of A-Z a-z 0-9 _ . : -`;
  if (error.keyword === 'enum') {
    return `field \`${field}\` must be one of ${(error.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
  }
  return `field \`${field}\` ${error.message ?? 'is not valid'}`;
}
