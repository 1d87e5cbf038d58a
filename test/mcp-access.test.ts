/**
 * Who reaches the MCP server and how: 401 without a token or with a wrong one (HTTP and the stdio
 * bridge), 405 for what a stateless server does not serve, another tenant's execution_id answered
 * exactly as an unknown one; the README's client configurations, run as written (same command and
 * URL shapes, this server's port and token); and protocol/MCP.md's argument tables against the
 * tools the server lists.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import t from 'tap';
import { call, mcpClientFor, mcpUrl, stdioTransport, textOf } from './helpers/mcp.js';
import { MAIN, ROOT, tempDir } from './helpers/server.js';
import { mcpUrl as bridgeUrl } from '../src/mcp/bridge.js';
import { targetFromArgs } from '../src/cli/connect.js';
import { serverFor } from './helpers/util.js';

const INITIALIZE = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'curl', version: '1' } } };
const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

t.test('no token or a wrong one: 401; GET and DELETE: 405; an origin not allowed: 403', async (t) => {
  const server = await serverFor(t, { env: { VMSTREAM_ORIGINS: 'http://allowed.example' } });
  for (const authorization of [undefined, 'Bearer wrong-token-0123456789']) {
    const response = await fetch(mcpUrl(server), { method: 'POST', headers: { ...MCP_HEADERS, ...(authorization ? { authorization } : {}) }, body: JSON.stringify(INITIALIZE) });
    t.equal(response.status, 401, `${authorization ?? 'no token'}: 401`);
    t.equal(response.headers.get('www-authenticate'), 'Bearer');
    t.equal(((await response.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED');
  }
  const ok = await fetch(mcpUrl(server), { method: 'POST', headers: { ...MCP_HEADERS, authorization: `Bearer ${server.token}` }, body: JSON.stringify(INITIALIZE) });
  t.equal(ok.status, 200, 'the right token: 200');
  t.match(await ok.text(), /"serverInfo":\{"name":"vmstream"/);
  for (const method of ['GET', 'DELETE']) {
    const response = await fetch(mcpUrl(server), { method, headers: { accept: 'text/event-stream', authorization: `Bearer ${server.token}` } });
    t.equal(response.status, 405, `${method}: 405`);
    t.equal(response.headers.get('allow'), 'POST');
  }

  for (const [origin, status] of [['http://allowed.example', 200], ['http://elsewhere.example', 403]] as const) {
    const response = await fetch(mcpUrl(server), { method: 'POST', headers: { ...MCP_HEADERS, origin, authorization: `Bearer ${server.token}` }, body: JSON.stringify(INITIALIZE) });
    t.equal(response.status, status, `Origin ${origin}: ${status}`);
    await response.body?.cancel();
  }

  const http = new Client({ name: 'wrong', version: '1' });
  const refused = new StreamableHTTPClientTransport(new URL(mcpUrl(server)), { requestInit: { headers: { authorization: 'Bearer wrong-token-0123456789' } } });
  await t.rejects(http.connect(refused), { code: 401, message: /UNAUTHORIZED/ }, 'the SDK client over HTTP is refused');
  const stdio = new Client({ name: 'wrong', version: '1' });
  const bridge = stdioTransport(process.execPath, [MAIN, 'mcp', '--url', server.url, '--token', 'wrong-token-0123456789']);
  await t.rejects(stdio.connect(bridge), /HTTP 401: .*UNAUTHORIZED/, 'through the bridge too, as an error at once');
  await stdio.close();
});

function addTenant(file: string, name: string): string {
  return execFileSync(process.execPath, [path.join(ROOT, 'dist/scripts/add-tenant.js'), name, file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

t.test('another tenant\'s execution_id reads as unknown', async (t) => {
  const tokensFile = path.join(tempDir('mcp-tenants'), 'tokens');
  const alice = addTenant(tokensFile, 'alice');
  const bob = addTenant(tokensFile, 'bob');
  const server = await serverFor(t, { env: { VMSTREAM_TOKENS_FILE: tokensFile, VMSTREAM_TOKEN: '' } });
  const a = await mcpClientFor(t, server, 'http', alice);
  const b = await mcpClientFor(t, server, 'stdio', bob);

  const mine = await call(a, 'run_code', { code: 'let secret = 1; "alice output"', execution_id: 'job-1' });
  t.equal(mine.structuredContent.status, 'ok');
  const session = mine.structuredContent.session_id;

  const sameAsUnknown = async (tool: string, args: Record<string, unknown>, unknownArgs: Record<string, unknown>) => {
    const foreign = await call(b, tool, args);
    const unknown = await call(b, tool, unknownArgs);
    t.equal(foreign.isError, true, `${tool}: an error result`);
    t.match(textOf(foreign), /^NOT_FOUND: /, `${tool}: NOT_FOUND`);
    t.equal(textOf(foreign), textOf(unknown).replaceAll('job-404', 'job-1').replaceAll('no-such-session', session), `${tool}: exactly the answer for an unknown id`);
  };
  await sameAsUnknown('read_output', { execution_id: 'job-1' }, { execution_id: 'job-404' });
  await sameAsUnknown('cancel', { execution_id: 'job-1' }, { execution_id: 'job-404' });
  await sameAsUnknown('close_session', { session_id: session }, { session_id: 'no-such-session' });
  await sameAsUnknown('run_code', { code: 'secret', session_id: session }, { code: 'secret', session_id: 'no-such-session' });
  t.strictSame((await call(b, 'list_sessions')).structuredContent.sessions, [], 'none of alice\'s sessions');
  const { resources } = await b.listResources();
  t.strictSame(resources, [], 'none of alice\'s executions as resources');
  await t.rejects(b.readResource({ uri: 'vmstream://executions/job-1' }), /no execution `job-1`/);

  // The same id for bob is bob's own new run, not alice's result.
  const bobs = await call(b, 'run_code', { code: '"bob output"', execution_id: 'job-1' });
  t.equal(textOf(bobs), "=> 'bob output'");
  t.not(bobs.structuredContent.session_id, session);

  // Alice sees hers: the run, and its log as a resource listed under her session.
  t.equal(textOf(await call(a, 'run_code', { code: 'throw 1', execution_id: 'job-1' })), "=> 'alice output'");
  const listed = await a.listResources();
  t.ok(listed.resources.some((resource) => resource.uri === 'vmstream://executions/job-1'), 'her execution is a listed resource');
  t.ok(listed.resources.some((resource) => resource.uri === `vmstream://sessions/${session}/executions`), 'and her session\'s executions');
  const log = await a.readResource({ uri: 'vmstream://executions/job-1' });
  t.match((log.contents[0] as { text: string }).text, /^execution job-1 \(session .*\): ok, 2 events\n=> 'alice output'$/);
  const executions = await a.readResource({ uri: `vmstream://sessions/${session}/executions` });
  t.match(JSON.parse((executions.contents[0] as { text: string }).text), [{ execution_id: 'job-1', status: 'ok', uri: 'vmstream://executions/job-1' }]);
});

t.test('a revoked tenant: its waiting run_code answers UNAUTHORIZED, its next request 401', async (t) => {
  const tokensFile = path.join(tempDir('mcp-revoke'), 'tokens');
  const erin = addTenant(tokensFile, 'erin');
  addTenant(tokensFile, 'frank');
  const server = await serverFor(t, { env: { VMSTREAM_TOKENS_FILE: tokensFile, VMSTREAM_TOKEN: '' } });
  const client = await mcpClientFor(t, server, 'http', erin);
  let waiting!: () => void;
  const started = new Promise<void>((resolve) => (waiting = resolve));
  const pending = client.callTool(
    { name: 'run_code', arguments: { code: 'console.log("waiting"); await new Promise((r) => setTimeout(r, 100_000))', timeout_ms: 120_000 } },
    undefined,
    { timeout: 600_000, onprogress: () => waiting() },
  );
  await started;
  const kept = readFileSync(tokensFile, 'utf8').split('\n').filter((line) => !line.startsWith('erin:')).join('\n');
  writeFileSync(`${tokensFile}.new`, kept, { mode: 0o600 });
  renameSync(`${tokensFile}.new`, tokensFile);
  const result = (await pending) as any;
  t.equal(result.isError, true, 'the waiting call ends');
  t.match(textOf(result), /^UNAUTHORIZED: .*revoked/);
  await t.rejects(call(client, 'list_sessions'), { code: 401 }, 'the next request is refused');
});

/** The ```json blocks of the README's MCP section. */
function readmeConfigs(): any[] {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('## Use it from an MCP client');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  return [...section.matchAll(/```json\n([\s\S]*?)```/g)].map((match) => JSON.parse(match[1]!).mcpServers.vmstream);
}

t.test('the README\'s client configurations work as written', async (t) => {
  const server = await serverFor(t);
  const configs = readmeConfigs();
  const http = configs.find((config) => config.type === 'http');
  const stdio = configs.find((config) => config.command !== undefined);
  t.ok(http && stdio, 'one for HTTP, one for stdio');

  const url = new URL(http.url);
  url.port = String(server.port);
  t.equal(url.href, mcpUrl(server), 'the HTTP URL is the server\'s /mcp');
  const headers = Object.fromEntries(Object.entries<string>(http.headers).map(([name, value]) => [name, value.replace('YOUR_TOKEN', server.token)]));
  const viaHttp = new Client({ name: 'readme-http', version: '1' });
  await viaHttp.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers } }));
  t.teardown(() => viaHttp.close());
  t.equal(textOf(await call(viaHttp, 'run_code', { code: '6 * 7' })), '=> 42');

  // `npx vmstream` runs the package's bin, dist/src/cli/main.js; the arguments are the README's.
  t.strictSame([stdio.command, stdio.args[0]], ['npx', 'vmstream']);
  const args = stdio.args.slice(1).map((arg: string) => {
    if (arg === 'YOUR_TOKEN') return server.token;
    if (!arg.startsWith('ws://')) return arg;
    const socket = new URL(arg);
    socket.port = String(server.port);
    t.equal(socket.href, server.url, 'the --url is the socket URL the server prints');
    return socket.href;
  });
  const viaStdio = new Client({ name: 'readme-stdio', version: '1' });
  await viaStdio.connect(stdioTransport(process.execPath, [MAIN, ...args]));
  t.teardown(() => viaStdio.close());
  t.equal(textOf(await call(viaStdio, 'run_code', { code: '6 * 7' })), '=> 42');
});

t.test('protocol/MCP.md documents each tool\'s arguments as the server lists them', async (t) => {
  const server = await serverFor(t);
  const client = await mcpClientFor(t, server, 'http');
  const doc = readFileSync(path.join(ROOT, 'protocol/MCP.md'), 'utf8');
  const { tools } = await client.listTools();
  const documented = [...doc.matchAll(/^### `([a-z_]+)`$/gm)].map((match) => match[1]);
  t.strictSame(documented.sort(), tools.map((tool) => tool.name).sort(), 'a section per tool, both ways');
  for (const tool of tools) {
    const start = doc.indexOf(`### \`${tool.name}\``);
    const end = doc.indexOf('\n#', start + 1);
    const rows = [...doc.slice(start, end).matchAll(/^\| `([a-z_]+)` \| [^|]+ \| (yes|no) \|/gm)];
    t.strictSame(rows.map((row) => row[1]).sort(), Object.keys(tool.inputSchema.properties ?? {}).sort(), `${tool.name}: its arguments`);
    t.strictSame(rows.filter((row) => row[2] === 'yes').map((row) => row[1]).sort(), [...(tool.inputSchema.required ?? [])].sort(), `${tool.name}: which are required`);
  }
});

t.test('the bridge exits when its stdin closes', async (t) => {
  const server = await serverFor(t);
  const bridge = spawn(process.execPath, [MAIN, 'mcp', '--url', server.url, '--token', server.token], { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } });
  const exited = new Promise<number | null>((resolve) => bridge.once('exit', resolve));
  const firstLine = new Promise<string>((resolve) => bridge.stdout.setEncoding('utf8').once('data', resolve));
  bridge.stdin.write(`${JSON.stringify(INITIALIZE)}\n`);
  t.match(JSON.parse(await firstLine), { id: 1, result: { serverInfo: { name: 'vmstream' } } }, 'it answers on stdout');
  bridge.stdin.end();
  t.equal(await exited, 0, 'and exits with 0 once stdin is closed');
});

t.test('the bridge finds /mcp from the URLs `vmstream repl` takes', async (t) => {
  const cases: Array<[string, string]> = [
    ['ws://127.0.0.1:8080/v1/ws', 'http://127.0.0.1:8080/mcp'],
    ['wss://vm.example/v1/ws?token=abc', 'https://vm.example/mcp'],
    ['http://127.0.0.1:8080/?token=abc', 'http://127.0.0.1:8080/mcp'],
    ['https://vm.example/prefix/v1/ws', 'https://vm.example/prefix/mcp'],
    ['http://127.0.0.1:8080/mcp', 'http://127.0.0.1:8080/mcp'],
  ];
  for (const [given, expected] of cases) t.equal(bridgeUrl(targetFromArgs(given, 'tok').url).href, expected, given);
});
