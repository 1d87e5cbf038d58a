/**
 * The transport's own guards: loopback by default, no public bind without a token, TLS when
 * configured, and the browser Origin allow-list.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { MAIN, startServer, tempDir } from './helpers/server.js';
import { payloadOf, TestClient } from './helpers/client.js';

t.test('binds loopback by default', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  t.match(server.url, /^ws:\/\/127\.0\.0\.1:\d+\/v1\/ws$/);
});

t.test('a non-loopback bind without a configured token is refused at start-up', async (t) => {
  const result = spawnSync(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH ?? '', VMSTREAM_HOST: '0.0.0.0', VMSTREAM_PORT: '0', VMSTREAM_DATA: tempDir('bind') },
    encoding: 'utf8',
    timeout: 20_000,
  });
  t.equal(result.status, 2);
  t.match(result.stderr, /VMSTREAM_HOST=0\.0\.0\.0 is not a loopback address/);
});

t.test('TLS when a certificate is configured', async (t) => {
  const dir = tempDir('tls');
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  const server = await startServer({ env: { VMSTREAM_TLS_CERT: cert, VMSTREAM_TLS_KEY: key } });
  t.teardown(() => server.stop());
  t.match(server.url, /^wss:\/\//);
  const client = await TestClient.connect(server.url, server.token, { insecureTls: true });
  const session = await client.createSession();
  const run = await client.run(session, '6 * 7');
  t.equal(payloadOf(run.events[0], 'value').preview, '42');
  await client.close();
});

t.test('the Origin allow-list refuses other browser origins', async (t) => {
  const server = await startServer({ env: { VMSTREAM_ORIGINS: 'http://console.example, http://localhost:5173' } });
  t.teardown(() => server.stop());
  await t.rejects(TestClient.connect(server.url, server.token, { origin: 'http://evil.example' }), /403/);
  const allowed = await TestClient.connect(server.url, server.token, { origin: 'http://localhost:5173' });
  t.equal((await allowed.request({ op: 'ping' })).op, 'pong');
  await allowed.close();
  const noOrigin = await TestClient.connect(server.url, server.token);
  t.equal((await noOrigin.request({ op: 'ping' })).op, 'pong', 'non-browser clients send no Origin');
  await noOrigin.close();
});
