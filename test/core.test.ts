import t from 'tap';
import { startServer } from './helpers/server.js';
import { payloadOf, TestClient } from './helpers/client.js';

t.test('repl state persists across executions and events stream in order', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const client = await TestClient.connect(server.url, server.token);
  t.teardown(() => client.close());
  const session = await client.createSession('core');
  const first = await client.run(session, 'let x = 41; console.log("hi"); x');
  t.same(first.events.map((e) => e.type), ['console', 'value', 'done']);
  t.same(first.events.map((e) => e.seq), [1, 2, 3]);
  t.equal(first.done.payload.status, 'ok');
  const second = await client.run(session, 'x + 1');
  t.equal(payloadOf(second.events[0], 'value').preview, '42');
});
