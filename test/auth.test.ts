import t from 'tap';
import WebSocket from 'ws';
import { TestClient } from './helpers/client.js';
import { serverFor, sync } from './helpers/util.js';

/** Tries an upgrade; resolves with the HTTP status of a refusal, or 101 when a socket opened. */
function tryUpgrade(url: string, headers: Record<string, string> = {}): Promise<{ status: number; opened: boolean }> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, { headers });
    socket.once('open', () => {
      socket.close();
      resolve({ status: 101, opened: true });
    });
    socket.once('unexpected-response', (_request, response) => {
      response.resume();
      resolve({ status: response.statusCode ?? 0, opened: false });
    });
    socket.once('error', () => { /* reported through unexpected-response */ });
  });
}

t.test('upgrade without a token or with a wrong one is refused with 401; both token forms work', async (t) => {
  const server = await serverFor(t);
  const bare = server.url.split('?')[0]!;

  const none = await tryUpgrade(bare);
  t.same(none, { status: 401, opened: false }, 'no token → 401, no socket');
  const wrongBearer = await tryUpgrade(bare, { authorization: 'Bearer not-the-token-at-all' });
  t.same(wrongBearer, { status: 401, opened: false }, 'wrong bearer token → 401');
  const wrongQuery = await tryUpgrade(`${bare}?token=not-the-token-at-all`);
  t.same(wrongQuery, { status: 401, opened: false }, 'wrong query token → 401');
  const emptyQuery = await tryUpgrade(`${bare}?token=`);
  t.same(emptyQuery, { status: 401, opened: false }, 'empty query token → 401');
  const prefix = await tryUpgrade(bare, { authorization: `Bearer ${server.token.slice(0, -1)}` });
  t.same(prefix, { status: 401, opened: false }, 'a prefix of the token → 401');
  const longer = await tryUpgrade(`${bare}?token=${encodeURIComponent(`${server.token}x`)}`);
  t.same(longer, { status: 401, opened: false }, 'the token plus a character → 401');
  const notBearer = await tryUpgrade(bare, { authorization: `Basic ${server.token}` });
  t.same(notBearer, { status: 401, opened: false }, 'another scheme → 401');

  const byHeader = await TestClient.connect(bare, server.token);
  t.teardown(() => byHeader.close());
  await sync(byHeader);
  t.equal((await byHeader.request({ op: 'session.list' })).op, 'sessions', 'Authorization: Bearer works');

  const byQuery = await TestClient.connect(bare, server.token, { useQuery: true });
  t.teardown(() => byQuery.close());
  await sync(byQuery);
  t.equal((await byQuery.request({ op: 'session.list' })).op, 'sessions', '?token= works');
});
