/**
 * The Jupyter front door, black box: `@jupyterlab/services` (JupyterLab's own client) and raw
 * kernel sockets against a real server. Kernelspecs, kernels, kernel_info, execute with its
 * messages, state across cells, streaming, interrupt, the notebook sessions API, the kernel as a
 * native session, the other shell requests, the JSON and v1 wire formats, and tokens.
 */
import t from 'tap';
import { KernelAPI, KernelSpecAPI, ServerConnection } from '@jupyterlab/services';
import type { Kernel, KernelMessage } from '@jupyterlab/services';
import WebSocket from 'ws';
import { TestClient } from './helpers/client.js';
import { HttpClient } from './helpers/http.js';
import { kernelManager, RawChannel, sessionManager, settingsFor } from './helpers/jupyter.js';
import { startServer, type TestServer } from './helpers/server.js';

/** Runs a cell and collects every iopub message of it, and its reply. */
async function run(kernel: Kernel.IKernelConnection, code: string, onIOPub?: (message: KernelMessage.IIOPubMessage) => void) {
  const iopub: KernelMessage.IIOPubMessage[] = [];
  const future = kernel.requestExecute({ code });
  future.onIOPub = (message) => {
    iopub.push(message);
    onIOPub?.(message);
  };
  const reply = (await future.done) as KernelMessage.IExecuteReplyMsg;
  const types = iopub.map((message) => message.header.msg_type);
  const streams = iopub.filter((message) => message.header.msg_type === 'stream').map((message) => (message.content as KernelMessage.IStreamMsg['content']));
  const result = iopub.find((message) => message.header.msg_type === 'execute_result')?.content as KernelMessage.IExecuteResultMsg['content'] | undefined;
  const error = iopub.find((message) => message.header.msg_type === 'error')?.content as KernelMessage.IErrorMsg['content'] | undefined;
  return { reply: reply.content, iopub, types, streams, result, error };
}

let server: TestServer;

t.before(async () => {
  server = await startServer();
});
t.teardown(() => server.stop());

t.test('kernelspecs and /api answer as Jupyter Server does', async (t) => {
  const settings = settingsFor(server.port, server.token);
  const specs = await KernelSpecAPI.getSpecs(settings);
  t.equal(specs.default, 'vmstream');
  t.equal(specs.kernelspecs.vmstream!.language, 'javascript');
  t.same(specs.kernelspecs.vmstream!.argv, []);
  const api = await ServerConnection.makeRequest(`http://127.0.0.1:${server.port}/api`, {}, settings);
  t.equal(api.status, 200);
  t.type(((await api.json()) as { version: string }).version, 'string');
});

t.test('a kernel runs cells: stream, result, error, idle, reply, state across cells', async (t) => {
  const manager = await kernelManager(server);
  t.teardown(() => manager.dispose());
  const kernel = await manager.startNew({ name: 'vmstream' });
  t.teardown(() => kernel.shutdown().catch(() => undefined));

  await kernel.info;
  const info = (await kernel.requestKernelInfo())!.content as KernelMessage.IInfoReply;
  t.equal(info.status, 'ok');
  t.match(info.protocol_version, /^5\./);
  t.equal(info.language_info.name, 'javascript');
  t.equal(info.language_info.file_extension, '.js');

  const first = await run(kernel, 'console.log("to stdout"); console.warn("to stderr"); var total = 40; ({ total, list: [1, "two"] })');
  t.equal(first.reply.status, 'ok');
  t.equal(first.reply.execution_count, 1);
  t.same(first.types, ['status', 'execute_input', 'stream', 'stream', 'execute_result', 'status']);
  t.same(first.iopub.map((message) => (message.content as { execution_state?: string }).execution_state).filter(Boolean), ['busy', 'idle']);
  t.same(first.streams, [{ name: 'stdout', text: 'to stdout\n' }, { name: 'stderr', text: 'to stderr\n' }]);
  t.equal(first.result!.data['text/plain'], "{ total: 40, list: [ 1, 'two' ] }");
  t.same(first.result!.data['application/json'], { total: 40, list: [1, 'two'] }, 'plain data also as JSON');

  const second = await run(kernel, 'total + 2');
  t.equal(second.result!.data['text/plain'], '42', 'state carries across cells');
  t.equal(second.result!.execution_count, 2);
  const fn = await run(kernel, '(function f() {})');
  t.equal(fn.result!.data['application/json'], undefined, 'a function is not JSON');

  const failed = await run(kernel, 'null.boom');
  t.equal(failed.reply.status, 'error');
  t.equal(failed.error!.ename, 'TypeError');
  t.match(failed.error!.evalue, /null/);
  t.ok(failed.error!.traceback.length > 0);
  t.equal(failed.types.at(-1), 'status');
});

t.test('a burst of lines: stream messages carry consecutive lines of one stream, all of them, in order', async (t) => {
  const manager = await kernelManager(server);
  t.teardown(() => manager.dispose());
  const kernel = await manager.startNew();
  t.teardown(() => kernel.shutdown().catch(() => undefined));

  const lines = 5000;
  // Every 997th line to stderr: a burst of one stream is cut where the other stream comes between.
  const cell = await run(kernel, `for (let i = 0; i < ${lines}; i++) { if (i % 997 === 0) console.warn('e' + i); else console.log('o' + i) }`);
  t.equal(cell.reply.status, 'ok');
  const got = cell.streams.flatMap(({ name, text }) => {
    t.ok(text.endsWith('\n'), 'each message holds whole lines');
    return text.split('\n').slice(0, -1).map((line) => `${name}:${line}`);
  });
  const expected = Array.from({ length: lines }, (_, i) => (i % 997 === 0 ? `stderr:e${i}` : `stdout:o${i}`));
  t.same(got, expected, 'every line once, in order, each on its stream');
  t.ok(cell.streams.length < lines, `${lines} lines came in ${cell.streams.length} stream messages`);
  t.ok(cell.streams.every(({ name, text }) => text.split('\n').slice(0, -1).every((line) => line.startsWith(name === 'stderr' ? 'e' : 'o'))), 'no message mixes the streams');

  // Each stream message's id names the seqs of the lines it carries (first-last, or one seq), and
  // together they cover the run's console events once each, in order.
  const seqs = cell.iopub.filter((message) => message.header.msg_type === 'stream').map((message) => {
    const [, first, last] = /_(\d+)(?:-(\d+))?_0$/.exec(message.header.msg_id)!;
    return [Number(first), Number(last ?? first)] as const;
  });
  t.same(seqs.map(([first, last]) => last - first + 1), cell.streams.map(({ text }) => text.split('\n').length - 1), 'an id counts its lines');
  t.ok(seqs.every(([first], index) => index === 0 || first === seqs[index - 1]![1] + 1), 'the seqs run on from one message to the next');
});

t.test('output streams while the cell runs; interrupt stops a waiting run and a synchronous loop', async (t) => {
  const manager = await kernelManager(server);
  t.teardown(() => manager.dispose());
  const kernel = await manager.startNew();
  t.teardown(() => kernel.shutdown().catch(() => undefined));

  let interrupted: Promise<void> | null = null;
  const waiting = await run(kernel, 'console.log("started"); await new Promise(() => {})', (message) => {
    // The first line arrives while the cell still runs: only an interrupt can end it.
    if (message.header.msg_type === 'stream') interrupted = kernel.interrupt();
  });
  await interrupted;
  t.same(waiting.streams, [{ name: 'stdout', text: 'started\n' }]);
  t.equal(waiting.reply.status, 'error');
  t.equal(waiting.error!.ename, 'KeyboardInterrupt');

  let busy = false;
  const loop = run(kernel, 'for (;;) {}', (message) => {
    if (message.header.msg_type === 'execute_input') busy = true;
  });
  while (!busy) await new Promise((resolve) => setImmediate(resolve));
  await KernelAPI.interruptKernel(kernel.id, settingsFor(server.port, server.token));
  const stopped = await loop;
  t.equal(stopped.reply.status, 'error', 'the synchronous loop was stopped');
  const after = await run(kernel, '6 * 7');
  t.equal(after.result!.data['text/plain'], '42', 'the kernel runs again');
});

t.test('restart: a fresh context, the same kernel id', async (t) => {
  const manager = await kernelManager(server);
  t.teardown(() => manager.dispose());
  const kernel = await manager.startNew();
  t.teardown(() => kernel.shutdown().catch(() => undefined));
  await run(kernel, 'var before = 1');
  await kernel.restart();
  const after = await run(kernel, 'typeof before');
  t.equal(after.result!.data['text/plain'], "'undefined'", 'earlier state is gone');
  t.equal((await HttpClient.of(server).request('POST', `/api/kernels/${kernel.id}/restart`)).body.id, kernel.id, 'REST restart answers the model');
});

t.test('the kernel is a vmstream session; kernels REST answers as Jupyter clients expect', async (t) => {
  const http = HttpClient.of(server);
  const started = await http.request('POST', '/api/kernels', { body: { name: 'vmstream' }, headers: { authorization: `token ${server.token}` } });
  t.equal(started.status, 201);
  t.match(started.body, { id: String, name: 'vmstream', execution_state: 'idle', connections: 0, last_activity: String });
  const kernelId = started.body.id as string;

  const native = await TestClient.connect(server.url, server.token);
  t.teardown(() => native.close());
  const sessions = await native.expect('sessions', { op: 'session.list' });
  t.ok(sessions.items.some((session: { session_id: string }) => session.session_id === kernelId), 'session.list shows the kernel');
  const nativeRun = await native.run(kernelId, 'globalThis.fromNative = 5; fromNative');
  t.equal(nativeRun.done.payload.status, 'ok');

  const manager = await kernelManager(server);
  t.teardown(() => manager.dispose());
  const kernel = manager.connectTo({ model: { id: kernelId, name: 'vmstream' } });
  const shared = await run(kernel, 'fromNative * 2');
  t.equal(shared.result!.data['text/plain'], '10', 'one context for both front doors');

  t.equal((await http.get(`/api/kernels/${kernelId}?${Date.now()}`, { headers: { 'content-type': 'application/json' } })).status, 200, 'cache-buster and content-type on GET');
  const list = await http.get('/api/kernels');
  t.ok(list.body.some((model: { id: string }) => model.id === kernelId));
  t.equal((await http.request('POST', `/api/kernels/${kernelId}/interrupt`)).status, 204);
  t.equal((await http.request('POST', '/api/kernels', { body: { name: 'python3' } })).status, 400, 'an unknown kernelspec');
  t.equal((await http.request('DELETE', `/api/kernels/${kernelId}`)).status, 204);
  t.equal((await http.get(`/api/kernels/${kernelId}`)).status, 404, 'gone after DELETE');
  t.equal((await http.get('/api/kernels/nope')).status, 404);
  const after = await native.expect('sessions', { op: 'session.list' });
  t.notOk(after.items.some((session: { session_id: string }) => session.session_id === kernelId), 'the session is closed too');
});

t.test('notebook sessions: create, list, rename, delete (which shuts the kernel down)', async (t) => {
  const kernels = await kernelManager(server);
  const sessions = await sessionManager(server, kernels);
  t.teardown(() => {
    sessions.dispose();
    kernels.dispose();
  });
  const notebook = await sessions.startNew({ path: 'work/a.ipynb', name: 'a.ipynb', type: 'notebook', kernel: { name: 'vmstream' } });
  t.equal(notebook.path, 'work/a.ipynb');
  const cell = await run(notebook.kernel!, '1 + 1');
  t.equal(cell.result!.data['text/plain'], '2');
  const found = await sessions.findByPath('work/a.ipynb');
  t.equal(found?.id, notebook.id);
  await notebook.setPath('work/b.ipynb');
  const http = HttpClient.of(server);
  const stored = await http.get(`/api/sessions/${notebook.id}`);
  t.equal(stored.body.path, 'work/b.ipynb', 'PATCH of the path is kept');
  t.equal(stored.body.kernel.id, notebook.kernel!.id);
  const again = await http.request('POST', '/api/sessions', { body: { path: 'work/b.ipynb', type: 'notebook', kernel: { name: 'vmstream' } } });
  t.equal(again.status, 201);
  t.equal(again.body.id, notebook.id, 'the same path gets the same session');
  const kernelId = notebook.kernel!.id;
  t.equal((await http.request('DELETE', `/api/sessions/${notebook.id}`)).status, 204);
  t.equal((await http.get(`/api/kernels/${kernelId}`)).status, 404, 'its kernel was shut down');
  t.equal((await http.get(`/api/sessions/${notebook.id}`)).status, 404);
});

t.test('the other shell requests, over JSON frames', async (t) => {
  const http = HttpClient.of(server);
  const kernelId = (await http.request('POST', '/api/kernels')).body.id as string;
  const channel = await RawChannel.connect(server.port, kernelId, { token: server.token });
  t.teardown(() => channel.close());
  t.equal(channel.socket.protocol, '', 'no subprotocol asked, none chosen: JSON text');

  const info = await channel.reply(channel.send('kernel_info_request', {}));
  t.equal(info.content.language_info.name, 'javascript');
  t.equal(typeof info.header.msg_id, 'string');

  const exec = channel.send('execute_request', { code: 'const greeting = "hi"; greeting', silent: false, store_history: true, stop_on_error: true });
  const reply = await channel.reply(exec);
  t.equal(reply.content.status, 'ok');
  t.same(channel.of(exec, 'execute_result').map((message) => message.content.data), [{ 'text/plain': "'hi'", 'application/json': 'hi' }]);

  const silent = channel.send('execute_request', { code: 'console.log("shh"); 5', silent: true });
  await channel.reply(silent);
  t.same(channel.of(silent, 'execute_input'), [], 'silent: no execute_input');
  t.same(channel.of(silent, 'execute_result'), [], 'silent: no execute_result');

  const failing = channel.send('execute_request', { code: 'await new Promise((r) => setTimeout(r, 50)); throw new Error("first")', stop_on_error: true });
  const skipped = channel.send('execute_request', { code: '"never"', stop_on_error: true });
  t.equal((await channel.reply(failing)).content.status, 'error');
  t.equal((await channel.reply(skipped)).content.status, 'aborted', 'stop_on_error aborts what was queued behind');

  const globalName = await channel.reply(channel.send('complete_request', { code: 'gree', cursor_pos: 4 }));
  t.same(globalName.content, { status: 'ok', matches: ['greeting'], cursor_start: 0, cursor_end: 4, metadata: {} }, 'a name of the session');
  const code = '"😀" + JSON.str';
  const points = [...code].length;
  const property = await channel.reply(channel.send('complete_request', { code, cursor_pos: points }));
  t.same(property.content.matches, ['stringify'], 'a property name');
  t.same([property.content.cursor_start, property.content.cursor_end], [points - 3, points], 'cursors in code points, not UTF-16 units');
  t.same((await channel.reply(channel.send('is_complete_request', { code: 'function f() {' }))).content, { status: 'incomplete', indent: '' });
  t.equal((await channel.reply(channel.send('is_complete_request', { code: '1 + 1' }))).content.status, 'complete');
  t.same((await channel.reply(channel.send('comm_info_request', {}))).content, { status: 'ok', comms: {} });
  t.equal((await channel.reply(channel.send('inspect_request', { code: 'greeting', cursor_pos: 3 }))).content.status, 'ok');
  const history = await channel.reply(channel.send('history_request', { hist_access_type: 'tail', n: 2, output: false, raw: true }));
  t.equal(history.content.history.length, 2);
  t.match(history.content.history[0][2], /"shh"|first/);
  const interrupt = await channel.reply(channel.send('interrupt_request', {}, 'control'));
  t.equal(interrupt.channel, 'control');
  t.equal(interrupt.content.status, 'ok');

  const shutdown = await channel.reply(channel.send('shutdown_request', { restart: false }, 'control'));
  t.equal(shutdown.content.status, 'ok');
  t.equal((await http.get(`/api/kernels/${kernelId}`)).status, 404);
});

t.test('the v1 binary subprotocol when asked for', async (t) => {
  const manager = await kernelManager(server);
  t.teardown(() => manager.dispose());
  const kernel = await manager.startNew();
  t.teardown(() => kernel.shutdown().catch(() => undefined));
  const cell = await run(kernel, 'console.log("binary"); 1');
  t.equal(cell.streams[0]!.text, 'binary\n');
  t.equal(kernel.connectionStatus, 'connected');
  const raw = new WebSocket(`ws://127.0.0.1:${server.port}/api/kernels/${kernel.id}/channels?session_id=s`, ['v1.kernel.websocket.jupyter.org'], { headers: { authorization: `Bearer ${server.token}` } });
  await new Promise((resolve, reject) => raw.once('open', resolve).once('error', reject));
  t.equal(raw.protocol, 'v1.kernel.websocket.jupyter.org');
  raw.close();
});

t.test('tokens: missing is 401, wrong is 403, on REST and on the WebSocket upgrade', async (t) => {
  const http = HttpClient.of(server, null);
  t.equal((await http.get('/api/kernels')).status, 401);
  t.equal((await http.get('/api/kernels', { headers: { authorization: 'token wrong-token' } })).status, 403);
  t.equal((await http.get(`/api/kernels?token=${server.token}`)).status, 200, '?token= works');
  t.equal((await http.get('/api/kernels', { headers: { authorization: `Bearer ${server.token}` } })).status, 200, 'Bearer works');
  const kernelId = (await HttpClient.of(server).request('POST', '/api/kernels')).body.id as string;
  const refused = async (headers: Record<string, string>) => {
    const socket = new WebSocket(`ws://127.0.0.1:${server.port}/api/kernels/${kernelId}/channels`, { headers });
    return new Promise<number>((resolve) => {
      socket.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
      socket.once('open', () => resolve(101));
    });
  };
  t.equal(await refused({}), 401, 'refused on upgrade, not accepted then closed');
  t.equal(await refused({ authorization: 'token wrong-token' }), 403);
  t.equal(await refused({ authorization: `token ${server.token}`, 'x-kernel': 'other' }), 101);
});

t.test('a flood of execute requests is refused past the queue limit', async (t) => {
  const limited = await startServer({ env: { VMSTREAM_MAX_QUEUED: '2' } });
  t.teardown(() => limited.stop());
  const kernelId = (await HttpClient.of(limited).request('POST', '/api/kernels')).body.id as string;
  const channel = await RawChannel.connect(limited.port, kernelId, { token: limited.token });
  t.teardown(() => channel.close());
  const running = channel.send('execute_request', { code: 'await new Promise(() => {})' });
  await channel.waitFor((message) => message.parent_header.msg_id === running && message.header.msg_type === 'execute_input');
  const waiting = channel.send('execute_request', { code: '1' });
  const refused = await channel.reply(channel.send('execute_request', { code: '2' }));
  t.equal(refused.content.status, 'error');
  t.equal(refused.content.ename, 'LIMIT_EXCEEDED');
  await channel.reply(channel.send('interrupt_request', {}, 'control'));
  t.equal((await channel.reply(running)).content.status, 'error', 'the interrupted run');
  t.equal((await channel.reply(waiting)).content.status, 'aborted', 'what waited behind it (stop_on_error)');
});
