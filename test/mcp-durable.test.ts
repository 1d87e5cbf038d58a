/**
 * Durable results over MCP: a run_code whose client went away mid-run is answered to the retry
 * with the same execution_id, without running again; run_code cuts a 100 000-line output with a note naming read_output and
 * the seq to continue from; read_output pages the rest in contiguous pages, and goes on after the
 * server was killed with SIGKILL and restarted over the same LevelDB, to the final `done`.
 */
import t from 'tap';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { call, mcpClientFor, stdioTransport, textOf } from './helpers/mcp.js';
import { FrameProxy } from './helpers/proxy.js';
import { MAIN, removeDir, startServer, tempDir } from './helpers/server.js';
import { serverFor } from './helpers/util.js';

const LINES = 100_000;
const PAGE = 1000;
// Every console.log is one event: the default limit of 100 000 events would cut this output.
const env = { VMSTREAM_MAX_EVENTS: String(LINES + 100) };

t.test('read_output pages a 100 000-line output and resumes after kill -9 and a restart', async (t) => {
  const dataDir = tempDir('mcp-durable');
  t.teardown(() => {
    removeDir(dataDir);
    removeDir(`${dataDir}-ws`);
  });
  const first = await startServer({ dataDir, env });
  t.teardown(() => first.kill());
  const before = await mcpClientFor(t, first, 'http');

  const run = await call(before, 'run_code', { code: `for (let i = 0; i < ${LINES}; i++) console.log(\`line \${i}\`); "end"`, execution_id: 'big-output' });
  t.equal(run.isError, false);
  t.match(run.structuredContent, { execution_id: 'big-output', status: 'ok', output_truncated: true, last_seq: LINES + 2 });
  const text = textOf(run);
  t.ok(text.length <= 64_000, `the text is bounded (${text.length} characters)`);
  const note = /^\[vmstream\] output truncated .*read_output.*"after_seq": (\d+)/m.exec(text);
  t.ok(note, 'a note names read_output and the seq to continue from');
  const cut = Number(note![1]);
  const shown = text.slice(0, note!.index).split('\n').filter((line) => line !== '');
  t.equal(shown.length, cut, 'the text holds the events up to that seq, one line each');
  const lines = [...shown];

  const seen: number[] = [];
  let afterSeq = cut;
  let done = false;
  let value = '';
  const page = async (client: typeof before) => {
    const result = await call(client, 'read_output', { execution_id: 'big-output', after_seq: afterSeq, limit: PAGE });
    t.equal(result.isError, undefined, `page after ${afterSeq}`);
    const { events, last_seq, done: ended } = result.structuredContent;
    t.ok(events.length > 0 && events.length <= PAGE, 'never more than limit');
    t.equal(events[0].seq, afterSeq + 1, 'from after_seq + 1');
    t.ok(events.every((event: any, index: number) => event.seq === afterSeq + 1 + index), 'contiguous');
    t.equal(last_seq, LINES + 2);
    for (const event of events) {
      seen.push(event.seq);
      if (event.type === 'console') lines.push(event.payload.text);
      if (event.type === 'value') value = event.payload.preview;
    }
    afterSeq = events.at(-1).seq;
    done = ended;
    if (done) t.equal(events.at(-1).type, 'done', '`done` comes last, with done: true');
    else t.not(events.at(-1).type, 'done');
  };
  while (afterSeq < LINES / 2) await page(before);
  t.notOk(done);

  await first.kill();
  const second = await startServer({ dataDir, env });
  t.teardown(() => second.stop());
  const after = await mcpClientFor(t, second, 'http');
  while (!done) await page(after);

  t.equal(afterSeq, LINES + 2, 'to the last seq');
  t.equal(seen.length, LINES + 2 - cut, 'every event after the cut, once');
  t.equal(value, "'end'");
  t.equal(lines.length, LINES);
  t.ok(lines.every((line, index) => line === `line ${index}`), 'every line, in order, none twice');

  const again = await call(after, 'read_output', { execution_id: 'big-output', after_seq: LINES + 2 });
  t.strictSame(again.structuredContent, { events: [], last_seq: LINES + 2, done: true }, 'nothing after the end');
  const retried = await call(after, 'run_code', { code: 'throw new Error("must not run")', execution_id: 'big-output' });
  t.match(retried.structuredContent, { status: 'ok', last_seq: LINES + 2, output_truncated: true }, 'after the restart too, the same id returns the first result');
  t.equal(textOf(retried), text, 'the same text');
});

t.test('a client that went away mid-run gets its answer by retrying with the same execution_id', async (t) => {
  const server = await serverFor(t);
  const dropped = await mcpClientFor(t, server, 'http');
  const code = 'globalThis.runs = (globalThis.runs ?? 0) + 1; console.log("started"); await new Promise((r) => setTimeout(r, 1000)); console.log("finished"); runs';
  let started!: () => void;
  const running = new Promise<void>((resolve) => (started = resolve));
  const lost = dropped.callTool({ name: 'run_code', arguments: { code, execution_id: 'retry-me' } }, undefined, { onprogress: () => started() });
  await running;
  // Closing the client aborts its HTTP request: the server sees the connection go.
  await dropped.close();
  await t.rejects(lost, 'the first call is lost with its connection');

  const retry = await mcpClientFor(t, server, 'stdio');
  const answer = await call(retry, 'run_code', { code, execution_id: 'retry-me' });
  t.equal(textOf(answer), 'started\nfinished\n=> 1', 'the whole output of the one run');
  t.equal(textOf(await call(retry, 'run_code', { code: 'runs', session_id: answer.structuredContent.session_id })), '=> 1', 'it ran once');
  t.notMatch(server.stderr(), /"level":5\d/, 'the server logged no error');
});

t.test('the stdio bridge rides out a server restart', async (t) => {
  const dataDir = tempDir('mcp-bridge');
  t.teardown(() => {
    removeDir(dataDir);
    removeDir(`${dataDir}-ws`);
  });
  const first = await startServer({ dataDir });
  t.teardown(() => first.kill());
  // The restarted server listens on another port: the proxy keeps the bridge's URL the same.
  const proxy = await FrameProxy.start(first.port);
  t.teardown(() => proxy.close());
  const client = new Client({ name: 'vmstream-test', version: '1.0.0' });
  await client.connect(stdioTransport(process.execPath, [MAIN, 'mcp', '--url', `ws://127.0.0.1:${proxy.port}/v1/ws`, '--token', first.token]));
  t.teardown(() => client.close());
  const before = await call(client, 'run_code', { code: '"before"', execution_id: 'before-restart' });
  t.equal(textOf(before), "=> 'before'");

  await first.kill();
  await t.rejects(call(client, 'list_sessions'), /vmstream at http:\/\/127\.0\.0\.1:\d+\/mcp: /, 'while the server is down: an error at once, not a wait');
  const second = await startServer({ dataDir });
  t.teardown(() => second.stop());
  proxy.targetPort = second.port;

  t.equal(textOf(await call(client, 'run_code', { code: 'throw new Error("must not run")', execution_id: 'before-restart' })), "=> 'before'", 'the same bridge, the stored result');
  t.equal(textOf(await call(client, 'run_code', { code: '"after"' })), "=> 'after'", 'and new runs');
});

t.test('limits: the event limit applies as on the socket; a cut text still ends with the exception', async (t) => {
  const server = await serverFor(t, { env: { VMSTREAM_MAX_EVENTS: '1000' } });
  const client = await mcpClientFor(t, server, 'http');
  const flood = await call(client, 'run_code', { code: 'for (let i = 0; i < 5000; i++) console.log(i)' });
  t.equal(flood.isError, true);
  t.match(flood.structuredContent, { status: 'error', output_truncated: false, last_seq: 1000 });
  t.match(textOf(flood), /^0\n1\n2\n[\s\S]*\n\[stderr\] \[vmstream\] output limit reached \(1000 events[^\n]*\n\[vmstream\] ended with status error \(output_limit\)$/);

  const late = await call(client, 'run_code', { code: 'for (let i = 0; i < 100; i++) console.log(String(i).padEnd(1000, ".")); throw new Error("late")' });
  const text = textOf(late);
  t.ok(text.length <= 64_000, `bounded (${text.length} characters)`);
  t.match(late.structuredContent, { status: 'error', output_truncated: true });
  t.match(text, /\n\[vmstream\] output truncated [^\n]*read_output[^\n]*\nUncaught Error: late\n[\s\S]*\n\[vmstream\] ended with status error$/, 'the note, then the exception and the ending');
});
