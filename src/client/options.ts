/**
 * Client options: frozen defaults, each given option checked once at connect and named in its
 * TypeError (test/client-options.test.ts pins every message), contradictory pairs refused.
 */
import type { WebSocketConstructor } from './socket.js';

export interface ClientOptions {
  /** The token; otherwise the `?token=` of the URL. */
  token?: string;
  /** How long a request waits for its reply, queueing while disconnected included. */
  requestTimeoutMs?: number;
  /** How long one connection attempt may take. */
  connectTimeoutMs?: number;
  /** A `ping` this often finds a dead socket the OS has not noticed; 0 turns it off. */
  pingIntervalMs?: number;
  /** Reconnect when the socket drops (default true). */
  reconnect?: boolean;
  /** Attempts per outage before giving up; Infinity never gives up. */
  maxReconnectAttempts?: number;
  /** Delay before the first attempt; it doubles per attempt up to maxReconnectDelayMs. */
  reconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
  /** Fraction of each delay that is random (0: none, 1: anywhere from 0 to the delay). */
  reconnectJitter?: number;
  /** A WebSocket class to use instead of the global one (browsers, Node 22) or `ws` (Node 20). */
  WebSocket?: WebSocketConstructor;
}

export type ResolvedOptions = Required<Omit<ClientOptions, 'token' | 'WebSocket'>> & Pick<ClientOptions, 'token' | 'WebSocket'>;

export const CLIENT_DEFAULTS = Object.freeze({
  requestTimeoutMs: 15_000,
  connectTimeoutMs: 10_000,
  pingIntervalMs: 20_000,
  reconnect: true,
  maxReconnectAttempts: Infinity,
  reconnectDelayMs: 100,
  maxReconnectDelayMs: 5_000,
  reconnectJitter: 0.5,
} satisfies Omit<ResolvedOptions, 'token' | 'WebSocket'>);

const POSITIVE = ['requestTimeoutMs', 'connectTimeoutMs', 'reconnectDelayMs', 'maxReconnectDelayMs'] as const;

export function resolveOptions(options: ClientOptions = {}): ResolvedOptions {
  if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, got ${describe(options)}`);
  const resolved: ResolvedOptions = { ...CLIENT_DEFAULTS, ...stripUndefined(options) };
  for (const name of POSITIVE) {
    const value = resolved[name];
    if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`options.${name} must be a positive integer, got ${describe(value)}`);
  }
  const ping = resolved.pingIntervalMs;
  if (!Number.isSafeInteger(ping) || ping < 0) throw new TypeError(`options.pingIntervalMs must be 0 (off) or a positive integer, got ${describe(ping)}`);
  const attempts = resolved.maxReconnectAttempts;
  if (attempts !== Infinity && (!Number.isSafeInteger(attempts) || attempts < 1)) {
    throw new TypeError(`options.maxReconnectAttempts must be a positive integer or Infinity, got ${describe(attempts)}`);
  }
  const jitter = resolved.reconnectJitter;
  if (typeof jitter !== 'number' || !(jitter >= 0 && jitter <= 1)) throw new TypeError(`options.reconnectJitter must be a number from 0 to 1, got ${describe(jitter)}`);
  if (typeof resolved.reconnect !== 'boolean') throw new TypeError(`options.reconnect must be a boolean, got ${describe(resolved.reconnect)}`);
  if (resolved.token !== undefined && (typeof resolved.token !== 'string' || resolved.token === '')) {
    throw new TypeError(`options.token must be a non-empty string, got ${describe(resolved.token)}`);
  }
  if (resolved.WebSocket !== undefined && typeof resolved.WebSocket !== 'function') {
    throw new TypeError(`options.WebSocket must be a WebSocket class, got ${describe(resolved.WebSocket)}`);
  }
  if (resolved.reconnectDelayMs > resolved.maxReconnectDelayMs) {
    throw new TypeError('options.reconnectDelayMs must not exceed options.maxReconnectDelayMs');
  }
  if (!resolved.reconnect && options.maxReconnectAttempts !== undefined) {
    throw new TypeError('options.maxReconnectAttempts has no effect with options.reconnect false: give one or the other');
  }
  return resolved;
}

/** The wait before reconnect attempt `attempt` (1-based): doubling, capped, with its jittered part. */
export function reconnectDelay(options: ResolvedOptions, attempt: number, random = Math.random()): number {
  const base = Math.min(options.maxReconnectDelayMs, options.reconnectDelayMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(base * (1 - options.reconnectJitter * random));
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  if (value === null) return 'null';
  if (typeof value === 'object') return Array.isArray(value) ? 'an array' : 'an object';
  return String(value);
}
