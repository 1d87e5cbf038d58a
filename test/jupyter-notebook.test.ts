/**
 * A real Jupyter front end, end to end: Debian's Jupyter Notebook 6.4 started with `--gateway-url`
 * pointing at vmstream (so every kernel it offers and runs is vmstream's), driven in Debian's
 * headless Chromium by playwright-core: open a new notebook with the vmstream kernel from the
 * "New" menu, run a cell that prints and returns a value, and see both in the page. Screenshot in
 * test-output/jupyter-notebook.png, and docs/jupyter-notebook.png when that is missing or
 * VMSTREAM_UPDATE_SCREENSHOTS=1. `npm test` installs jupyter-notebook and chromium (scripts/system-packages.mjs).
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { chromium } from 'playwright-core';
import { HttpClient } from './helpers/http.js';
import { freePort, ROOT, startServer, tempDir } from './helpers/server.js';

const CHROMIUM = '/usr/bin/chromium';
const NOTEBOOK = '/usr/bin/jupyter-notebook';
for (const [file, pkg] of [[CHROMIUM, 'chromium'], [NOTEBOOK, 'jupyter-notebook']]) {
  if (!existsSync(file)) throw new Error(`${file} is needed for this test: apt-get install -y ${pkg} (npm test installs it: scripts/system-packages.mjs)`);
}
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const NOTEBOOK_TOKEN = 'notebook-token-0123456789';

/** Jupyter Notebook in gateway mode, its state in a temporary home; resolves once it listens. */
async function startNotebook(gatewayPort: number, gatewayToken: string) {
  const home = tempDir('notebook-home');
  const notebooks = path.join(home, 'notebooks');
  mkdirSync(notebooks);
  const port = await freePort();
  const child = spawn(NOTEBOOK, [
    '--no-browser', '--allow-root', '--ip=127.0.0.1', `--port=${port}`, '--port-retries=0',
    `--NotebookApp.token=${NOTEBOOK_TOKEN}`, `--notebook-dir=${notebooks}`,
    `--gateway-url=http://127.0.0.1:${gatewayPort}`, `--GatewayClient.auth_token=${gatewayToken}`,
  ], { env: { PATH: process.env.PATH ?? '', HOME: home, JUPYTER_RUNTIME_DIR: path.join(home, 'runtime') }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('Use Control-C to stop this server')) resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then(() => reject(new Error(`jupyter-notebook exited before listening:\n${log}`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    log: () => log,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

t.test('Jupyter Notebook 6.4 with --gateway-url runs a vmstream kernel in Chromium', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const notebook = await startNotebook(server.port, server.token);
  t.teardown(() => notebook.stop());
  const context = await chromium.launchPersistentContext(tempDir('chromium'), { executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1100, height: 700 } });
  t.teardown(() => context.close());
  const tree = context.pages()[0] ?? (await context.newPage());

  await tree.goto(`${notebook.url}/tree?token=${NOTEBOOK_TOKEN}`);
  // The "New" menu lists the kernels the gateway (vmstream) offers; picking ours opens a notebook.
  await tree.click('#new-dropdown-button');
  const opened = context.waitForEvent('page');
  await tree.click('#kernel-vmstream a');
  const page = await opened;
  await page.waitForSelector('#kernel_indicator_icon.kernel_idle_icon');
  t.equal(await page.locator('.kernel_indicator_name').innerText(), 'JavaScript (vmstream)', 'the notebook runs the vmstream kernel');

  await page.locator('.cell .CodeMirror').first().click();
  await page.keyboard.type('console.log("hello from vmstream"); ({ answer: 6 * 7 })');
  await page.keyboard.press('Shift+Enter');
  const cell = page.locator('.cell').first();
  // The prompt turns from In [*] to In [1] when the execute_reply has arrived.
  await cell.locator('.input_prompt', { hasText: 'In [1]' }).waitFor();
  t.equal((await cell.locator('.output_stream pre').innerText()).trim(), 'hello from vmstream', 'what the cell printed');
  t.equal((await cell.locator('.output_result pre').innerText()).trim(), '{ answer: 42 }', 'the value it returned');
  t.equal((await cell.locator('.output_prompt').first().innerText()).trim(), 'Out[1]:');

  // The kernel the notebook runs is a vmstream session, seen through vmstream's own API.
  const kernels = (await HttpClient.of(server).get('/api/kernels')).body as Array<{ id: string }>;
  t.equal(kernels.length, 1, 'one kernel, on vmstream');
  const sessions = (await HttpClient.of(server).get('/api/v1/sessions')).body as { items: Array<{ session_id: string }> };
  t.ok(sessions.items.some((session) => session.session_id === kernels[0]!.id), 'and it is a vmstream session');

  mkdirSync(path.join(ROOT, 'test-output'), { recursive: true });
  const shot = path.join(ROOT, 'test-output', 'jupyter-notebook.png');
  await page.screenshot({ path: shot });
  const docs = path.join(ROOT, 'docs', 'jupyter-notebook.png');
  if (process.env.VMSTREAM_UPDATE_SCREENSHOTS === '1' || !existsSync(docs)) copyFileSync(shot, docs);
});
