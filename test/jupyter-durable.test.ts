/**
 * What Jupyter loses and vmstream keeps, black box: a client that reconnects with the same
 * session_id mid-stream gets every line once; a half-open socket's unconfirmed lines are replayed
 * to the connection that replaces it; after kill -9 and a restart the same JupyterLab connection
 * gets the rest of its cell's output and the kernel runs with its state rebuilt. And two tenants cannot see each other's kernels.
 */
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import type { Kernel, KernelMessage } from '@jupyterlab/services';
import { HttpClient } from './helpers/http.js';
import { FreezingProxy, kernelManager, librarySockets, RawChannel, type JupyterMessage } from './helpers/jupyter.js';
import { restart, startOnFixedPort } from './helpers/sdk.js';
import { addTenant, removeDir, startServer, tempDir } from './helpers/server.js';

const LINES = 40;
/** Prints `line 0` … `line N-1`, each after a pause, so that a socket can break in the middle. */
const streamCode = (lines: number, pauseMs: number) =>
  `for (let i = 0; i < ${lines}; i++) { console.log('line ' + i); await new Promise((r) => setTimeout(r, ${pauseMs})); }`;

/** The line numbers a `stream` message carries: one, or a burst delivered together (one message). */
const linesOf = (text: string) => text.split('\n').slice(0, -1).map((line) => Number(/^line (\d+)$/.exec(line)![1]));
const streamLines = (messages: JupyterMessage[]) =>
  messages.filter((message) => message.header.msg_type === 'stream').flatMap((message) => linesOf(message.content.text));
const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, index) => from + index);

t.test('a JupyterLab reconnect with the same session_id mid-stream: every line once, in order', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const manager = await kernelManager(server);
  t.teardown(() => manager.dispose());
  const kernel = await manager.startNew();
  await kernel.info;
  const lines: number[] = [];
  let reconnected: Promise<void> | null = null;
  const future = kernel.requestExecute({ code: streamCode(LINES, 10) });
  future.onIOPub = (message) => {
    if (message.header.msg_type !== 'stream') return;
    const before = lines.length;
    lines.push(...linesOf((message.content as KernelMessage.IStreamMsg['content']).text));
    if (before < 10 && lines.length >= 10) {
      const socket = librarySockets.at(-1)!;
      // Right after the pong went out: the lines received so far are confirmed before the close.
      socket.afterNextPing(() => (reconnected = kernel.reconnect()));
    }
  };
  const reply = await future.done;
  await reconnected;
  t.equal(reply.content.status, 'ok');
  t.same(lines, range(0, LINES), 'every line once, in order, across the reconnect');
  t.ok(reconnected, 'the connection was replaced mid-stream');
});

t.test('a half-open socket: the connection that replaces it gets what was not confirmed', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const proxy = await FreezingProxy.start(server.port);
  t.teardown(() => proxy.close());
  const kernelId = (await HttpClient.of(server).request('POST', '/api/kernels')).body.id as string;
  const first = await RawChannel.connect(proxy.port, kernelId, { token: server.token });
  const request = first.send('execute_request', { code: streamCode(LINES, 10) });
  await first.waitFor((message) => message.header.msg_type === 'stream' && linesOf(message.content.text).includes(9));
  proxy.freeze();

  const second = await RawChannel.connect(server.port, kernelId, { token: server.token, session: first.session });
  t.teardown(() => second.close());
  const reply = await second.reply(request);
  t.equal(reply.content.status, 'ok', 'the reply goes to the client session that asked, on its new connection');
  const replayed = streamLines(second.messages);
  t.same(replayed, range(replayed[0]!, LINES), 'the new connection gets a gapless, duplicate-free run to the end');
  // All the frozen socket ever got, counting what was already on its way when the proxy froze.
  const seen = streamLines(first.messages);
  t.same(seen, range(0, seen.length), 'the frozen socket got a gapless run');
  t.ok(replayed[0]! <= seen.length, `nothing lost: the new one starts at line ${replayed[0]}, the frozen one got ${seen.length}`);
  t.ok(second.of(request, 'status').some((message) => message.content.execution_state === 'idle'));
});

/**
 * Under load the replacing connection's first write (the replay from the confirmed point) can come in
 * the same read as its 101: the test's client must count it, or the test reports a loss that is its own.
 */
t.test('the raw channel counts a frame that came in the same read as its 101', async (t) => {
  const frame = (line: number) => {
    const payload = Buffer.from(JSON.stringify({ channel: 'iopub', header: { msg_id: `m${line}`, msg_type: 'stream', session: 's' }, parent_header: {}, content: { name: 'stdout', text: `line ${line}\n` }, metadata: {} }));
    return Buffer.concat([Buffer.from([0x81, 126, payload.length >> 8, payload.length & 0xff]), payload]);
  };
  const server = net.createServer((socket) => {
    let request = '';
    socket.on('data', (chunk) => {
      request += chunk.toString('latin1');
      const key = /sec-websocket-key: *(\S+)/i.exec(request)?.[1];
      if (!key || !request.endsWith('\r\n\r\n')) return;
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      const upgrade = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`;
      // Line 10 in one write with the 101 (one read on the client), line 11 once the client has read it.
      socket.write(Buffer.concat([Buffer.from(upgrade), frame(10)]));
      socket.once('data', () => socket.write(frame(11)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const channel = await RawChannel.connect((server.address() as net.AddressInfo).port, 'k', { token: 't' });
  t.teardown(() => channel.socket.terminate());
  channel.send('kernel_info_request', {});
  await channel.waitFor((message) => message.header.msg_id === 'm11');
  t.same(streamLines(channel.messages), [10, 11], 'the frame that came with the 101 is counted');
});

t.test('a client that confirmed nothing comes back: the very same messages again, bursts cut where they were', async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  const kernelId = (await HttpClient.of(server).request('POST', '/api/kernels')).body.id as string;
  const first = await RawChannel.connect(server.port, kernelId, { token: server.token, autoPong: false });
  // Bursts of 50 lines, a pause between: several writes, each a message or a few.
  const request = first.send('execute_request', { code: `for (let b = 0; b < 20; b++) { for (let i = 0; i < 50; i++) console.log('line ' + (b * 50 + i)); await new Promise((r) => setTimeout(r, 5)); }` });
  await first.reply(request);
  const streams = (channel: RawChannel) => channel.of(request, 'stream').map((message) => [message.header.msg_id, message.content.text as string]);
  t.same(streamLines(first.of(request, 'stream')), range(0, 1000));

  // The replay is read back from the store in pages that cut the bursts elsewhere.
  const second = await RawChannel.connect(server.port, kernelId, { token: server.token, session: first.session });
  t.teardown(() => second.close());
  await second.reply(request);
  t.same(streams(second), streams(first), 'the same messages: ids, and the lines each carries');
  t.comment(`1000 lines in ${streams(first).length} stream messages, sent again alike`);
});

t.test('kill -9 and restart: the same connection gets the rest of its cell, the kernel runs, its state rebuilt', async (t) => {
  let server = await startOnFixedPort();
  t.teardown(() => removeDir(server.dataDir));
  t.teardown(() => server.stop());
  const manager = await kernelManager(server);
  t.teardown(() => manager.dispose());
  const kernel = await manager.startNew();
  await kernel.info;
  const kept = kernel.requestExecute({ code: 'var kept = 41' });
  await kept.done;

  const lines: Array<{ line: number; msgId: string }> = [];
  const texts = new Map<string, Set<string>>();
  let killed: Promise<void> | null = null;
  const future = kernel.requestExecute({ code: streamCode(100_000, 5) });
  const errors: string[] = [];
  future.onIOPub = (message) => {
    if (message.header.msg_type === 'error') errors.push((message.content as KernelMessage.IErrorMsg['content']).ename);
    if (message.header.msg_type !== 'stream') return;
    const { text } = message.content as KernelMessage.IStreamMsg['content'];
    const msgId = message.header.msg_id;
    texts.set(msgId, (texts.get(msgId) ?? new Set()).add(text));
    const before = lines.length;
    lines.push(...linesOf(text).map((line) => ({ line, msgId })));
    if (before < 20 && lines.length >= 20) killed = server.kill();
  };
  const done = future.done.catch((error: unknown) => error);
  while (!killed) await new Promise((resolve) => setImmediate(resolve));
  await killed;
  const before = lines.length;
  server = await restart(server);
  await kernel.reconnect();
  const reply = (await done) as KernelMessage.IExecuteReplyMsg;
  t.equal(reply.content.status, 'error', 'the cell ends with an error: the server died under it');
  t.same(errors, ['KernelCrashed']);
  // What the client got but had not yet confirmed when the server died comes again: at most the lines
  // it had when the kill landed (grouped as they are read again, so perhaps in other messages).
  const unique = [...new Set(lines.map((entry) => entry.line))];
  t.same(unique, range(0, unique.length), 'every line stored before the kill arrives, in order, none missing');
  t.ok([...texts.values()].every((seen) => seen.size === 1), 'a msg_id, whenever it comes again, carries the same lines');
  const again = lines.length - unique.length;
  const afterwards = lines.slice(before).map((entry) => entry.line);
  t.same(afterwards, range(afterwards[0] ?? 0, (afterwards[0] ?? 0) + afterwards.length), 'after the restart: one gapless run');
  t.ok(again <= before, `${again} line(s) were repeated after the restart (received, not yet confirmed)`);
  t.comment(`kill -9: ${before} lines seen before the kill, ${unique.length} stored in all, ${again} repeated`);

  const after = await runCell(kernel, 'kept + 1');
  t.equal(after.result, '42', 'the kernel runs, its state rebuilt from its inputs');
  t.match(after.stderr, /state was rebuilt: 1 earlier input/, 'and says so');
  t.equal((await HttpClient.of(server).get(`/api/kernels/${kernel.id}`)).body.execution_state, 'idle');
});

async function runCell(kernel: Kernel.IKernelConnection, code: string): Promise<{ result?: string; stderr: string }> {
  const seen: { result?: string; stderr: string } = { stderr: '' };
  const future = kernel.requestExecute({ code });
  future.onIOPub = (message) => {
    if (message.header.msg_type === 'execute_result') seen.result = (message.content as KernelMessage.IExecuteResultMsg['content']).data['text/plain'] as string;
    if (message.header.msg_type === 'stream') seen.stderr += (message.content as KernelMessage.IStreamMsg['content']).text;
  };
  await future.done;
  return seen;
}

t.test('a restarted kernel stays restarted: a rebuild after a server restart does not replay what came before', async (t) => {
  const dataDir = tempDir('jupyter-restart');
  t.teardown(() => removeDir(dataDir));
  let server = await startServer({ dataDir });
  t.teardown(() => server.stop());
  const http = () => HttpClient.of(server);
  const kernelId = (await http().request('POST', '/api/kernels')).body.id as string;
  const runOn = async (code: string) => {
    const channel = await RawChannel.connect(server.port, kernelId, { token: server.token });
    const request = channel.send('execute_request', { code });
    await channel.reply(request);
    await channel.close();
    return channel.of(request, 'execute_result')[0]?.content.data['text/plain'];
  };
  await runOn('var before = 1');
  const stopped = await RawChannel.connect(server.port, kernelId, { token: server.token });
  const waiting = stopped.send('execute_request', { code: 'await new Promise(() => {})' });
  await stopped.waitFor((message) => message.parent_header.msg_id === waiting && message.header.msg_type === 'execute_input');
  t.equal((await http().request('POST', `/api/kernels/${kernelId}/restart`)).status, 200);
  t.equal((await stopped.reply(waiting)).content.status, 'error', 'the restart stopped what was running');
  await stopped.close();
  await runOn('var after = 2');
  await server.stop();
  server = await startServer({ dataDir });
  t.equal(await runOn('[typeof before, after]'), "[ 'undefined', 2 ]", 'only what ran since the restart was rebuilt');
  const channel = await RawChannel.connect(server.port, kernelId, { token: server.token });
  t.teardown(() => channel.close());
  const counted = channel.send('execute_request', { code: '1' });
  t.equal((await channel.reply(counted)).content.execution_count, 3, 'In [n] counts from 1 again after the restart');
});

t.test('two tenants: kernels and notebook sessions are each their own', async (t) => {
  const tokensFile = path.join(tempDir('jupyter-tenants'), 'tokens');
  const alice = addTenant(tokensFile, 'alice');
  const bob = addTenant(tokensFile, 'bob');
  const server = await startServer({ env: { VMSTREAM_TOKENS_FILE: tokensFile, VMSTREAM_TOKEN: '' } });
  t.teardown(() => server.stop());
  const asAlice = new HttpClient(`http://127.0.0.1:${server.port}`, alice);
  const asBob = new HttpClient(`http://127.0.0.1:${server.port}`, bob);
  const notebook = await asAlice.request('POST', '/api/sessions', { body: { path: 'a.ipynb', type: 'notebook', kernel: { name: 'vmstream' } } });
  t.equal(notebook.status, 201);
  const kernelId = notebook.body.kernel.id as string;
  t.same((await asBob.get('/api/kernels')).body, [], 'bob sees no kernel');
  t.same((await asBob.get('/api/sessions')).body, [], 'bob sees no notebook session');
  t.equal((await asBob.get(`/api/kernels/${kernelId}`)).status, 404);
  t.equal((await asBob.request('POST', `/api/kernels/${kernelId}/interrupt`)).status, 404);
  t.equal((await asBob.request('DELETE', `/api/kernels/${kernelId}`)).status, 404);
  t.equal((await asBob.get(`/api/sessions/${notebook.body.id}`)).status, 404);
  await t.rejects(RawChannel.connect(server.port, kernelId, { token: bob }), /HTTP 404/, 'bob cannot open its channels');
  const channel = await RawChannel.connect(server.port, kernelId, { token: alice });
  t.equal((await channel.reply(channel.send('kernel_info_request', {}))).content.status, 'ok', 'alice can');
  t.equal((await asAlice.get('/api/kernels')).body.length, 1);

  // Alice's line taken out of the tokens file (renamed over it, as an editor saves): her channel closes.
  const kept = readFileSync(tokensFile, 'utf8').split('\n').filter((line) => !line.startsWith('alice:')).join('\n');
  writeFileSync(`${tokensFile}.new`, kept, { mode: 0o600 });
  renameSync(`${tokensFile}.new`, tokensFile);
  t.equal((await channel.closed).code, 4401, 'a revoked tenant\'s kernel channel is closed with 4401');
  t.equal((await asAlice.get('/api/kernels')).status, 403, 'and her token refused');
});
