/**
 * The SDK's surface without a server: the package export, every option message, the backoff,
 * the URL forms it accepts, and the error table it shares with the protocol.
 */
import t from 'tap';
import * as sdk from 'vmstream/client';
import { CLIENT_DEFAULTS, CLIENT_ERROR_CODES, Client, ERROR_CODES, ServerError, resolveTarget } from 'vmstream/client';
import { reconnectDelay, resolveOptions } from '../src/client/options.js';

t.test('vmstream/client names exactly these runtime exports', async (t) => {
  t.same(Object.keys(sdk).sort(), [
    'AbortError', 'CLIENT_DEFAULTS', 'CLIENT_ERROR_CODES', 'Client', 'ClientClosedError', 'ConnectionError', 'ERROR_CODES',
    'Execution', 'PROTOCOL_VERSION', 'RequestTimeoutError', 'ServerError', 'TERMINAL_STATUSES', 'VmstreamError', 'WS_PATH', 'resolveTarget',
  ]);
});

t.test('each bad option is named in its TypeError', async (t) => {
  const cases: Array<[object, string]> = [
    [{ requestTimeoutMs: 0 }, 'options.requestTimeoutMs must be a positive integer, got 0'],
    [{ connectTimeoutMs: '5' }, 'options.connectTimeoutMs must be a positive integer, got "5"'],
    [{ reconnectDelayMs: 1.5 }, 'options.reconnectDelayMs must be a positive integer, got 1.5'],
    [{ maxReconnectDelayMs: -1 }, 'options.maxReconnectDelayMs must be a positive integer, got -1'],
    [{ pingIntervalMs: -5 }, 'options.pingIntervalMs must be 0 (off) or a positive integer, got -5'],
    [{ maxReconnectAttempts: 0 }, 'options.maxReconnectAttempts must be a positive integer or Infinity, got 0'],
    [{ reconnectJitter: 2 }, 'options.reconnectJitter must be a number from 0 to 1, got 2'],
    [{ reconnect: 'yes' }, 'options.reconnect must be a boolean, got "yes"'],
    [{ token: '' }, 'options.token must be a non-empty string, got ""'],
    [{ WebSocket: {} }, 'options.WebSocket must be a WebSocket class, got an object'],
    [{ reconnectDelayMs: 6000 }, 'options.reconnectDelayMs must not exceed options.maxReconnectDelayMs'],
    [{ reconnect: false, maxReconnectAttempts: 3 }, 'options.maxReconnectAttempts has no effect with options.reconnect false: give one or the other'],
  ];
  for (const [options, message] of cases) t.throws(() => resolveOptions(options as never), new TypeError(message), message);
  t.throws(() => resolveOptions(null as never), new TypeError('options must be an object, got null'));
  t.same(resolveOptions({}), CLIENT_DEFAULTS);
  t.ok(Object.isFrozen(CLIENT_DEFAULTS));
  await t.rejects(Client.connect('ws://127.0.0.1:1/v1/ws', { pingIntervalMs: -5 }), TypeError, 'connect checks them first');
});

t.test('the reconnect delay doubles, is capped, and is jittered within its fraction', async (t) => {
  const options = resolveOptions({ reconnectDelayMs: 100, maxReconnectDelayMs: 1000, reconnectJitter: 0.5 });
  t.same([1, 2, 3, 4, 5, 6].map((attempt) => reconnectDelay(options, attempt, 0)), [100, 200, 400, 800, 1000, 1000]);
  t.equal(reconnectDelay(options, 3, 1), 200, 'at most half of it is taken away');
  t.equal(reconnectDelay(resolveOptions({ reconnectJitter: 0 }), 1, 0.9), 100);
});

t.test('URLs as people paste them', async (t) => {
  t.same(resolveTarget('ws://127.0.0.1:8080/v1/ws?token=abc'), { url: 'ws://127.0.0.1:8080/v1/ws', token: 'abc' });
  t.same(resolveTarget('http://localhost:8080/?token=abc'), { url: 'ws://localhost:8080/v1/ws', token: 'abc' });
  t.same(resolveTarget('https://example.test', 'given'), { url: 'wss://example.test/v1/ws', token: 'given' }, 'an explicit token wins');
  t.throws(() => resolveTarget('ftp://x'), TypeError);
  t.throws(() => resolveTarget('not a url'), TypeError);
});

t.test('the client error codes and the wire codes do not overlap; a wire error keeps its code', async (t) => {
  for (const code of Object.keys(CLIENT_ERROR_CODES)) t.notOk(Object.hasOwn(ERROR_CODES, code), code);
  for (const code of Object.keys(ERROR_CODES)) t.equal(ServerError.fromFrame({ code: code as never, message: 'm' }).code, code);
  const future = ServerError.fromFrame({ code: 'SOMETHING_NEW' as never, message: 'm' });
  t.equal(future.code, 'INTERNAL');
  t.equal(future.message, 'SOMETHING_NEW: m');
});
