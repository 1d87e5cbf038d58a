/**
 * Matches a method and path against protocol/http.ts HTTP_OPERATIONS. The table is split into
 * segments once; a dozen routes make a linear scan cheaper than any tree. Where a static segment and
 * a parameter both match (`/executions/repl` and `/executions/{execution_id}`), the route with more
 * static segments wins, as in every router people know.
 */
import type { HttpOperation, HttpOperationId } from '../../protocol/http.js';

export type RouteMatch =
  | { kind: 'found'; operation: HttpOperationId; params: Record<string, string> }
  | { kind: 'no-route' }
  | { kind: 'wrong-method'; allow: string[] };

interface Route {
  operation: HttpOperationId;
  method: string;
  /** A literal segment, or null for a parameter whose name is in `names` at the same index. */
  segments: Array<string | null>;
  names: Array<string | null>;
  statics: number;
  /** The last segment is a parameter that takes the rest of the path. */
  rest: boolean;
}

export class Router {
  readonly #routes: Route[];

  constructor(operations: Readonly<Record<HttpOperationId, HttpOperation>>) {
    this.#routes = Object.entries(operations).map(([operation, { method, path, rest }]) => {
      const parts = path.split('/').slice(1);
      const names = parts.map((part) => (part.startsWith('{') ? part.slice(1, -1) : null));
      const segments = parts.map((part, index) => (names[index] === null ? part : null));
      return { operation: operation as HttpOperationId, method, segments, names, statics: segments.filter((s) => s !== null).length, rest: rest === true };
    });
  }

  match(method: string, path: string): RouteMatch {
    const parts = path.split('/').slice(1);
    let best: Route | null = null;
    const allow = new Set<string>();
    for (const route of this.#routes) {
      if (!fits(route, parts)) continue;
      allow.add(route.method);
      if (route.method === method && (best === null || route.statics > best.statics)) best = route;
    }
    if (best === null) return allow.size > 0 ? { kind: 'wrong-method', allow: [...allow].sort() } : { kind: 'no-route' };
    const params: Record<string, string> = {};
    const last = best.segments.length - 1;
    for (let index = 0; index <= last; index++) {
      const name = best.names[index];
      if (name == null) continue;
      try {
        const taken = best.rest && index === last ? parts.slice(index) : [parts[index]!];
        params[name] = taken.map((part) => decodeURIComponent(part)).join('/');
      } catch {
        // Not valid percent-encoding: no resource can have that name.
        return { kind: 'no-route' };
      }
    }
    return { kind: 'found', operation: best.operation, params };
  }
}

function fits(route: Route, parts: string[]): boolean {
  if (route.rest ? parts.length < route.segments.length : route.segments.length !== parts.length) return false;
  for (let index = 0; index < parts.length; index++) {
    // Past the route's own segments (a rest parameter's tail) every part belongs to the parameter.
    const segment = index < route.segments.length ? route.segments[index] : null;
    if (segment === null ? parts[index] === '' : segment !== parts[index]) return false;
  }
  return true;
}
