/**
 * The README's commands and snippets, run as a reader would run them: each fenced block has a
 * check here (a block without one fails the test), with only the placeholders (`…`, the port,
 * ids printed by an earlier command) filled in. The npm pack block is run by test/package.test.ts,
 * the Jupyter one by test/jupyter-notebook.test.ts.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import t from 'tap';
import { ROOT, removeDir, tempDir } from './helpers/server.js';
import { serverFor } from './helpers/util.js';

interface Block { lang: string; code: string }
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const blocks: Block[] = [...README.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((match) => ({ lang: match[1]!, code: match[2]! }));
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string; scripts: Record<string, string> };
const server = await serverFor(t);
const EXAMPLE_URL = 'ws://127.0.0.1:8080/v1/ws?token=…';
const url = `${server.url}?token=${server.token}`;
// Snippets import 'vmstream/client': a file inside the package resolves it to the package itself.
const scratch = path.join(ROOT, 'test-output', `readme-${process.pid}`);
mkdirSync(scratch, { recursive: true });
t.teardown(() => removeDir(scratch));

function block(signature: RegExp): Block {
  const found = blocks.filter((candidate) => signature.test(candidate.code));
  if (found.length !== 1) throw new Error(`expected one README block matching ${signature}, found ${found.length}`);
  checked.add(found[0]!);
  return found[0]!;
}
const checked = new Set<Block>();

function run(file: string, args: string[], options: { env?: Record<string, string>; cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: options.cwd ?? scratch, env: { ...process.env, ...options.env }, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

t.test('the two commands: npm start prints the URLs as shown; npm test is the whole suite after the install step', async (t) => {
  const { code } = block(/^npm start/m);
  t.match(code, /^npm test/m);
  t.equal(pkg.scripts.test, 'bash scripts/test.sh', 'npm test runs scripts/test.sh: every file, the cluster rerun, smoke and e2e');
  t.equal(pkg.scripts.pretest, 'node scripts/prepare.mjs --test', 'npm test installs, builds and installs what the tests need');
  const example = block(/^vmstream listening on /m).code.split('\n').filter(Boolean);
  t.match(example[0], new RegExp(`^vmstream ${pkg.version.replaceAll('.', '\\.')} · \\d+ workers · data in \\S+ · files in \\S+ · logs at info`), 'the banner, with this version');

  const dir = tempDir('npm-start');
  t.teardown(() => removeDir(dir));
  const child = spawn('npm', ['start'], {
    cwd: ROOT,
    detached: true,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? dir, VMSTREAM_PORT: '0', VMSTREAM_DATA: path.join(dir, 'data'), VMSTREAM_WORKSPACE: path.join(dir, 'ws') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  t.teardown(async () => {
    if (child.exitCode === null) process.kill(-child.pid!, 'SIGTERM');
    await exited;
  });
  let stdout = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.includes('vmstream console at')) resolve();
    });
    void exited.then(() => reject(new Error(`npm start exited:\n${stdout}`)));
  });
  const printed = stdout.split('\n').filter((line) => line.startsWith('vmstream '));
  // The example's lines, with the port and the token as wildcards.
  const asPattern = (line: string) => new RegExp(`^${line.replace(/[.?*+^$()[\]{}|\\]/g, '\\$&').replace('8080', '\\d+').replace('…', '[\\w-]+')}$`);
  t.match(printed.at(-2), asPattern(example[1]!));
  t.match(printed.at(-1), asPattern(example[2]!));
});

t.test('use it from another project: the tarball is named as shown (test/package.test.ts installs it)', async (t) => {
  const { code } = block(/^npm pack/m);
  for (const name of code.match(/\S+\.tgz/g) ?? []) t.equal(path.basename(name), `${pkg.name}-${pkg.version}.tgz`);
  t.match(code, /npx vmstream\s/);
  t.match(code, /npx vmstream run \S+ --url/);
});

t.test('the Jupyter gateway commands: test/jupyter-notebook.test.ts runs jupyter-notebook with these flags', async (t) => {
  const { code } = block(/^jupyter lab --gateway-url=/m);
  const notebookTest = readFileSync(path.join(ROOT, 'test', 'jupyter-notebook.test.ts'), 'utf8');
  for (const flag of code.match(/--[\w.]+=/g) ?? []) t.ok(notebookTest.includes(flag), `${flag} is what the test starts it with`);
  t.match(code, /^jupyter-notebook --gateway-url=/m);
});

t.test('the SDK snippets, one after the other, against a real server', async (t) => {
  const sdk = block(/^import \{ Client \} from 'vmstream\/client';/m).code;
  const runCode = block(/client\.runCode\(/).code;
  t.ok(sdk.includes(EXAMPLE_URL));
  const file = path.join(scratch, 'sdk.mjs');
  writeFileSync(file, `${sdk.replace(EXAMPLE_URL, url)}\n${runCode}`);
  const result = await run(process.execPath, [file]);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, /^1 console \{ level: 'log', text: 'hi' \}$/m, 'onEvent');
  t.match(result.stdout, /^2 value \{ type: 'number', preview: '42' \}$/m);
  t.match(result.stdout, /payload: \{ level: 'log', text: '3' \}/, 'start() iterated');
  t.match(result.stdout, /^ok \[ 'hi' \] 42 undefined$/m, 'runCode, as the comment says');
  t.match(result.stdout, /^closed$/m, 'the status loop ended with the client');
});

t.test('any WebSocket client with msgpack: the snippet gets its session', async (t) => {
  const { code } = block(/^import WebSocket from 'ws';/m);
  const file = path.join(scratch, 'raw.mjs');
  writeFileSync(file, code.replace(EXAMPLE_URL, url));
  const child = spawn(process.execPath, [file], { cwd: scratch, stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill());
  let stdout = '';
  await new Promise<void>((resolve) => child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    if (/op: 'session'/.test(stdout)) resolve();
  }));
  t.match(stdout, /op: 'session',\s+id: 1,\s+session: \{/);
});

t.test('the MCP client configurations: each connects and lists the tools', async (t) => {
  // The configs as a client would read them, with this server's port and token for the placeholders.
  const config = (signature: RegExp) => JSON.parse(block(signature).code
    .replaceAll('127.0.0.1:8080', `127.0.0.1:${server.port}`)
    .replaceAll('YOUR_TOKEN', server.token)) as { mcpServers: { vmstream: { url?: string; headers?: Record<string, string>; command?: string; args?: string[] } } };
  const http = config(/"type": "http"/).mcpServers.vmstream;
  const stdio = config(/"command": "npx"/).mcpServers.vmstream;
  for (const transport of [
    new StreamableHTTPClientTransport(new URL(http.url!), { requestInit: { headers: http.headers! } }),
    new StdioClientTransport({ command: stdio.command!, args: stdio.args!, cwd: ROOT, stderr: 'pipe' }),
  ]) {
    const client = new McpClient({ name: 'readme', version: '1.0.0' });
    await client.connect(transport);
    const { tools } = await client.listTools();
    t.ok(tools.some((tool) => tool.name === 'run_code'), `${transport.constructor.name}: run_code is offered`);
    await client.close();
  }
});

t.test('the curl lines of the HTTP API, in order', async (t) => {
  const lines = block(/^curl /m).code.split('\n');
  const token = lines.shift()!;
  t.equal(token, "T='Authorization: Bearer …'");
  const env = { T: `Authorization: Bearer ${server.token}` };
  const outputs: string[] = [];
  let sessionId = '';
  let executionId = '';
  for (const line of lines.filter((l) => l.startsWith('curl '))) {
    const command = line
      .replaceAll('localhost:8080', `127.0.0.1:${server.port}`)
      .replace('"session_id":"…"', `"session_id":"${sessionId}"`)
      .replace('executions/…/events', `executions/${executionId}/events`);
    const result = await run('bash', ['-c', command], { env });
    t.equal(result.code, 0, `${line}: ${result.stderr}`);
    outputs.push(result.stdout);
    if (result.stdout.startsWith('{')) {
      const body = JSON.parse(result.stdout) as { session_id?: string; execution_id?: string };
      if (!sessionId && body.session_id) sessionId = body.session_id;
      else if (!executionId && body.execution_id) executionId = body.execution_id;
    }
  }
  const [created, repl, sse, put, runFile] = outputs as [string, string, string, string, string];
  t.match(JSON.parse(created), { name: 'demo', status: 'ready' });
  t.match(JSON.parse(repl), { status: 'ok', events: [{ type: 'value', payload: { preview: '42' } }, { type: 'done' }] }, 'as the comment says');
  t.match(sse, /^event: value\nid: 1\ndata: \{.*"preview":"42"/m);
  t.match(JSON.parse(put), { path: 'lib/hello.js' });
  t.match(JSON.parse(runFile), { status: 'ok', events: [{ type: 'console', payload: { text: 'hello' } }, { type: 'done' }] });
});

t.test('every npm script the README names exists; every block above was checked', async (t) => {
  for (const [, name] of README.matchAll(/npm run ([\w:-]+)/g)) t.ok(pkg.scripts[name!], `npm run ${name}`);
  t.same(blocks.filter((candidate) => !checked.has(candidate)).map((candidate) => candidate.code.split('\n')[0]), [], 'no README block goes unchecked');
});
