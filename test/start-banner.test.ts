/**
 * `npm start` / `npx vmstream` as a person sees it: on a terminal a one-line banner, a few log
 * lines, the two URLs last (nothing scrolls them away); the whole config only at debug level.
 */
import t from 'tap';
import { MAIN, removeDir, startServer, tempDir } from './helpers/server.js';
import { Terminal, tmuxAvailable } from './helpers/terminal.js';

if (!tmuxAvailable()) throw new Error('tmux is needed for this test: apt-get install -y tmux (npm test installs it: scripts/system-packages.mjs)');

t.test('on a terminal: a short banner, then the URLs as the last lines', async (t) => {
  const dir = tempDir('banner');
  t.teardown(() => removeDir(dir));
  const terminal = Terminal.start([process.execPath, MAIN], {
    VMSTREAM_PORT: '0', VMSTREAM_DATA: `${dir}/data`, VMSTREAM_WORKSPACE: `${dir}/ws`, VMSTREAM_WORKERS: '1',
  });
  t.teardown(() => terminal.kill());
  await terminal.waitFor('vmstream console at');
  const lines = terminal.lines().filter(Boolean);
  t.match(lines.at(-2), /^vmstream listening on ws:\/\/127\.0\.0\.1:\d+\/v1\/ws\?token=\S+$/);
  t.match(lines.at(-1), /^vmstream console at http:\/\/127\.0\.0\.1:\d+\/\?token=\S+$/);
  t.match(lines.at(-3), /^vmstream \d+\.\d+\.\d+ · 1 workers · data in \S+ · files in \S+ · logs at info \(VMSTREAM_LOG_LEVEL=debug logs the whole config\)$/);
  t.ok(lines.length <= 12, `${lines.length} lines in all: the URLs stay on the screen`);
  t.notMatch(terminal.screen(), /maxFrameBytes/, 'no config dump at info');
  terminal.keys('C-c');
  await terminal.waitFor(/INFO: stopped/);
});

t.test('at debug level the whole config is logged, the token redacted; no banner on a pipe', async (t) => {
  const server = await startServer({ env: { VMSTREAM_LOG_LEVEL: 'debug', VMSTREAM_WORKERS: '1' } });
  t.teardown(() => server.stop());
  const lines = server.stderr().split('\n').filter(Boolean).map((line) => JSON.parse(line) as { msg: string; config?: Record<string, unknown> });
  const config = lines.find((line) => line.msg === 'config')?.config;
  t.match(config, { workers: 1, token: '[redacted]', maxFrameBytes: Number });
  t.notMatch(server.stderr(), server.token);
});
