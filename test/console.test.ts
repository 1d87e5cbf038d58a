/**
 * The web console end to end, in Debian's headless Chromium driven by playwright-core: type code,
 * run it, see it stream; the connection cut mid-stream (by a proxy in front of the server) and the
 * server killed and restarted on its data and port mid-stream: the page resumes each time and
 * shows every line the server logged, once. Screenshots go to test-output/console.png, and to
 * docs/console.png when that is missing or VMSTREAM_UPDATE_SCREENSHOTS=1.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { chromium, type Locator } from 'playwright-core';
import { FrameProxy } from './helpers/proxy.js';
import { linesCode, loggedLines, restart, startOnFixedPort } from './helpers/sdk.js';
import { ROOT, startServer, tempDir } from './helpers/server.js';

const CHROMIUM = '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is needed for this test: apt-get install -y chromium (npm test installs it: scripts/system-packages.mjs)`);
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const range = (n: number) => Array.from({ length: n }, (_, i) => `line ${i + 1}`);

t.test('the console runs code and resumes, line for line, after a cut connection and a server restart', async (t) => {
  let server = await startOnFixedPort({ env: { VMSTREAM_CONSOLE: '1' } });
  t.teardown(() => server.stop());
  const proxy = await FrameProxy.start(server.port);
  t.teardown(() => proxy.close());
  const context = await chromium.launchPersistentContext(tempDir('chromium'), { executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1200, height: 900 } });
  t.teardown(() => context.close());
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  const blocks = page.locator('#output .execution');
  const run = async (code: string): Promise<Locator> => {
    const count = await blocks.count();
    await page.fill('#editor', code);
    await page.keyboard.press('Control+Enter');
    return blocks.nth(count);
  };

  await page.goto(`http://127.0.0.1:${proxy.port}/?token=${server.token}`);
  await page.waitForSelector('#status[data-status="connected"]');
  t.equal(new URL(page.url()).search, '', 'the token is taken out of the address bar');

  const first = await run('let kept = 41; console.log("hello from the console"); kept + 1');
  await first.locator('.done').waitFor();
  t.same(await first.locator('.line').allInnerTexts(), ['hello from the console', '42']);
  t.equal(await page.locator('#executions li').first().getAttribute('data-status'), 'ok');

  // The proxy cuts the socket right before event 8 of the first connection.
  proxy.filter = (frame, raw, connection) => (connection === 1 && frame.op === 'event' && frame.seq === 8 ? 'cut' : [raw]);
  const second = await run(linesCode(20, 10));
  await second.locator('.done').waitFor();
  t.equal(proxy.upgrades, 2, 'one reconnect');
  t.equal(await second.getAttribute('data-status'), 'ok');
  t.same(await second.locator('.line.console').allInnerTexts(), range(20), 'every line once, in order');
  t.same(await second.locator('.note').allInnerTexts(), ['connection lost: reconnecting…', 'reconnected: resuming after event 7']);
  mkdirSync(path.join(ROOT, 'test-output'), { recursive: true });
  const shot = path.join(ROOT, 'test-output', 'console.png');
  await page.screenshot({ path: shot });
  const docs = path.join(ROOT, 'docs', 'console.png');
  if (process.env.VMSTREAM_UPDATE_SCREENSHOTS === '1' || !existsSync(docs)) copyFileSync(shot, docs);

  // The server is killed in the middle of a stream and started again on the same data and port.
  proxy.filter = null;
  const third = await run(linesCode(2000, 5));
  await third.locator('.line.console', { hasText: /^line 20$/ }).waitFor();
  await server.kill();
  await third.locator('.note', { hasText: 'connection lost' }).waitFor();
  server = await restart(server, { VMSTREAM_CONSOLE: '1' });
  await third.locator('.done').waitFor();
  t.equal(await third.getAttribute('data-status'), 'crashed', 'the restart ended it');
  const shown = await third.locator('.line.console').allInnerTexts();
  const stored = await loggedLines(server, (await third.getAttribute('data-id'))!);
  t.ok(stored.length >= 20, `the server logged ${stored.length} lines before it was killed`);
  t.same(shown, stored, 'the page shows every logged line, once, in order');

  const fourth = await run('kept');
  await fourth.locator('.done').waitFor();
  t.match(await fourth.locator('.note').innerText(), /session restored on the server/);
  t.same(await fourth.locator('.line').allInnerTexts(), ['41']);
  await page.screenshot({ path: path.join(ROOT, 'test-output', 'console-after-restart.png') });

  // A reload replays the session's executions from the server's log.
  await page.reload();
  await page.waitForSelector('#status[data-status="connected"]');
  await page.locator('#executions li[data-status="ok"]').nth(2).waitFor();
  t.same(await page.locator('#executions li').evaluateAll((items) => items.map((item) => item.getAttribute('data-status'))), ['ok', 'crashed', 'ok', 'ok']);
  await blocks.nth(1).locator('.done').waitFor();
  t.same(await blocks.nth(1).locator('.line.console').allInnerTexts(), range(20), 'replayed from the log');
  t.same(pageErrors, [], 'no error in the page');
});

t.test('the console is served with a strict policy, and not at all when turned off', async (t) => {
  const on = await startServer({ env: { VMSTREAM_CONSOLE: '1' } });
  t.teardown(() => on.stop());
  const page = await fetch(`http://127.0.0.1:${on.port}/`);
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type'), /^text\/html/);
  t.match(page.headers.get('content-security-policy'), /default-src 'self'/);
  t.equal(page.headers.get('referrer-policy'), 'no-referrer', 'the token in the URL goes nowhere else');
  const script = /src="(\/assets\/[^"]+\.js)"/.exec(await page.text())![1]!;
  const asset = await fetch(`http://127.0.0.1:${on.port}${script}`);
  t.equal(asset.status, 200);
  t.match(asset.headers.get('cache-control'), /immutable/);
  t.equal((await fetch(`http://127.0.0.1:${on.port}/assets/nope.js`)).status, 404);
  t.equal((await fetch(`http://127.0.0.1:${on.port}/healthz`)).status, 200, 'the API behind it still answers');

  const off = await startServer({ env: { VMSTREAM_CONSOLE: '0' } });
  t.teardown(() => off.stop());
  t.equal((await fetch(`http://127.0.0.1:${off.port}/`)).status, 404);
});
