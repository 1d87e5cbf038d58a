/**
 * The structured fields of `console` and `value` payloads (protocol/types.ts: `data`, `table`) as
 * they leave a sandbox: written as JSON inside the context (in-context-preview.ts), parsed by the
 * worker, carried as the 7th element of an output record (pool/messages.ts), and checked here by
 * whoever decodes records. A sandbox is untrusted, so the decoder keeps only well-formed, bounded
 * trees of the documented shape and drops anything else (the text `preview` still says it all).
 */
import type { ConsolePayload, ConsoleTable, PreviewKind, PreviewNode, ValuePayload } from '../../protocol/types.js';

export const PREVIEW_KINDS: ReadonlySet<PreviewKind> = new Set<PreviewKind>([
  'undefined', 'null', 'boolean', 'number', 'bigint', 'string', 'symbol', 'function', 'class', 'object',
  'array', 'map', 'set', 'error', 'date', 'regexp', 'promise', 'proxy', 'typedarray', 'arraybuffer',
  'weakmap', 'weakset', 'boxed', 'accessor', 'circular',
]);
export const PREVIEW_FIELDS: ReadonlySet<string> = new Set(['kind', 'text', 'length', 'class', 'size', 'props', 'entries', 'items', 'more', 'frames']);
/** Far above what the in-context bounds produce: a guard against a sandbox that ignores them. */
const MAX_NODES = 10_000;
const MAX_DEPTH = 16;
const MAX_STRING = 1 << 20;

interface Budget { nodes: number }

const isCount = (value: unknown): boolean => Number.isSafeInteger(value) && (value as number) >= 0;
const isText = (value: unknown): boolean => typeof value === 'string' && value.length <= MAX_STRING;
const isList = (value: unknown): value is unknown[] => Array.isArray(value);

function isNode(value: unknown, depth: number, budget: Budget): value is PreviewNode {
  if (depth > MAX_DEPTH || --budget.nodes < 0 || value === null || typeof value !== 'object' || isList(value)) return false;
  const node = value as Record<string, unknown>;
  for (const key of Object.keys(node)) if (!PREVIEW_FIELDS.has(key)) return false;
  if (!PREVIEW_KINDS.has(node.kind as PreviewKind)) return false;
  if (node.text !== undefined && !isText(node.text)) return false;
  if (node.class !== undefined && node.class !== null && !isText(node.class)) return false;
  for (const key of ['length', 'size', 'more'] as const) if (node[key] !== undefined && !isCount(node[key])) return false;
  if (node.frames !== undefined && !(isList(node.frames) && node.frames.every(isText))) return false;
  const child = (item: unknown) => isNode(item, depth + 1, budget);
  if (node.props !== undefined && !(isList(node.props) && node.props.every((pair) => isList(pair) && pair.length === 2 && isText(pair[0]) && child(pair[1])))) return false;
  if (node.entries !== undefined && !(isList(node.entries) && node.entries.every((pair) => isList(pair) && pair.length === 2 && child(pair[0]) && child(pair[1])))) return false;
  if (node.items !== undefined && !(isList(node.items) && node.items.every(child))) return false;
  return true;
}

function isTable(value: unknown, budget: Budget): value is ConsoleTable {
  if (value === null || typeof value !== 'object' || isList(value)) return false;
  const table = value as Record<string, unknown>;
  if (!isList(table.columns) || !table.columns.every(isText) || !isList(table.rows)) return false;
  if (table.more !== undefined && !isCount(table.more)) return false;
  return table.rows.every((row) => isList(row) && row.length <= (table.columns as unknown[]).length
    && row.every((cell) => cell === null || isNode(cell, 1, budget)));
}

/** The well-formed structured field of a `value` record's 7th element. */
export function valueExtras(raw: unknown): Pick<ValuePayload, 'data'> {
  const { data } = fieldsOf(raw);
  return isNode(data, 0, { nodes: MAX_NODES }) ? { data } : {};
}

/** The well-formed structured fields of a `console` record's 7th element. */
export function consoleExtras(raw: unknown): Pick<ConsolePayload, 'data' | 'table'> {
  const { data, table } = fieldsOf(raw);
  const budget: Budget = { nodes: MAX_NODES };
  const extras: Pick<ConsolePayload, 'data' | 'table'> = {};
  if (isList(data) && data.every((node) => isNode(node, 0, budget))) extras.data = data as PreviewNode[];
  if (isTable(table, budget)) extras.table = table;
  return extras;
}

function fieldsOf(raw: unknown): Record<string, unknown> {
  return raw !== null && typeof raw === 'object' && !isList(raw) ? raw as Record<string, unknown> : {};
}
