/**
 * The web console end to end, in Debian's headless Chromium driven by playwright-core: the editor
 * (completion, Shift+Enter, history), values as trees and tables, stack frames, sessions (switch,
 * a link that reopens one, a second tab that sees the first one's runs), cancelling one execution
 * of two, a connection cut mid-stream (by a proxy in front of the server) and the server killed
 * and restarted mid-stream, with the session's rebuild shown while it happens; a refused token; a
 * 360 px wide screen. Screenshots go to test-output/, and to docs/ when missing there or with
 * VMSTREAM_UPDATE_SCREENSHOTS=1.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { chromium, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { decodeValue } from '../protocol/codec.js';
import type { ServerFrame } from '../protocol/types.js';
import { FrameProxy, seqsOf } from './helpers/proxy.js';
import { linesCode, loggedLines, restart, startOnFixedPort } from './helpers/sdk.js';
import { ROOT, startServer, tempDir } from './helpers/server.js';

const CHROMIUM = '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is needed for this test: apt-get install -y chromium (npm test installs it: scripts/system-packages.mjs)`);
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const range = (n: number) => Array.from({ length: n }, (_, i) => `line ${i + 1}`);

async function browser(t: Test, viewport = { width: 1200, height: 900 }): Promise<BrowserContext> {
  const context = await chromium.launchPersistentContext(tempDir('chromium'), { executablePath: CHROMIUM, headless: true, args: ARGS, viewport });
  t.teardown(() => context.close());
  return context;
}

/**
 * A page of the console that records its errors (CSP violations included) for the end of the test,
 * and what it did for a failure's report.
 */
async function consolePage(t: Test, context: BrowserContext, errors: string[], serverLog: () => string): Promise<Page> {
  const page = context.pages().find((p) => p.url() === 'about:blank') ?? (await context.newPage());
  recordForFailure(t, page, serverLog);
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => {
    // Chromium logs each socket that cannot connect: the restart test causes those on purpose.
    if (message.type() === 'error' && !/^WebSocket connection to .* failed/.test(message.text())) errors.push(message.text());
  });
  return page;
}

/**
 * Keeps the last things `page` did (console lines, page errors, socket frames) and prints them with
 * the tail of the server's log when the test fails: a flake's cause is in there, not in a rerun.
 */
function recordForFailure(t: Test, page: Page, serverLog: () => string): void {
  const lines: string[] = [];
  const add = (line: string) => {
    lines.push(`${new Date().toISOString().slice(11, 23)} ${line}`);
    if (lines.length > 400) lines.shift();
  };
  page.on('console', (message) => add(`console.${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => add(`pageerror: ${error.message}`));
  page.on('websocket', (socket) => {
    add(`socket opened: ${socket.url().replace(/token=[^&]*/, 'token=…')}`);
    socket.on('framesent', ({ payload }) => add(`sent ${describeFrame(payload)}`));
    socket.on('framereceived', ({ payload }) => add(`received ${describeFrame(payload)}`));
    socket.on('socketerror', (error) => add(`socket error: ${error}`));
    socket.on('close', () => add('socket closed'));
  });
  t.teardown(() => {
    if (t.passing()) return;
    const log = serverLog().split('\n').slice(-60).join('\n');
    process.stderr.write(`--- ${t.name}: the page, last ${lines.length} lines ---\n${lines.join('\n')}\n--- the server's log, its tail ---\n${log}\n---\n`);
  });
}

/** A frame as one line: its op, request id, execution and seqs (payloads left out). */
function describeFrame(payload: string | Buffer): string {
  if (typeof payload === 'string') return `text ${payload.slice(0, 80)}`;
  const frame = decodeValue(payload) as Record<string, unknown>;
  const seqs = (frame.op === 'events' ? (frame.events as Array<{ seq: number; type: string }>) : frame.op === 'event' ? [frame as { seq: number; type: string }] : [])
    .map((event) => `${event.seq}:${event.type}`);
  const execution = (frame.execution_id ?? (frame.execution as { execution_id?: string } | undefined)?.execution_id) as string | undefined;
  return [frame.op, frame.id === undefined ? '' : `#${String(frame.id)}`, execution ? `exec ${execution.slice(0, 8)}` : '', seqs.length ? `[${seqs.join(' ')}]` : ''].filter(Boolean).join(' ');
}

/** What the editor holds (its placeholder, shown when it is empty, is not text). */
function editorText(page: Page): Promise<string> {
  return page.locator('.cm-content').evaluate((content) => (content.querySelector('.cm-placeholder') ? '' : (content as HTMLElement).innerText));
}

/** Types `code` into the editor (replacing what is there) and runs it with Shift+Enter; the new block. */
async function run(page: Page, code: string): Promise<Locator> {
  const blocks = page.locator('#output .execution');
  const count = await blocks.count();
  await page.locator('.cm-content').focus();
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText(code);
  await page.keyboard.press('Escape'); // a completion list the text opened
  await page.keyboard.press('Shift+Enter');
  return blocks.nth(count);
}

function screenshot(name: string): { path: string; publish(): void } {
  mkdirSync(path.join(ROOT, 'test-output'), { recursive: true });
  const shot = path.join(ROOT, 'test-output', name);
  return {
    path: shot,
    publish() {
      const docs = path.join(ROOT, 'docs', name);
      if (process.env.VMSTREAM_UPDATE_SCREENSHOTS === '1' || !existsSync(docs)) copyFileSync(shot, docs);
    },
  };
}

t.test('the editor, values, sessions, tabs and cancelling one execution', async (t) => {
  const server = await startServer({ env: { VMSTREAM_CONSOLE: '1' } });
  t.teardown(() => server.stop());
  const context = await browser(t);
  const errors: string[] = [];
  const page = await consolePage(t, context, errors, () => server.stderr());
  const answers = ['second', 'renamed'];
  page.on('dialog', (dialog) => void dialog.accept(dialog.type() === 'prompt' ? answers.shift() : undefined));
  await page.goto(`http://127.0.0.1:${server.port}/?token=${server.token}`);
  await page.waitForSelector('#status[data-status="connected"]');
  await page.waitForFunction(() => new URL(location.href).searchParams.has('session'));
  const firstSession = new URL(page.url()).searchParams.get('session')!;
  t.match(firstSession, /^[A-Za-z0-9]{3}(-[A-Za-z0-9]{3}){4}$/, 'the URL names the session (an id protocol/ids.ts made)');
  t.notOk(new URL(page.url()).searchParams.has('token'), 'the token is taken out of the address bar');

  // Completion from the session's context, accepted with Enter; then Shift+Enter runs.
  const setup = await run(page, 'const user = { address: { city: "Oslo", zip: [1, 2] }, born: new Date(0) }');
  await setup.locator('.done').waitFor();
  await page.locator('.cm-content').focus();
  await page.keyboard.type('user.addr');
  await page.locator('.cm-tooltip-autocomplete li', { hasText: 'address' }).waitFor();
  await page.keyboard.press('Enter');
  await page.keyboard.type('.ci');
  await page.locator('.cm-tooltip-autocomplete li', { hasText: 'city' }).waitFor();
  await page.keyboard.press('Enter');
  t.equal(await editorText(page), 'user.address.city', 'completed twice');
  await page.keyboard.press('Shift+Enter');
  const city = page.locator('#output .execution').nth(1);
  await city.locator('.done').waitFor();
  t.same(await city.locator('.line').allInnerTexts(), ["'Oslo'"]);
  t.equal(await editorText(page), '', 'the editor is emptied for the next input');

  // Up on the first line brings back earlier inputs, Down the draft.
  await page.keyboard.press('ArrowUp');
  t.equal(await editorText(page), 'user.address.city', 'Up: the last input');
  await page.keyboard.press('ArrowDown');
  t.equal(await editorText(page), '', 'Down: back to the draft');

  // A nested object opens level by level; a table; an exception as frames.
  const nested = await run(page, '({ nested: { deep: { deeper: [1, { x: "y" }] } }, list: new Map([["k", new Set([1])]]) })');
  await nested.locator('.done').waitFor();
  const tree = nested.locator('.line.value > details.tree');
  t.equal(await tree.getAttribute('open'), '', 'the value is open one level');
  // Rows by their own key: a plain 'deep' also matches the 'nested' row before its children render,
  // and clicking that again would close it.
  await tree.locator('.prop', { hasText: /^nested: / }).locator('summary').first().click();
  await tree.locator('.prop', { hasText: /^deep: / }).locator('summary').first().click();
  const deeper = tree.locator('.prop', { hasText: /^deeper: / });
  t.equal(await deeper.locator('summary').first().innerText(), 'deeper: Array(2) [1, {…}]', 'closed: the array says its length and its first items');
  await deeper.locator('summary').first().click();
  await deeper.locator('.prop', { hasText: /^1: / }).locator('summary').click();
  await deeper.locator('.leaf.kind-string', { hasText: "'y'" }).waitFor();
  t.same(await deeper.locator('.key').allInnerTexts(), ['deeper', '0', '1', 'x'], 'opened level by level, down to a leaf');
  const list = tree.locator('.prop', { hasText: /^list: / });
  t.equal(await list.locator('summary').first().innerText(), "list: Map(1) {'k' => Set(1)}", 'a Map and the Set inside it');
  await list.locator('summary').first().focus(); // opened from the keyboard, as devtools' trees are
  await page.keyboard.press('Enter');
  await list.locator('details.kind-set summary').focus();
  await page.keyboard.press('Space');
  await list.locator('details.kind-set .children .leaf.kind-number', { hasText: '1' }).waitFor();
  const point = await run(page, 'class Point { constructor(x, y) { this.x = x; this.y = y } }; [new Point(1, 2), new RangeError("out")]');
  await point.locator('.done').waitFor();
  t.equal(await point.locator('.line.value > details > summary').innerText(), 'Array(2) [Point {…}, RangeError: out]');
  const items = await point.locator('.line.value > details > .children > .prop > :is(details, span.leaf)').evaluateAll((nodes) => nodes.map((node) => (node.querySelector(':scope > summary') ?? node).textContent!.trim()));
  t.same(items, ['0: Point {x: 1, y: 2}', '1: RangeError: out'], 'a class instance by its class; an error by its message');
  const table = await run(page, 'console.table([{ a: 1, b: "two" }, { a: 3, c: true }])');
  await table.locator('.done').waitFor();
  t.same(await table.locator('table.console-table thead th').allInnerTexts(), ['(index)', 'a', 'b', 'c']);
  t.same(await table.locator('table.console-table tbody tr').first().locator('th, td').allInnerTexts(), ['0', '1', "'two'", '']);
  const thrown = await run(page, 'function outer() { inner() }\nfunction inner() { throw new TypeError("bad thing") }\nouter()');
  await thrown.locator('.done').waitFor();
  t.match(await thrown.locator('.exception .heading').innerText(), /^Uncaught TypeError: bad thing/);
  t.same((await thrown.locator('.frames .fn').allInnerTexts()).slice(0, 2), ['inner', 'outer'], 'stack frames shown as frames');
  const wide = screenshot('console.png');
  await page.screenshot({ path: wide.path });
  wide.publish();

  // Two executions waiting: cancelling the second (queued) leaves the first running; then the first.
  const first = await run(page, 'await new Promise((r) => setTimeout(r, 60000))');
  const second = await run(page, '"never runs"');
  await first.locator('.badge', { hasText: 'running' }).waitFor();
  await second.locator('button.cancel').click();
  await second.locator('.done').waitFor();
  t.equal(await second.getAttribute('data-status'), 'cancelled');
  t.equal(await first.getAttribute('data-status'), 'running', 'the other one goes on');
  await first.locator('button.cancel').click();
  await first.locator('.done').waitFor();
  t.equal(await first.getAttribute('data-status'), 'cancelled');
  t.ok(await first.locator('button.cancel').isHidden(), 'an ended execution has no cancel button');

  // Re-run and clear the view (not the log).
  const blocks = page.locator('#output .execution');
  const before = await blocks.count();
  await city.locator('button.rerun').click();
  await blocks.nth(before).locator('.done').waitFor();
  t.same(await blocks.nth(before).locator('.line').allInnerTexts(), ["'Oslo'"], 're-run: the same input again');
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await thrown.locator('button.copy').click();
  await thrown.locator('button.copy', { hasText: 'copied' }).waitFor();
  t.match(await page.evaluate(() => navigator.clipboard.readText()), /^Uncaught TypeError: bad thing\n\s*inner REPL\d+:2:\d+/, 'copy: the block\'s output as text');
  await page.click('#clear');
  t.equal(await blocks.count(), 0, 'the view is cleared');

  // A second session: its own URL and context; switching back shows the first session's log.
  await page.click('#new-session');
  await page.waitForFunction((id) => new URL(location.href).searchParams.get('session') !== id, firstSession);
  const secondSession = new URL(page.url()).searchParams.get('session')!;
  t.equal(await page.locator('#session').innerText(), 'second');
  const fresh = await run(page, 'typeof user');
  await fresh.locator('.done').waitFor();
  t.same(await fresh.locator('.line').allInnerTexts(), ["'undefined'"], 'a session of its own');
  await page.locator(`#sessions li[data-id="${secondSession}"] .rename`).click();
  await page.locator('#session', { hasText: 'renamed' }).waitFor();
  t.equal(await page.locator(`#sessions li[data-id="${secondSession}"] .name`).innerText(), 'renamed', 'renamed in the sidebar too');
  await page.locator(`#sessions li[data-id="${firstSession}"] .pick`).click();
  await page.waitForFunction((id) => new URL(location.href).searchParams.get('session') === id, firstSession);
  await page.locator('#output .execution').nth(before).locator('.done').waitFor();
  t.ok((await blocks.count()) > before, 'the first session\'s executions are back on screen');
  t.match(await page.locator(`#sessions li[data-id="${firstSession}"] small`).innerText(), /ready · \d+ runs/, 'the sidebar says status and runs');

  // A second tab on the link sees what the first one runs, live.
  const other = await consolePage(t, context, errors, () => server.stderr());
  await other.goto(`http://127.0.0.1:${server.port}/?token=${server.token}&session=${firstSession}`);
  await other.waitForSelector('#status[data-status="connected"]');
  t.equal(new URL(other.url()).searchParams.get('session'), firstSession, 'the link reopens the session');
  const live = await run(page, 'console.log("seen in both tabs"); 7 * 6');
  await other.locator('#output .execution', { hasText: 'seen in both tabs' }).locator('.done').waitFor();
  t.same(await other.locator('#output .execution').last().locator('.line').allInnerTexts(), ['seen in both tabs', '42']);
  await live.locator('.done').waitFor();

  // Closing a session takes it out of the list; its link still shows its log, read-only.
  await page.locator(`#sessions li[data-id="${secondSession}"] .close`).click();
  await page.locator(`#sessions li[data-id="${secondSession}"]`).waitFor({ state: 'detached' });
  await other.goto(`http://127.0.0.1:${server.port}/?session=${secondSession}`);
  await other.waitForSelector('#status[data-status="connected"]');
  await other.locator('#output .execution .done').waitFor();
  t.match(await other.locator('#session').innerText(), /\(closed\)$/);
  t.same(await other.locator('#output .execution .line').allInnerTexts(), ["'undefined'"], 'the closed session\'s log');
  await other.locator('.cm-content').focus();
  await other.keyboard.insertText('1 + 1');
  await other.keyboard.press('Shift+Enter');
  await other.locator('#output > .note', { hasText: 'closed: pick or create another one' }).waitFor();
  t.equal(await other.locator('#output .execution').count(), 1, 'nothing runs in a closed session');

  // Keyboard only: Escape then Tab leaves the editor for the Run button.
  await page.locator('.cm-content').focus();
  await page.keyboard.press('Escape');
  await page.keyboard.press('Tab');
  t.equal(await page.evaluate(() => document.activeElement?.id), 'run', 'Tab leaves the editor after Escape');
  t.same(errors, [], 'no error in the pages');
});

t.test('the console runs code and resumes, line for line, after a cut connection and a server restart, and shows the rebuild', async (t) => {
  // The rebuild must end within 5 s although its inputs took 7.5 s the first time (1.5 s of work,
  // 6 s waiting on a timer): timers fire without waiting while restoring.
  const env = { VMSTREAM_CONSOLE: '1', VMSTREAM_RESTORE_TIMEOUT_MS: '5000' };
  let server = await startOnFixedPort({ env });
  t.teardown(() => server.stop());
  const proxy = await FrameProxy.start(server.port);
  t.teardown(() => proxy.close());
  const context = await browser(t);
  const errors: string[] = [];
  const page = await consolePage(t, context, errors, () => server.stderr());
  const blocks = page.locator('#output .execution');

  await page.goto(`http://127.0.0.1:${proxy.port}/?token=${server.token}`);
  await page.waitForSelector('#status[data-status="connected"]');

  const first = await run(page, 'let kept = 41; console.log("hello from the console"); kept + 1');
  await first.locator('.done').waitFor();
  t.same(await first.locator('.line').allInnerTexts(), ['hello from the console', '42']);
  t.equal(await first.getAttribute('data-status'), 'ok');

  // The proxy cuts the socket right before the frame that carries event 8 on the first connection
  // (the console asks for batched frames: that frame may start a little earlier).
  let cutBefore = 0;
  proxy.filter = (frame, raw, connection) => {
    const seqs = seqsOf(frame);
    if (connection !== 1 || !seqs.includes(8)) return [raw];
    cutBefore = seqs[0]!;
    return 'cut';
  };
  const second = await run(page, linesCode(20, 10));
  await second.locator('.done').waitFor();
  t.equal(proxy.upgrades, 2, 'one reconnect');
  t.equal(await second.getAttribute('data-status'), 'ok');
  t.same(await second.locator('.line.console').allInnerTexts(), range(20), 'every line once, in order');
  t.same(await second.locator('.note').allInnerTexts(), ['connection lost: reconnecting…', `reconnected: resuming after event ${cutBefore - 1}`]);
  proxy.filter = null;

  // Inputs that make the rebuild take a while (a busy second and a half), and one that waited 6 s.
  const slow = await run(page, 'const t0 = Date.now(); while (Date.now() - t0 < 1500) {} let waited = await new Promise((r) => setTimeout(() => r("waited"), 6000))');
  await slow.locator('.done').waitFor({ timeout: 30_000 });
  t.equal(await slow.getAttribute('data-status'), 'ok');

  // The server is killed in the middle of a stream and started again on the same data and port.
  const third = await run(page, linesCode(2000, 5));
  await third.locator('.line.console', { hasText: /^line 20$/ }).waitFor();
  await server.kill();
  await third.locator('.note', { hasText: 'connection lost' }).waitFor();
  server = await restart(server, env);
  await third.locator('.done').waitFor();
  t.equal(await third.getAttribute('data-status'), 'crashed', 'the restart ended it');
  const shown = await third.locator('.line.console').allInnerTexts();
  const stored = await loggedLines(server, (await third.getAttribute('data-id'))!);
  t.ok(stored.length >= 20, `the server logged ${stored.length} lines before it was killed`);
  t.same(shown, stored, 'the page shows every logged line, once, in order');

  // The next input waits for the rebuild, and the page says so while it happens.
  const fourth = await run(page, 'kept + " " + waited');
  await fourth.locator('.note.restoring').waitFor();
  const during = screenshot('console-rebuild.png');
  await page.screenshot({ path: during.path });
  during.publish();
  t.match(await fourth.locator('.note.restoring').innerText(), /state is being rebuilt on the server: re-running its 3 earlier inputs/);
  await fourth.locator('.done').waitFor();
  t.match(await fourth.locator('.note.restored').innerText(), /rebuilt by re-running 3 earlier inputs\. Values they computed .* may differ/);
  t.same(await fourth.locator('.line').allInnerTexts(), ["'41 waited'"], 'rebuilt within the restore timeout: the 6 s timer fired at once');

  // A reload replays the session's executions from the server's log.
  await page.reload();
  await page.waitForSelector('#status[data-status="connected"]');
  await blocks.nth(4).locator('.done').waitFor();
  t.same(await blocks.evaluateAll((items) => items.map((item) => item.getAttribute('data-status'))), ['ok', 'ok', 'ok', 'crashed', 'ok']);
  await blocks.nth(1).locator('.done').waitFor();
  t.same(await blocks.nth(1).locator('.line.console').allInnerTexts(), range(20), 'replayed from the log');
  t.same(errors, [], 'no error in the page');
});

t.test('code run before the page has opened its session runs there once it has', async (t) => {
  // The page says "connected" and takes input a few round trips before its first session is open
  // (list, create, list): a run in that window was dropped without a word. The create reply is
  // held here until Shift+Enter has been pressed, as a slow disk (the record is flushed first) does.
  const server = await startServer({ env: { VMSTREAM_CONSOLE: '1' } });
  t.teardown(() => server.stop());
  const context = await browser(t);
  const errors: string[] = [];
  const page = await consolePage(t, context, errors, () => server.stderr());
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let createHeld!: () => void;
  const held = new Promise<void>((resolve) => (createHeld = resolve));
  await page.routeWebSocket(/\/v1\/ws/, (socket) => {
    const upstream = socket.connectToServer();
    // Kept in order: once the create reply is held, whatever follows it waits behind it.
    let forwarding = Promise.resolve();
    upstream.onMessage((message) => {
      const frame = decodeValue(Buffer.from(message as Buffer)) as ServerFrame;
      if (frame.op === 'session') {
        createHeld();
        forwarding = forwarding.then(() => released);
      }
      forwarding = forwarding.then(() => socket.send(message));
    });
  });
  await page.goto(`http://127.0.0.1:${server.port}/?token=${server.token}`);
  await page.waitForSelector('#status[data-status="connected"]');
  await held;
  const block = await run(page, '"ran in " + typeof globalThis');
  t.equal(await page.locator('#output .execution').count(), 0, 'no session yet: nothing shown');
  release();
  await page.waitForFunction(() => new URL(location.href).searchParams.has('session'));
  await block.locator('.done').waitFor();
  t.equal(await block.getAttribute('data-status'), 'ok');
  t.same(await block.locator('.line').allInnerTexts(), ["'ran in object'"], 'it ran in the session opened meanwhile');
  t.equal(await editorText(page), '', 'the editor was emptied');
  t.same(errors, [], 'no error in the page');
});

t.test('a refused token says so, before any socket', async (t) => {
  const server = await startServer({ env: { VMSTREAM_CONSOLE: '1' } });
  t.teardown(() => server.stop());
  const context = await browser(t);
  const page = await context.newPage();
  await page.goto(`http://127.0.0.1:${server.port}/?token=not-the-token`);
  await page.locator('#login-error', { hasText: /refused/ }).waitFor();
  t.match(await page.locator('#login-error').innerText(), /That token was refused by the server/);
  t.ok(await page.locator('#login').isVisible(), 'asked for another token');
  t.ok(await page.locator('#app').isHidden());
  await page.fill('#token', server.token);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#status[data-status="connected"]');
  t.pass('the right token, typed in, connects');
});

t.test('at 360 px wide nothing overflows, the sessions are a drawer, and code runs', async (t) => {
  const server = await startServer({ env: { VMSTREAM_CONSOLE: '1' } });
  t.teardown(() => server.stop());
  const context = await browser(t, { width: 360, height: 740 });
  const errors: string[] = [];
  const page = await consolePage(t, context, errors, () => server.stderr());
  await page.goto(`http://127.0.0.1:${server.port}/?token=${server.token}`);
  await page.waitForSelector('#status[data-status="connected"]');
  const block = await run(page, 'console.table({ alpha: { n: 1, label: "a fairly long label that must not push the page wider" }, beta: { n: 2 } }); ({ a: [1, 2, 3], b: "text" })');
  await block.locator('.done').waitFor();
  t.ok(await page.locator('#sidebar').isHidden(), 'the sidebar is folded away');
  t.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no horizontal scrolling');
  const boxes = await page.locator('.actions button').evaluateAll((buttons) => buttons.map((b) => b.getBoundingClientRect()).map((r) => [r.left, r.top, r.right, r.bottom]));
  t.notOk(boxes.some((a, i) => boxes.some((b, j) => i < j && a[0]! < b[2]! && b[0]! < a[2]! && a[1]! < b[3]! && b[1]! < a[3]!)), 'no buttons overlap');
  const narrow = screenshot('console-narrow.png');
  await page.screenshot({ path: narrow.path });
  narrow.publish();
  await page.click('#menu');
  t.ok(await page.locator('#sidebar').isVisible(), 'the menu button opens the sessions');
  t.equal(await page.locator('#menu').getAttribute('aria-expanded'), 'true');
  t.equal(await page.evaluate(() => document.activeElement?.closest('#sessions li')?.getAttribute('aria-current')), 'true', 'focus goes to the current session');
  await page.keyboard.press('Escape');
  t.ok(await page.locator('#sidebar').isHidden(), 'Escape folds it again');
  t.equal(await page.evaluate(() => document.activeElement?.id), 'menu', 'and gives focus back to the menu button');
  t.same(errors, []);
});

t.test('the console is served with a strict policy, and not at all when turned off', async (t) => {
  const on = await startServer({ env: { VMSTREAM_CONSOLE: '1' } });
  t.teardown(() => on.stop());
  const page = await fetch(`http://127.0.0.1:${on.port}/`);
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type'), /^text\/html/);
  t.match(page.headers.get('content-security-policy'), /default-src 'self'/);
  const nonce = /style-src 'self' 'nonce-([A-Za-z0-9+/=]{24})'/.exec(page.headers.get('content-security-policy') ?? '')?.[1];
  t.ok(nonce, 'styles: the page\'s own, and the editor\'s <style> with a nonce');
  const html = await page.text();
  t.match(html, `<meta name="csp-nonce" content="${nonce}"`, 'the page holds the same nonce');
  const again = await fetch(`http://127.0.0.1:${on.port}/`);
  t.notMatch(again.headers.get('content-security-policy'), nonce!, 'a fresh nonce for each response');
  t.equal(page.headers.get('referrer-policy'), 'no-referrer', 'the token in the URL goes nowhere else');
  const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)![1]!;
  const asset = await fetch(`http://127.0.0.1:${on.port}${script}`);
  t.equal(asset.status, 200);
  t.match(asset.headers.get('cache-control'), /immutable/);
  t.equal((await fetch(`http://127.0.0.1:${on.port}/assets/nope.js`)).status, 404);
  t.equal((await fetch(`http://127.0.0.1:${on.port}/healthz`)).status, 200, 'the API behind it still answers');

  const off = await startServer({ env: { VMSTREAM_CONSOLE: '0' } });
  t.teardown(() => off.stop());
  t.equal((await fetch(`http://127.0.0.1:${off.port}/`)).status, 404);
});
