/**
 * The value previewer, evaluated inside each session's context (see in-context.ts). One bounded
 * walk turns a value into a tree of plain data (protocol/types.ts `PreviewNode`): breadth first, so
 * a deep first property cannot starve its siblings, with bounds on depth, width, node count and
 * string characters, and cycles marked. The walk reads only own data properties of values that are
 * not Proxies (accessors appear as `[Getter]`), so no user getter, trap or conversion ever runs.
 * The REPL-like text preview is rendered from the tree, and the tree crosses to the host as one
 * JSON string written here: the host never reads a sandbox object.
 */
import type { PreviewKind, PreviewNode } from '../../protocol/types.js';
import type { ErrorTools } from './in-context-errors.js';
import type { Safe } from './in-context-safe.js';

export interface PreviewLimits {
  /** Nodes per preview (each property, item or entry is one). */
  maxNodes: number;
  /** Children shown per object, array, map or set. */
  maxWidth: number;
  /** Levels walked below the value itself. */
  maxDepth: number;
  /** Levels the text preview shows (deeper objects as `[Object]`). */
  textDepth: number;
  /** Characters of each string leaf, and of all string leaves and keys of one preview together. */
  leafChars: number;
  totalChars: number;
  /**
   * Characters of the strings one preview may cut. Cutting a rope copies all of it (V8 flattens it,
   * for good: the copy lives as long as the string), so past this a long string shows its length only.
   */
  flattenChars: number;
}

export interface Previewer {
  /** The text preview of any value, within `max` characters (plus the cut note of `cut`). */
  text(value: unknown, quoted: boolean, max: number): string;
  /** The tree of an object or function, and its text; primitives have no tree. */
  tree(value: object, budget?: PreviewBudget): { node: PreviewNode; text: string };
  /** Text of a node rendered as the REPL would (used for console lines of several parts). */
  render(node: PreviewNode, quoted: boolean): string;
  /** A leaf node for a short string (a table's index). */
  leaf(text: string): PreviewNode;
  /** A fresh budget of nodes and characters, for values previewed together (a line's parts, a table's cells). */
  budget(): PreviewBudget;
  /** A leaf node for a value (an object not walked), or an accessor's node when `accessor` is given. */
  cell(budget: PreviewBudget, value: unknown, accessor: string | undefined): PreviewNode;
  /** A cell's text: objects as `[Object]`. */
  renderCell(node: PreviewNode, quoted: boolean): string;
  /** JSON of nodes we built (their fields are known, their strings bounded); `null` for a missing one. */
  encode(node: PreviewNode | Array<PreviewNode | null>): string;
  /** JSON of a string. */
  json(text: string): string;
}

/** What is left of a preview's node and character bounds. */
export interface PreviewBudget { nodes: number; chars: number; flatten: number }

export function inContextPreviewer(safe: Safe, errors: ErrorTools, limits: PreviewLimits): Previewer {
  'use strict';
  const { apply, ownKeys, getDescriptor, getProto, isArray, push, join, kindOf, ownProperty, constructorName, cut, quote, primitiveText, functionName, isClass, StringCtor } = safe;
  const create = Object.create;
  const jsonStringify = JSON.stringify;
  const mapEntries = Map.prototype.entries;
  const setValues = Set.prototype.values;
  const mapIteratorNext = (getProto(new Map().entries()) as { next: Function }).next;
  const setIteratorNext = (getProto(new Set().values()) as { next: Function }).next;
  const mapSize = getDescriptor(Map.prototype, 'size')!.get!;
  const setSize = getDescriptor(Set.prototype, 'size')!.get!;
  const dateGetTime = Date.prototype.getTime;
  const dateToISO = Date.prototype.toISOString;
  const regexpSource = getDescriptor(RegExp.prototype, 'source')!.get!;
  const REGEXP_FLAGS: Array<[string, Function]> = [];
  for (const [flag, name] of [['d', 'hasIndices'], ['g', 'global'], ['i', 'ignoreCase'], ['m', 'multiline'], ['s', 'dotAll'], ['u', 'unicode'], ['v', 'unicodeSets'], ['y', 'sticky']]) {
    const getter = getDescriptor(RegExp.prototype, name!)?.get;
    if (getter) REGEXP_FLAGS.push([flag!, getter]);
  }
  const TypedArrayProto = getProto(Uint8Array.prototype)!;
  const typedArrayLength = getDescriptor(TypedArrayProto, 'length')!.get!;
  const typedArrayName = getDescriptor(TypedArrayProto, Symbol.toStringTag)!.get!;
  const bufferByteLength = getDescriptor(ArrayBuffer.prototype, 'byteLength')!.get!;
  const BOXED: Array<[string, Function]> = [
    ['Number', Number.prototype.valueOf], ['String', String.prototype.valueOf], ['Boolean', Boolean.prototype.valueOf],
    ['BigInt', BigInt.prototype.valueOf], ['Symbol', Symbol.prototype.valueOf],
  ];
  const symbolToString = Symbol.prototype.toString;
  const { max: mathMax, min: mathMin } = Math;
  const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

  /** One value waiting to be walked: its node, depth and the chain of values above it. */
  interface Job { value: object; node: PreviewNode; depth: number; parent: Job | null }
  /** The state of one preview: what is left of its bounds, and the walk's queue. */
  interface Walk extends PreviewBudget { queue: Job[] }

  function node(kind: PreviewKind): PreviewNode {
    const made = create(null) as PreviewNode;
    made.kind = kind;
    return made;
  }

  /**
   * At most `leafChars` of `text`, fewer once the preview's strings and keys have used their share;
   * none of a long string once the preview has cut its share of them.
   */
  function budgeted(walk: Walk | null, text: string): [string, number] {
    const room = walk === null ? limits.leafChars : mathMax(16, mathMin(limits.leafChars, walk.chars));
    if (text.length <= room) {
      if (walk !== null) walk.chars -= text.length;
      return [text, 0];
    }
    if (walk !== null) {
      if (text.length > walk.flatten) return ['', text.length];
      walk.flatten -= text.length;
    }
    const cutText = cut(text, room);
    if (walk !== null) walk.chars -= cutText[0].length;
    return cutText;
  }

  function stringNode(walk: Walk | null, text: string): PreviewNode {
    const made = node('string');
    const cutText = budgeted(walk, text);
    const shown = cutText[0], left = cutText[1];
    made.text = shown;
    if (left > 0) made.length = text.length;
    return made;
  }

  function leaf(value: unknown): PreviewNode {
    if (value === null) return node('null');
    if (typeof value === 'string') return stringNode(null, value);
    const made = node(typeof value as PreviewKind);
    if (value !== undefined) made.text = primitiveText(value, false, limits.leafChars);
    return made;
  }

  function shortString(text: string): PreviewNode {
    return stringNode(null, text);
  }

  function keyText(walk: Walk, key: string | symbol): string {
    if (typeof key === 'symbol') return `[${budgeted(walk, apply(symbolToString, key, []) as string)[0]}]`;
    return budgeted(walk, key)[0];
  }

  function regexpText(value: object): string {
    let flags = '';
    for (let index = 0; index < REGEXP_FLAGS.length; index++) {
      const flagEntry = REGEXP_FLAGS[index]!;
      const flag = flagEntry[0], getter = flagEntry[1];
      if (apply(getter, value, [])) flags += flag;
    }
    return `/${cut(apply(regexpSource, value, []) as string, limits.leafChars)[0]}/${flags}`;
  }

  function boxedText(value: object): string {
    for (let index = 0; index < BOXED.length; index++) {
      const box = BOXED[index]!;
      const name = box[0], valueOf = box[1];
      try {
        return `${name}: ${primitiveText(apply(valueOf, value, []), true, limits.leafChars)}`;
      } catch { /* not this kind of box */ }
    }
    return 'Object';
  }

  /** The node for one value: a leaf, or a shell queued to be walked when bounds allow. */
  function shell(walk: Walk, value: unknown, depth: number, parent: Job | null): PreviewNode {
    walk.nodes--;
    if (typeof value === 'string') return stringNode(walk, value);
    if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return leaf(value);
    for (let job = parent; job !== null; job = job.parent) if (job.value === value) return node('circular');
    const kind = kindOf(value);
    if (kind === 'proxy') return node('proxy');
    if (typeof value === 'function') {
      const made = node(isClass(value) ? 'class' : 'function');
      made.text = functionName(value);
      return made;
    }
    let made: PreviewNode;
    switch (kind) {
      case 'date': {
        made = node('date');
        const time = apply(dateGetTime, value, []) as number;
        made.text = time === time ? apply(dateToISO, value, []) as string : 'Invalid Date';
        return made;
      }
      case 'regexp': made = node('regexp'); made.text = regexpText(value); return made;
      case 'promise': return node('promise');
      case 'weakmap': return node('weakmap');
      case 'weakset': return node('weakset');
      case 'boxed': made = node('boxed'); made.text = boxedText(value); return made;
      case 'arraybuffer': made = node('arraybuffer'); made.size = apply(bufferByteLength, value, []) as number; return made;
      case 'error': {
        made = node('error');
        made.text = budgeted(walk, errors.header(value).text)[0];
        made.class = constructorName(value);
        // Reading the frames out of the stack flattens it: it counts against the same share.
        const stack = errors.stackOf(value);
        made.frames = stack === undefined || stack.length > walk.flatten ? [] : errors.frames(stack, 50);
        if (stack !== undefined && stack.length <= walk.flatten) walk.flatten -= stack.length;
        break;
      }
      case 'map': made = node('map'); made.size = apply(mapSize, value, []) as number; subclass(made, value, 'Map'); break;
      case 'set': made = node('set'); made.size = apply(setSize, value, []) as number; subclass(made, value, 'Set'); break;
      case 'typedarray':
        made = node('typedarray');
        made.class = apply(typedArrayName, value, []) as string;
        made.size = apply(typedArrayLength, value, []) as number;
        break;
      default:
        if (isArray(value)) {
          made = node('array');
          made.size = (value as unknown[]).length;
          subclass(made, value, 'Array');
        } else {
          made = node('object');
          const name = constructorName(value);
          if (name !== 'Object') made.class = name;
        }
    }
    if (depth <= limits.maxDepth && walk.nodes > 0) push(walk.queue, { value, node: made, depth, parent });
    return made;
  }

  /** Names the class of an instance of a subclass (`class Registry extends Map`). */
  function subclass(made: PreviewNode, value: object, base: string): void {
    const name = constructorName(value);
    if (name !== base) made.class = name;
  }

  function propertyNode(walk: Walk, target: object, key: string | symbol, job: Job): PreviewNode | null {
    const property = ownProperty(target, key);
    if (property === undefined) return null;
    if (property.accessor !== undefined) {
      walk.nodes--;
      const made = node('accessor');
      made.text = property.accessor;
      return made;
    }
    return shell(walk, property.value, job.depth + 1, job);
  }

  function walkProps(walk: Walk, job: Job, skip: string | null): void {
    const { value, node: made } = job;
    const keys = ownKeys(value);
    const props: Array<[string, PreviewNode]> = [];
    let more = 0;
    for (let index = 0; index < keys.length; index++) {
      const key = keys[index]!;
      if (key === skip || key === 'stack' && made.kind === 'error') continue;
      // An error's `cause` is shown as Node shows it, though it is not enumerable.
      const cause = key === 'cause' && made.kind === 'error';
      if (props.length >= limits.maxWidth || walk.nodes <= 0) {
        if (index < 100_000 && (cause || ownProperty(value, key)?.enumerable)) more++;
        continue;
      }
      const property = ownProperty(value, key);
      if (property === undefined || !(property.enumerable || cause)) continue;
      push(props, [cause ? '[cause]' : keyText(walk, key), propertyNode(walk, value, key, job)!]);
    }
    made.props = props;
    if (more > 0) made.more = more;
  }

  function walkArrayLike(walk: Walk, job: Job, typed: boolean): void {
    const { value, node: made } = job;
    const props: Array<[string, PreviewNode]> = [];
    const length = made.size!;
    let index = 0;
    // Holes count against the width, as they do in Node: a sparse array is not walked to its end.
    for (; index < length && index < limits.maxWidth && walk.nodes > 0; index++) {
      const key = StringCtor(index);
      const child = typed ? shell(walk, (value as Record<string, unknown>)[key], job.depth + 1, job) : propertyNode(walk, value, key, job);
      if (child !== null) push(props, [key, child]);
    }
    made.props = props;
    if (index < length) made.more = length - index;
  }

  function walkCollection(walk: Walk, job: Job, isMap: boolean): void {
    const { value, node: made } = job;
    const iterator = apply(isMap ? mapEntries : setValues, value, []);
    const next = isMap ? mapIteratorNext : setIteratorNext;
    const entries: Array<[PreviewNode, PreviewNode]> = [];
    const items: PreviewNode[] = [];
    let shown = 0;
    for (; shown < limits.maxWidth && walk.nodes > 0; shown++) {
      const step = apply(next, iterator, []) as IteratorResult<unknown>;
      if (step.done) break;
      if (isMap) {
        const entry = step.value as [unknown, unknown];
        push(entries, [shell(walk, entry[0], job.depth + 1, job), shell(walk, entry[1], job.depth + 1, job)]);
      } else {
        push(items, shell(walk, step.value, job.depth + 1, job));
      }
    }
    if (isMap) made.entries = entries;
    else made.items = items;
    if (shown < made.size!) made.more = made.size! - shown;
  }

  function expand(walk: Walk, job: Job): void {
    switch (job.node.kind) {
      case 'array': walkArrayLike(walk, job, false); break;
      case 'typedarray': walkArrayLike(walk, job, true); break;
      case 'map': walkCollection(walk, job, true); break;
      case 'set': walkCollection(walk, job, false); break;
      case 'error': walkProps(walk, job, 'message'); break;
      default: walkProps(walk, job, null);
    }
  }

  function build(value: object, walk: Walk): PreviewNode {
    walk.queue = [];
    const root = shell(walk, value, 0, null);
    for (let index = 0; index < walk.queue.length; index++) expand(walk, walk.queue[index]!);
    return root;
  }

  // --- text, from a tree ---

  function joinParts(open: string, parts: string[], close: string): string {
    return parts.length === 0 ? `${open}${close}` : `${open} ${join(parts, ', ')} ${close}`;
  }

  function moreText(made: PreviewNode, parts: string[], one: string, many: string): void {
    if (made.more !== undefined) push(parts, `... ${made.more} more ${made.more === 1 ? one : many}`);
  }

  function propsText(made: PreviewNode, depth: number, array: boolean): string[] {
    const parts: string[] = [];
    const props = made.props!;
    // Holes in an array show as Node shows them: `<N empty items>`.
    let expected = 0;
    const holes = (upTo: number) => {
      if (upTo > expected) push(parts, `<${upTo - expected} empty item${upTo - expected === 1 ? '' : 's'}>`);
    };
    for (let index = 0; index < props.length; index++) {
      const prop = props[index]!;
      const key = prop[0], child = prop[1];
      if (array) {
        holes(+key);
        expected = +key + 1;
        push(parts, renderAt(child, depth + 1, true));
      } else {
        push(parts, `${safe.exec(IDENTIFIER, key) !== null || key[0] === '[' ? key : quote(key, limits.leafChars)}: ${renderAt(child, depth + 1, true)}`);
      }
    }
    if (array) holes(made.size! - (made.more ?? 0));
    moreText(made, parts, array ? 'item' : 'property', array ? 'items' : 'properties');
    return parts;
  }

  function className(made: PreviewNode, fallback: string): string {
    return made.class === null ? '[Object: null prototype]' : made.class || fallback;
  }

  function renderAt(made: PreviewNode, depth: number, quoted: boolean): string {
    switch (made.kind) {
      case 'string': {
        if (!quoted) return made.text!;
        const text = quote(made.text!, limits.leafChars);
        const left = made.length === undefined ? 0 : made.length - made.text!.length;
        return left === 0 ? text : `${text}... ${left} more character${left === 1 ? '' : 's'}`;
      }
      case 'undefined': return 'undefined';
      case 'null': return 'null';
      case 'function': return made.text ? `[Function: ${made.text}]` : '[Function (anonymous)]';
      case 'class': return `[class ${made.text || '(anonymous)'}]`;
      case 'circular': return '[Circular]';
      case 'proxy': return '[Proxy]';
      case 'promise': return 'Promise { <state hidden> }';
      case 'weakmap': return 'WeakMap { <items unknown> }';
      case 'weakset': return 'WeakSet { <items unknown> }';
      case 'accessor': case 'boxed': return `[${made.text!}]`;
      case 'arraybuffer': return `ArrayBuffer { byteLength: ${made.size!} }`;
      case 'error': return made.frames!.length === 0 ? made.text! : `${made.text!}\n${join(made.frames!, '\n')}`;
      case 'array': case 'typedarray': {
        const name = made.kind === 'array' ? made.class ?? 'Array' : made.class!;
        if (made.props === undefined || depth > limits.textDepth) return `[${name}]`;
        return joinParts(name === 'Array' ? '[' : `${name}(${made.size!}) [`, propsText(made, depth, true), ']');
      }
      case 'map': case 'set': {
        const isMap = made.kind === 'map';
        const base = isMap ? 'Map' : 'Set';
        const name = made.class === undefined ? base : `${className(made, base)}(${made.size!}) [${base}]`;
        if ((isMap ? made.entries : made.items) === undefined || depth > limits.textDepth) return `[${made.class === undefined ? base : className(made, base)}]`;
        const parts: string[] = [];
        if (isMap) {
          const entries = made.entries!;
          for (let index = 0; index < entries.length; index++) push(parts, `${renderAt(entries[index]![0], depth + 1, true)} => ${renderAt(entries[index]![1], depth + 1, true)}`);
        } else {
          const items = made.items!;
          for (let index = 0; index < items.length; index++) push(parts, renderAt(items[index]!, depth + 1, true));
        }
        moreText(made, parts, 'item', 'items');
        return joinParts(made.class === undefined ? `${base}(${made.size!}) {` : `${name} {`, parts, '}');
      }
      case 'object': {
        const name = className(made, 'Object');
        if (made.props === undefined || depth > limits.textDepth) return `[${name}]`;
        return joinParts(name === 'Object' ? '{' : `${name} {`, propsText(made, depth, false), '}');
      }
      default: return made.text ?? '';
    }
  }

  function render(made: PreviewNode, quoted: boolean): string {
    return renderAt(made, 0, quoted);
  }

  function tree(value: object, shared?: PreviewBudget): { node: PreviewNode; text: string } {
    const made = build(value, (shared ?? budget()) as Walk);
    return { node: made, text: render(made, true) };
  }

  function text(value: unknown, quoted: boolean, max: number): string {
    if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return primitiveText(value, quoted, max);
    return tree(value).text;
  }

  /** A table cell: a leaf, or an object not walked; it shares `budget` with the other cells. */
  function cell(budget: PreviewBudget, value: unknown, accessor: string | undefined): PreviewNode {
    if (accessor === undefined) return shell(budget as Walk, value, limits.maxDepth + 1, null);
    budget.nodes--;
    const made = node('accessor');
    made.text = accessor;
    return made;
  }

  function budget(): PreviewBudget {
    const walk: Walk = { nodes: limits.maxNodes, chars: limits.totalChars, flatten: limits.flattenChars, queue: [] };
    return walk;
  }

  function renderCell(made: PreviewNode, quoted: boolean): string {
    return renderAt(made, limits.textDepth + 1, quoted);
  }

  // --- JSON, written here so that the host parses a string instead of reading our objects ---

  function json(text: string): string {
    return apply(jsonStringify, undefined, [text]) as string;
  }

  function encodeNode(made: PreviewNode | null): string {
    if (made === null) return 'null';
    let out = `{"kind":"${made.kind}"`;
    if (made.text !== undefined) out += `,"text":${json(made.text)}`;
    if (made.length !== undefined) out += `,"length":${made.length}`;
    if (made.class !== undefined) out += `,"class":${made.class === null ? 'null' : json(made.class)}`;
    if (made.size !== undefined) out += `,"size":${made.size}`;
    if (made.props !== undefined) {
      const parts: string[] = [];
      for (let index = 0; index < made.props.length; index++) push(parts, `[${json(made.props[index]![0])},${encodeNode(made.props[index]![1])}]`);
      out += `,"props":[${join(parts, ',')}]`;
    }
    if (made.entries !== undefined) {
      const parts: string[] = [];
      for (let index = 0; index < made.entries.length; index++) push(parts, `[${encodeNode(made.entries[index]![0])},${encodeNode(made.entries[index]![1])}]`);
      out += `,"entries":[${join(parts, ',')}]`;
    }
    if (made.items !== undefined) out += `,"items":${encodeList(made.items)}`;
    if (made.more !== undefined) out += `,"more":${made.more}`;
    if (made.frames !== undefined) {
      const parts: string[] = [];
      for (let index = 0; index < made.frames.length; index++) push(parts, json(made.frames[index]!));
      out += `,"frames":[${join(parts, ',')}]`;
    }
    return `${out}}`;
  }

  function encodeList(list: Array<PreviewNode | null>): string {
    const parts: string[] = [];
    for (let index = 0; index < list.length; index++) push(parts, encodeNode(list[index]!));
    return `[${join(parts, ',')}]`;
  }

  function encode(value: PreviewNode | Array<PreviewNode | null>): string {
    return isArray(value) ? encodeList(value) : encodeNode(value);
  }

  const previewer: Previewer = { text, tree, render, leaf: shortString, cell, budget, renderCell, encode, json };
  safe.setProto(previewer, null);
  return previewer;
}
