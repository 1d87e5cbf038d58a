/**
 * `client.runCode()` against a real server: logs split into stdout (log/info/debug) and stderr
 * (warn/error), the value, the error, the handlers in order, its own session kept between calls,
 * a session of the caller's, the server-side time limit and an abort.
 */
import t from 'tap';
import { AbortError, Client } from 'vmstream/client';
import { startServer } from './helpers/server.js';

const server = await startServer();
t.teardown(() => server.stop());
const client = await Client.connect(server.url, { token: server.token });
t.teardown(() => client.close());

t.test('collects stdout, stderr and the value; the handlers see each as it comes', async (t) => {
  const seen: string[] = [];
  const result = await client.runCode('let x = 41; console.log("hi"); console.info("info"); console.debug("debug"); console.warn("careful"); console.error("bad"); x + 1', {
    onStdout: (text) => seen.push(`out:${text}`),
    onStderr: (text) => seen.push(`err:${text}`),
    onResult: (value) => seen.push(`value:${value.preview}`),
    onError: (error) => seen.push(`error:${error.message}`),
  });
  t.same(result.logs, { stdout: ['hi', 'info', 'debug'], stderr: ['careful', 'bad'] });
  t.same(result.value, { type: 'number', preview: '42' });
  t.equal(result.error, null);
  t.equal(result.status, 'ok');
  t.same(seen, ['out:hi', 'out:info', 'out:debug', 'err:careful', 'err:bad', 'value:42']);
  t.equal((await client.getExecution(result.executionId)).status, 'ok', 'executionId names the execution on the server');

  const again = await client.runCode('x');
  t.equal(again.value?.preview, '41', 'without a session the client keeps its own: x is still there');
});

t.test('an exception is the error, with onError', async (t) => {
  let reported = '';
  const result = await client.runCode('throw new TypeError("nope")', { onError: (error) => (reported = error.name) });
  t.equal(result.status, 'error');
  t.match(result.error, { name: 'TypeError', message: 'nope', stack: /TypeError: nope/ });
  t.equal(result.value, null);
  t.equal(reported, 'TypeError');
});

t.test("a session of the caller's; timeoutMs ends it on the server", async (t) => {
  const session = await client.createSession('mine');
  await client.runCode('var y = "mine"', { session });
  t.equal((await client.runCode('typeof y', { session })).value?.preview, "'string'");
  t.equal((await client.runCode('typeof y')).value?.preview, "'undefined'", 'the default session is another one');
  const late = await client.runCode('await new Promise(() => {})', { session, timeoutMs: 100 });
  t.equal(late.status, 'timeout');
  t.equal(late.reason, 'timeout');
});

t.test('an abort cancels it on the server and rejects', async (t) => {
  const controller = new AbortController();
  const running = client.runCode('console.log("started"); await new Promise(() => {})', { onStdout: () => controller.abort() , signal: controller.signal });
  const error = await running.catch((e: unknown) => e);
  t.ok(error instanceof AbortError);
  t.equal((error as AbortError).record?.status, 'cancelled');
});
