/**
 * Values as the console shows them: a structured preview (protocol/README.md, "Structured
 * previews") as an expandable tree, `console.table` as a table, an exception's stack as frames.
 * Everything is built with DOM calls and textContent: values come from untrusted code, and none of
 * their text is ever parsed as HTML. Children are built only when their node is opened.
 */
import type { ConsoleTable, PreviewNode } from '../src/client/index.js';
import { el } from './dom.js';

const CONTAINERS = new Set(['object', 'array', 'map', 'set', 'typedarray', 'error']);
/** How many children a closed node's one-line summary shows before `…`. */
const SUMMARY_CHILDREN = 5;

/** The value, opened one level when it is a container: what a devtools console shows for a result. */
export function renderValue(node: PreviewNode): HTMLElement {
  return renderNode(node, true);
}

/**
 * One node: a leaf as coloured text, a container as a <details> whose children come on opening.
 * `prefix` (a property's key) goes inside the container's summary, so that its children line up
 * under the key, as in a devtools console.
 */
export function renderNode(node: PreviewNode, open = false, prefix: Array<Node | string> = []): HTMLElement {
  if (!hasChildren(node)) {
    const leaf = el('span', `leaf kind-${node.kind}`, leafText(node));
    if (CONTAINERS.has(node.kind)) leaf.title = 'not walked (too deep or too large): run an expression that returns it to see it';
    return leaf;
  }
  const details = el('details', `tree kind-${node.kind}`);
  const summary = el('summary', '');
  summary.append(...prefix);
  const name = label(node);
  if (name.textContent) summary.append(name, ' ');
  summary.append(summaryOf(node));
  details.append(summary);
  let built = false;
  details.addEventListener('toggle', () => {
    if (!details.open || built) return;
    built = true;
    details.append(childrenOf(node));
  });
  details.open = open;
  return details;
}

function hasChildren(node: PreviewNode): boolean {
  return (node.props?.length ?? 0) > 0 || (node.entries?.length ?? 0) > 0 || (node.items?.length ?? 0) > 0 || (node.frames?.length ?? 0) > 0;
}

/** `Point`, `Array(3)`, `Map(2)`, `TypeError: …`: what a container is, before its contents. */
function label(node: PreviewNode): HTMLElement {
  const size = node.size === undefined ? '' : `(${node.size})`;
  switch (node.kind) {
    case 'array':
      return el('span', 'class-name', `${node.class && node.class !== 'Array' ? node.class : 'Array'}${size}`);
    case 'map':
      return el('span', 'class-name', `Map${size}`);
    case 'set':
      return el('span', 'class-name', `Set${size}`);
    case 'typedarray':
      return el('span', 'class-name', `${node.class ?? 'TypedArray'}${size}`);
    case 'error':
      return el('span', 'leaf kind-error', node.text ?? node.class ?? 'Error');
    case 'function':
    case 'class':
      // A function or class with properties of its own (static members): named as a leaf is.
      return el('span', `leaf kind-${node.kind}`, leafText(node));
    default:
      return el('span', 'class-name', node.class === null ? '[Object: null prototype]' : node.class && node.class !== 'Object' ? node.class : '');
  }
}

/** The contents in one line, shortened: `{x: 1, y: {…}}`, `[1, 2, 3]`, `{'a' => 1}`. */
function summaryOf(node: PreviewNode): string {
  const parts: string[] = [];
  let left = node.more ?? 0;
  const take = <T>(list: T[] | undefined, show: (item: T) => string) => {
    for (const item of list ?? []) {
      if (parts.length < SUMMARY_CHILDREN) parts.push(show(item));
      else left++;
    }
  };
  if (node.kind === 'error') return '';
  if (node.entries) take(node.entries, ([key, value]) => `${short(key)} => ${short(value)}`);
  else if (node.items) take(node.items, short);
  else take(node.props, ([key, value]) => (node.kind === 'array' || node.kind === 'typedarray') && /^\d+$/.test(key) ? short(value) : `${key}: ${short(value)}`);
  if (left > 0) parts.push('…');
  const [open, close] = node.kind === 'array' || node.kind === 'typedarray' ? ['[', ']'] : ['{', '}'];
  return `${open}${parts.join(', ')}${close}`;
}

/** A child inside a one-line summary: leaves as text, containers as `{…}` or `[…]`. */
function short(node: PreviewNode): string {
  if (node.kind === 'array' || node.kind === 'typedarray') return node.size === undefined ? '[…]' : `${node.class && node.class !== 'Array' ? node.class : 'Array'}(${node.size})`;
  if (node.kind === 'map' || node.kind === 'set') return `${node.kind === 'map' ? 'Map' : 'Set'}(${node.size ?? '…'})`;
  if (CONTAINERS.has(node.kind) && node.kind !== 'error') return node.class && node.class !== 'Object' ? `${node.class} {…}` : '{…}';
  return leafText(node);
}

/** A leaf's text as the REPL shows it: strings quoted, functions and classes named. */
export function leafText(node: PreviewNode): string {
  const text = node.text ?? '';
  switch (node.kind) {
    case 'string':
      return `'${text}${node.length !== undefined && node.length > text.length ? `… (${node.length} characters)` : ''}'`;
    case 'function':
      return `ƒ ${text || '(anonymous)'}`;
    case 'class':
      return `class ${text || '(anonymous)'}`;
    case 'accessor':
      return `[${text || 'Getter'}]`;
    case 'circular':
      return '[Circular]';
    case 'proxy':
      return '[Proxy]';
    case 'promise':
      return 'Promise {…}';
    case 'undefined':
    case 'null':
      return node.kind;
    default:
      if (text) return text;
      return CONTAINERS.has(node.kind) ? short({ ...node, kind: node.kind === 'error' ? 'object' : node.kind }) : `[${node.kind}]`;
  }
}

function childrenOf(node: PreviewNode): HTMLElement {
  const list = el('div', 'children');
  const row = (prefix: Array<Node | string>, value: PreviewNode) => {
    const item = el('div', 'prop');
    if (hasChildren(value)) item.append(renderNode(value, false, prefix));
    else item.append(...prefix, renderNode(value));
    list.append(item);
  };
  for (const [key, value] of node.props ?? []) row([el('span', 'key', key), ': '], value);
  // A Map key that is itself a container is named in one line: it sits inside its value's summary.
  for (const [key, value] of node.entries ?? []) row([hasChildren(key) ? el('span', 'leaf', short(key)) : renderNode(key), ' => '], value);
  for (const value of node.items ?? []) row([], value);
  if (node.more) list.append(el('div', 'more', `… ${node.more} more`));
  if (node.frames?.length) list.append(renderFrames(node.frames));
  return list;
}

/** `console.table` data: a real table, each cell a leaf's text. */
export function renderTable(table: ConsoleTable): HTMLElement {
  const wrap = el('div', 'table-wrap');
  const grid = el('table', 'console-table');
  const head = grid.createTHead().insertRow();
  for (const column of table.columns) {
    const th = el('th', '', column);
    th.scope = 'col';
    head.append(th);
  }
  const body = grid.createTBody();
  for (const cells of table.rows) {
    const row = body.insertRow();
    cells.forEach((cell, index) => {
      const td = index === 0 ? el('th', 'index') : el('td', '');
      if (index === 0) (td as HTMLTableCellElement).scope = 'row';
      if (cell) td.append(index === 0 ? cell.text ?? '' : renderNode(cell));
      row.append(td);
    });
  }
  wrap.append(grid);
  if (table.more) wrap.append(el('div', 'more', `… ${table.more} more rows`));
  return wrap;
}

/** `    at fn (REPL3:2:7)` lines as a list of frames: the function, then where. */
export function renderFrames(frames: string[]): HTMLElement {
  const list = el('ol', 'frames');
  for (const line of frames) {
    const item = el('li', '');
    const match = /^\s*at (?:(.*?) \((.*)\)|(.*))$/.exec(line);
    if (!match) item.textContent = line.trim();
    else {
      const where = match[2] ?? match[3] ?? '';
      item.append(el('span', 'fn', match[1] ?? '(anonymous)'), ' ', el('span', 'where', where));
    }
    list.append(item);
  }
  return list;
}

/** An exception: its `Name: message` heading (a stack's first lines), then its frames. */
export function renderException(name: string, message: string, stack: string): HTMLElement {
  const box = el('div', 'exception');
  const lines = stack ? stack.split('\n') : [];
  const first = lines.findIndex((line) => /^\s+at /.test(line));
  const heading = first < 0 ? (stack || `${name}: ${message}`) : lines.slice(0, first).join('\n');
  box.append(el('div', 'heading', `Uncaught ${heading || `${name}: ${message}`}`));
  if (first >= 0) box.append(renderFrames(lines.slice(first)));
  return box;
}
