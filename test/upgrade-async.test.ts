/**
 * Socket upgrades answered after an await (a token seen for the first time costs an scrypt check
 * off the main thread): the socket must stay open once the client saw it open. uWS's res.cork()
 * used to read a just-upgraded socket's memory as HTTP response state and could close it right
 * after `open` (1006, no frame), seen after a refused upgrade (see upgrade() in
 * src/transport/uws-server.ts). A handshake whose Connection header says `close` makes that read
 * deterministic, so it is the sharp test; the loop is the shape CI saw.
 */
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t, { type Test } from 'tap';
import { newTenantLine } from '../src/auth/tenants.js';
import { startServer, tempDir, type TestServer } from './helpers/server.js';
import { TestClient } from './helpers/client.js';

/** Refused-then-accepted rounds: each accepted token is new to the server, so its check is awaited. */
const ROUNDS = 40;

/** A tokens file with `count` tenants, and their tokens. */
async function tenants(count: number): Promise<{ file: string; tokens: string[] }> {
  const file = path.join(tempDir('upgrade-async'), 'tokens');
  const made = await Promise.all(Array.from({ length: count }, (_, index) => newTenantLine(`tenant${index}`)));
  writeFileSync(file, `${made.map(({ line }) => line).join('\n')}\n`, { mode: 0o600 });
  return { file, tokens: made.map(({ token }) => token) };
}

function startWithTenants(t: Test, file: string): Promise<TestServer> {
  return startServer({ env: { VMSTREAM_TOKENS_FILE: file, VMSTREAM_TOKEN: '' } }).then((server) => {
    t.teardown(() => server.stop());
    return server;
  });
}

/** Sends a raw upgrade request and resolves with the status line and whatever followed it. */
function rawUpgrade(server: TestServer, headers: Record<string, string>): Promise<{ status: string; closed: boolean }> {
  const { port, pathname } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1');
    let received = '';
    socket.setEncoding('latin1');
    socket.on('connect', () => {
      const lines = Object.entries({
        host: `127.0.0.1:${port}`,
        upgrade: 'websocket',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'sec-websocket-version': '13',
        ...headers,
      }).map(([name, value]) => `${name}: ${value}\r\n`);
      socket.write(`GET ${pathname} HTTP/1.1\r\n${lines.join('')}\r\n`);
    });
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (!received.includes('\r\n\r\n')) return;
      const status = received.slice(0, received.indexOf('\r\n'));
      if (!status.includes(' 101 ')) {
        socket.destroy();
        resolve({ status, closed: false });
        return;
      }
      // Upgraded: a ping frame (masked, as a client's must be) is answered unless the server closed the socket.
      received = '';
      socket.removeAllListeners('data');
      socket.on('data', () => {
        socket.destroy();
        resolve({ status, closed: false });
      });
      socket.on('end', () => resolve({ status, closed: true }));
      socket.write(Buffer.from([0x89, 0x80, 1, 2, 3, 4]));
    });
    socket.on('error', reject);
  });
}

t.test('a handshake whose Connection header is not Upgrade is refused, never opened and closed at once', async (t) => {
  const { file, tokens } = await tenants(2);
  const server = await startWithTenants(t, file);
  // A token the server has not seen: its check is awaited, so the answer comes after the upgrade callback.
  const refused = await rawUpgrade(server, { connection: 'close', authorization: `Bearer ${tokens[0]}` });
  t.match(refused.status, /^HTTP\/1\.1 400 /, 'Connection: close is refused with 400 (it used to be 101, then closed)');
  const accepted = await rawUpgrade(server, { connection: 'keep-alive, Upgrade', authorization: `Bearer ${tokens[1]}` });
  t.match(accepted.status, /^HTTP\/1\.1 101 /, 'a Connection list holding Upgrade is a handshake');
  t.notOk(accepted.closed, 'and its socket answers a ping');
});

t.test('a socket opened right after a refused upgrade stays open and answers', async (t) => {
  const { file, tokens } = await tenants(ROUNDS);
  const server = await startWithTenants(t, file);
  for (const [round, token] of tokens.entries()) {
    // A known tenant with a wrong secret: refused after the scrypt check, like a revoked token.
    await t.rejects(TestClient.connect(server.url, `${token}x`), /401/, `round ${round}: refused`);
    const client = await TestClient.connect(server.url, token);
    const outcome = await Promise.race([client.request({ op: 'ping' }), client.closed]);
    if (!t.equal((outcome as { op?: string }).op, 'pong', `round ${round}: the next socket answers`)) {
      t.comment(server.stderr().split('\n').slice(-8).join('\n'));
      break;
    }
    await client.close();
  }
});
