/**
 * Socket upgrades answered after an await (a tenant token's first check awaits scrypt, a Jupyter
 * channel its kernel): the socket must stay open once the client saw it open. uWS's res.cork() used to
 * read a just-upgraded socket's memory as HTTP response state and could close it right after
 * `open` (1006, no frame), as CI saw after a refused upgrade (see upgrade() in
 * src/transport/uws-server.ts). What it read was whatever the heap held; here glibc fills freed
 * memory with 0x10 (MALLOC_PERTURB_, the thread cache off so that every free is filled), which
 * reads as "connection: close, response done": the old code then closed every such socket, not
 * one in four to nine. Another C library ignores both variables: the loop still runs, less sharp.
 */
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t, { type Test } from 'tap';
import { newTenantLine } from '../src/auth/tenants.js';
import { startServer, tempDir, type TestServer } from './helpers/server.js';
import { TestClient } from './helpers/client.js';

/** Refused-then-accepted rounds, the shape CI saw. */
const ROUNDS = 20;
/** Freed memory reads as uWS's HTTP_CONNECTION_CLOSE bit (16) without HTTP_RESPONSE_PENDING (8). */
const STRAY_HEAP = { MALLOC_PERTURB_: '16', GLIBC_TUNABLES: 'glibc.malloc.tcache_count=0' };

/** A tokens file with `count` tenants, and their tokens. */
async function tenants(count: number): Promise<{ file: string; tokens: string[] }> {
  const file = path.join(tempDir('upgrade-async'), 'tokens');
  const made = await Promise.all(Array.from({ length: count }, (_, index) => newTenantLine(`tenant${index}`)));
  writeFileSync(file, `${made.map(({ line }) => line).join('\n')}\n`, { mode: 0o600 });
  return { file, tokens: made.map(({ token }) => token) };
}

function startWithTenants(t: Test, file: string, env: Record<string, string> = {}): Promise<TestServer> {
  return startServer({ env: { VMSTREAM_TOKENS_FILE: file, VMSTREAM_TOKEN: '', ...env } }).then((server) => {
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
  const server = await startWithTenants(t, file, STRAY_HEAP);
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

t.test('a remembered token is answered inside uWS\'s own cork: its sockets stay open, uWS warns only the first time', async (t) => {
  const { file, tokens } = await tenants(1);
  const server = await startWithTenants(t, file, STRAY_HEAP);
  const warnings = () => server.stderr().split('\n').filter((line) => line.includes('corked callback')).length;
  for (let round = 0; round < 5; round++) {
    const client = await TestClient.connect(server.url, tokens[0]!);
    const outcome = await Promise.race([client.request({ op: 'ping' }), client.closed]);
    t.equal((outcome as { op?: string }).op, 'pong', `socket ${round} answers`);
    await client.close();
  }
  t.equal(warnings(), 1, 'one warning: the first socket, whose token went through scrypt');
});
