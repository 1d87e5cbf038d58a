/**
 * The one question host code answers about a sandbox value: what kind of object it is. node:util's
 * type checks look at V8's internal slots, so they run no user code (no getter, trap or conversion)
 * and hand nothing back but a string. The in-context code (in-context-safe.ts) asks it before it
 * reads anything of an object, so that a Proxy is never touched.
 */
import { types } from 'node:util';
import type { ValueKind } from './in-context-safe.js';

export function valueKind(value: unknown): ValueKind {
  if (types.isProxy(value)) return 'proxy';
  if (types.isNativeError(value)) return 'error';
  if (types.isMap(value)) return 'map';
  if (types.isSet(value)) return 'set';
  if (types.isDate(value)) return 'date';
  if (types.isRegExp(value)) return 'regexp';
  if (types.isPromise(value)) return 'promise';
  if (types.isTypedArray(value)) return 'typedarray';
  if (types.isWeakMap(value)) return 'weakmap';
  if (types.isWeakSet(value)) return 'weakset';
  if (types.isBoxedPrimitive(value)) return 'boxed';
  if (types.isArrayBuffer(value)) return 'arraybuffer';
  if (types.isDataView(value)) return 'dataview';
  if (types.isMapIterator(value) || types.isSetIterator(value) || types.isGeneratorObject(value)) return 'iterator';
  return 'other';
}
