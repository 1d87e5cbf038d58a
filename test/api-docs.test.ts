/**
 * protocol/openapi.yaml and protocol/asyncapi.yaml against what the server actually validates and
 * routes (protocol/http.ts, protocol/schemas.ts, protocol/errors.ts), in both directions: nothing
 * documented that the server lacks, nothing the server takes that is not documented, and every
 * request schema identical once the documents' $refs are resolved.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import { ERROR_CODES } from '../protocol/errors.js';
import { HTTP_OPERATIONS, type HttpOperation, type ObjectSchema } from '../protocol/http.js';
import { REQUEST_SCHEMAS } from '../protocol/schemas.js';
import { WS_PATH } from '../protocol/types.js';
import { PREVIEW_FIELDS, PREVIEW_KINDS } from '../src/sandbox/preview-data.js';
import { ROOT } from './helpers/server.js';

type Json = any;

function load(file: string): Json {
  const document = parse(readFileSync(path.join(ROOT, 'protocol', file), 'utf8'));
  return resolveRefs(document, document);
}

/**
 * Replaces every local `{$ref: '#/a/b'}` by what it points at; a $ref met again inside its own
 * target (a recursive schema such as PreviewNode) is left as it is.
 */
function resolveRefs(value: Json, root: Json, depth = 0, resolving: string[] = []): Json {
  if (depth > 50) throw new Error('$ref cycle');
  if (Array.isArray(value)) return value.map((item) => resolveRefs(item, root, depth + 1, resolving));
  if (value === null || typeof value !== 'object') return value;
  if (typeof value.$ref === 'string') {
    if (resolving.includes(value.$ref)) return value;
    const target = value.$ref.slice(2).split('/').reduce((node: Json, key: string) => node?.[key.replaceAll('~1', '/').replaceAll('~0', '~')], root);
    if (target === undefined) throw new Error(`unresolved ${value.$ref}`);
    return resolveRefs(target, root, depth + 1, [...resolving, value.$ref]);
  }
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, resolveRefs(item, root, depth + 1, resolving)]));
}

const errorCodes = Object.keys(ERROR_CODES).sort();

t.test('openapi.yaml: every operation, route, body and parameter as the server has them', async (t) => {
  const doc = load('openapi.yaml');
  t.equal(doc.openapi, '3.1.0');
  const documented = new Map<string, { method: string; path: string; operation: Json; parameters: Json[] }>();
  for (const [route, item] of Object.entries<Json>(doc.paths)) {
    for (const method of ['get', 'post', 'put', 'patch', 'delete']) {
      const operation = item[method];
      if (!operation) continue;
      t.notOk(documented.has(operation.operationId), `operationId ${operation.operationId} is unique`);
      documented.set(operation.operationId, { method: method.toUpperCase(), path: route, operation, parameters: [...(item.parameters ?? []), ...(operation.parameters ?? [])] });
    }
  }
  t.strictSame([...documented.keys()].sort(), Object.keys(HTTP_OPERATIONS).sort(), 'the same operations, both ways');

  for (const [id, spec] of Object.entries(HTTP_OPERATIONS) as Array<[string, HttpOperation]>) {
    const doc = documented.get(id);
    if (!doc) continue;
    t.equal(`${doc.method} ${doc.path}`, `${spec.method} ${spec.path}`, `${id}: method and path`);
    t.equal(doc.operation.security?.length === 0, !spec.auth, `${id}: needs a token exactly when the server asks for one`);
    const body = doc.operation.requestBody?.content?.['application/json']?.schema;
    t.strictSame(body, spec.body, `${id}: request body schema`);
    checkParameters(t, id, 'path', doc.parameters, spec.params);
    checkParameters(t, id, 'query', doc.parameters, spec.query);
  }
  t.strictSame([...doc.components.schemas.ErrorCode.enum].sort(), errorCodes, 'error codes, both ways');
});

function checkParameters(t: Test, id: string, where: 'path' | 'query', documented: Json[], schema: ObjectSchema | undefined): void {
  const listed = documented.filter((parameter) => parameter.in === where);
  const expected = schema?.properties ?? {};
  t.strictSame(listed.map((p) => p.name).sort(), Object.keys(expected).sort(), `${id}: ${where} parameters, both ways`);
  for (const parameter of listed) {
    t.strictSame(parameter.schema, expected[parameter.name], `${id}: ${where} parameter ${parameter.name}`);
    t.equal(parameter.required === true, where === 'path' || (schema?.required ?? []).includes(parameter.name), `${id}: ${parameter.name} required or not`);
  }
}

t.test('asyncapi.yaml: every request message is REQUEST_SCHEMAS, both ways', async (t) => {
  const doc = load('asyncapi.yaml');
  t.equal(doc.asyncapi, '3.0.0');
  const channel = doc.channels.socket;
  t.equal(channel.address, WS_PATH);
  const receive = Object.values<Json>(doc.operations).filter((operation) => operation.action === 'receive');
  t.equal(receive.length, 1, 'one operation holds the requests');
  const requests = new Map<string, Json>(receive[0].messages.map((message: Json) => [message.name, message.payload]));
  t.strictSame([...requests.keys()].sort(), Object.keys(REQUEST_SCHEMAS).sort(), 'the same ops, both ways');
  for (const [op, schema] of Object.entries(REQUEST_SCHEMAS)) {
    t.strictSame(requests.get(op), schema, `${op}: payload`);
  }
  const sent = Object.values<Json>(doc.operations).filter((operation) => operation.action === 'send').flatMap((operation) => operation.messages);
  const ops = sent.map((message: Json) => message.payload.properties.op.const).sort();
  t.strictSame(ops, ['completion', 'error', 'event', 'events', 'execution', 'executions', 'pong', 'session', 'sessions', 'subscribed', 'unsubscribed'], 'every server frame');
  t.strictSame([...doc.components.schemas.ErrorCode.enum].sort(), errorCodes, 'error codes, both ways');
  const node = doc.components.schemas.PreviewNode;
  t.strictSame([...node.properties.kind.enum].sort(), [...PREVIEW_KINDS].sort(), 'structured preview kinds, both ways');
  t.strictSame(Object.keys(node.properties).sort(), [...PREVIEW_FIELDS].sort(), 'structured preview fields, both ways');
});
