/**
 * The MCP tools through the SDK's own Client, over both transports (Streamable HTTP at /mcp, and
 * the stdio bridge `vmstream mcp`), against a real server: the tool list and its schemas, state
 * across run_code calls, a new session when none is given, exceptions as isError, progress before
 * the result, an execution_id that never runs twice (one after the other or at the same time),
 * cancel of a runaway, and a closed session that does not run.
 */
import t from 'tap';
import { call, LONG, MCP_TRANSPORTS, mcpClientFor, textOf } from './helpers/mcp.js';
import { serverFor } from './helpers/util.js';

const TOOLS = {
  create_session: ['name'],
  list_sessions: [],
  close_session: ['session_id'],
  run_code: ['code', 'execution_id', 'session_id', 'timeout_ms'],
  read_output: ['after_seq', 'execution_id', 'limit'],
  cancel: ['execution_id'],
};

t.test('MCP tools over both transports', async (t) => {
  const server = await serverFor(t);
  for (const kind of MCP_TRANSPORTS) {
    t.test(`over ${kind}`, async (t) => {
      const client = await mcpClientFor(t, server, kind);
      t.equal(client.getServerVersion()?.name, 'vmstream');
      t.match(client.getInstructions(), /execution_id/, 'the server tells the model how to use it');

      const { tools } = await client.listTools();
      t.strictSame(tools.map((tool) => tool.name).sort(), Object.keys(TOOLS).sort(), 'exactly these tools');
      for (const tool of tools) {
        t.equal(tool.inputSchema.type, 'object', `${tool.name}: an object input schema`);
        t.strictSame(Object.keys(tool.inputSchema.properties ?? {}).sort(), TOOLS[tool.name as keyof typeof TOOLS], `${tool.name}: its arguments`);
        t.equal(tool.outputSchema?.type, 'object', `${tool.name}: an object output schema`);
        t.ok((tool.description ?? '').length > 60, `${tool.name}: described for a model`);
      }
      const runCode = tools.find((tool) => tool.name === 'run_code')!;
      t.strictSame(runCode.inputSchema.required, ['code']);
      t.strictSame(Object.keys(runCode.outputSchema!.properties!).sort(), ['execution_id', 'last_seq', 'output_truncated', 'session_id', 'status']);
      t.match(runCode.description, /retry/);

      // No session given: a new one, whose id comes back; state persists in it.
      const first = await call(client, 'run_code', { code: 'let counter = 0; counter += 1; counter' });
      t.equal(first.isError, false);
      t.equal(textOf(first), '=> 1');
      const session = first.structuredContent.session_id as string;
      t.match(first.structuredContent, { status: 'ok', output_truncated: false, last_seq: 2 });
      const listed = await call(client, 'list_sessions');
      t.ok(listed.structuredContent.sessions.some((s: any) => s.session_id === session && s.status === 'ready'), 'the new session is listed');
      const second = await call(client, 'run_code', { code: 'counter += 1; counter', session_id: session });
      t.equal(textOf(second), '=> 2', 'state across run_code calls');
      const elsewhere = await call(client, 'run_code', { code: 'typeof counter' });
      t.not(elsewhere.structuredContent.session_id, session, 'another call without session_id: another new session');
      t.equal(textOf(elsewhere), "=> 'undefined'");

      const printed = await call(client, 'run_code', { code: 'console.log("a"); console.warn("b"); console.error("c"); console.log("d\\ne"); 42', session_id: session });
      t.equal(textOf(printed), 'a\n[stderr] b\n[stderr] c\nd\ne\n=> 42', 'output in order, stderr-level lines marked, then the value');

      const failed = await call(client, 'run_code', { code: 'function boom() { throw new TypeError("kaput") }\nboom()', session_id: session });
      t.equal(failed.isError, true, 'an exception is isError');
      t.equal(failed.structuredContent.status, 'error');
      t.match(textOf(failed), /^Uncaught TypeError: kaput\n\s+at boom/, 'the exception with its stack');

      const named = await call(client, 'create_session', { name: `named-${kind}` });
      t.match(named.structuredContent, { session_id: String });
      t.strictSame(JSON.parse(textOf(named)), named.structuredContent, 'the object as JSON text too');

      t.test('progress notifications before the result', async (t) => {
        const progress: Array<{ message?: string; progress: number; resultSeen: boolean }> = [];
        let resultSeen = false;
        const pending = client.callTool(
          { name: 'run_code', arguments: { code: 'console.log("step 1"); await new Promise((r) => setTimeout(r, 300)); console.log("step 2"); "finished"', session_id: session } },
          undefined,
          { ...LONG, onprogress: (p) => progress.push({ ...p, resultSeen }) },
        );
        const result = await pending;
        resultSeen = true;
        t.equal(textOf(result as any), 'step 1\nstep 2\n=> \'finished\'');
        t.ok(progress.length >= 1, 'at least one progress notification');
        t.equal(progress[0]!.message, 'step 1', 'with the latest output line');
        t.ok(progress.every((p) => !p.resultSeen), 'all of them before the result');
        t.ok(progress.every((p, i) => i === 0 || p.progress > progress[i - 1]!.progress), 'progress only grows');
      });

      t.test('the same execution_id never runs twice', async (t) => {
        await call(client, 'run_code', { code: 'let runs = 0', session_id: session });
        const args = { code: 'runs += 1; await new Promise((r) => setTimeout(r, 200)); runs', session_id: session, execution_id: `once-${kind}` };
        const [a, b] = await Promise.all([call(client, 'run_code', args), call(client, 'run_code', args)]);
        const c = await call(client, 'run_code', args);
        for (const result of [a, b, c]) {
          t.equal(textOf(result), '=> 1');
          t.strictSame(result.structuredContent, a.structuredContent, 'the first run\'s result');
        }
        t.equal(textOf(await call(client, 'run_code', { code: 'runs', session_id: session })), '=> 1', 'the counter in session state reads 1');

        // A retry without session_id belongs to the first call's new session; no session is left over.
        const before = (await call(client, 'list_sessions')).structuredContent.sessions.length;
        const fresh = { code: 'globalThis.n = (globalThis.n ?? 0) + 1; n', execution_id: `fresh-${kind}` };
        const [x, y] = await Promise.all([call(client, 'run_code', fresh), call(client, 'run_code', fresh)]);
        const z = await call(client, 'run_code', fresh);
        t.equal(textOf(x), '=> 1');
        t.strictSame([y.structuredContent, z.structuredContent], [x.structuredContent, x.structuredContent]);
        t.equal((await call(client, 'list_sessions')).structuredContent.sessions.length, before + 1, 'one new session, not three');
      });

      t.test('cancel of a runaway', async (t) => {
        let spinning!: () => void;
        const started = new Promise<void>((resolve) => (spinning = resolve));
        const runaway = client.callTool(
          { name: 'run_code', arguments: { code: 'console.log("spinning"); while (true) {}', session_id: session, execution_id: `runaway-${kind}` } },
          undefined,
          { ...LONG, onprogress: () => spinning() },
        );
        await started;
        const cancelled = await call(client, 'cancel', { execution_id: `runaway-${kind}` });
        t.equal(cancelled.isError, undefined, 'cancel is not an error');
        t.strictSame(cancelled.structuredContent, { status: 'cancelled' });
        const result = (await runaway) as any;
        t.equal(result.isError, true, 'the waiting run_code returns isError');
        t.equal(result.structuredContent.status, 'cancelled');
        t.match(textOf(result), /spinning\n[\s\S]*ended with status cancelled/);
        const after = await call(client, 'run_code', { code: '"still usable"', session_id: session });
        t.equal(after.isError, false, 'the session still runs code');
      });

      t.test('errors are error results', async (t) => {
        const unknown = await call(client, 'read_output', { execution_id: 'no-such-run' });
        t.equal(unknown.isError, true);
        t.match(textOf(unknown), /^NOT_FOUND: /);
        const closed = await call(client, 'close_session', { session_id: named.structuredContent.session_id });
        t.strictSame(closed.structuredContent, { session_id: named.structuredContent.session_id, status: 'closed' });
        const refused = await call(client, 'run_code', { code: 'globalThis.ran = true', session_id: named.structuredContent.session_id, execution_id: `closed-${kind}` });
        t.equal(refused.isError, true, 'run_code into a closed session does not run');
        t.match(textOf(refused), /^SESSION_CLOSED: /);
        t.match(textOf(await call(client, 'read_output', { execution_id: `closed-${kind}` })), /^NOT_FOUND: /, 'no execution was created');
        const invalid = await call(client, 'run_code', { session_id: session });
        t.equal(invalid.isError, true, 'a missing argument is refused by its schema');
        t.match(textOf(invalid), /code/);
      });
    });
  }

  t.test('logs and metrics count MCP calls', async (t) => {
    const metrics = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
    const count = (labels: string) => Number(new RegExp(`^vmstream_mcp_calls_total\\{${labels}\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0);
    t.ok(count('tool="run_code",outcome="ok"') >= 20, 'run_code calls that ended ok');
    t.ok(count('tool="run_code",outcome="error"') >= 6, 'and those that were error results');
    t.equal(count('tool="cancel",outcome="ok"'), 2, 'one cancel per transport');
    t.match(metrics, /^vmstream_mcp_requests_open \d+$/m);
    t.match(metrics, /^vmstream_executions_total\{status="cancelled"\} [1-9]/m, 'their executions are counted as any other');
    const logged = server.stderr().split('\n').filter((line) => line.includes('"msg":"mcp call"')).map((line) => JSON.parse(line));
    t.ok(logged.some((entry) => entry.tool === 'run_code' && entry.outcome === 'error' && entry.tenant === 'default' && typeof entry.duration_ms === 'number'), 'each call is logged');
  });
});
