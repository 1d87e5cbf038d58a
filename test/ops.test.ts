/**
 * The operator's view of a real server: /healthz, /readyz, /metrics (Prometheus text) moving with
 * what the server does, and the JSON log lines on stderr (startup config with the token redacted,
 * connections, execution outcomes, sandbox host losses).
 */
import t from 'tap';
import { TestClient } from './helpers/client.js';
import { HttpClient } from './helpers/http.js';
import { startServer } from './helpers/server.js';

const server = await startServer({ env: { VMSTREAM_STOP_GRACE_MS: '50' } });
t.teardown(() => server.stop());
const api = HttpClient.of(server, null);

async function scrape(): Promise<Map<string, number>> {
  const reply = await api.get('/metrics');
  const samples = new Map<string, number>();
  for (const line of (reply.body as string).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

function logLines(): Array<Record<string, any>> {
  return server.stderr().split('\n').filter(Boolean).map((line) => JSON.parse(line));
}

t.test('/healthz and /readyz, without a token', async (t) => {
  const health = await api.get('/healthz');
  t.equal(health.status, 200);
  t.same(health.body, { status: 'ok' });
  let ready = await api.get('/readyz');
  // The sandbox process may still be booting just after `listening`.
  while (ready.status === 503 && ready.body.checks.workers === false) ready = await api.get('/readyz');
  t.equal(ready.status, 200);
  t.same(ready.body, { status: 'ready', checks: { store: true, workers: true, accepting: true }, sandbox: ready.body.sandbox });
  t.match(ready.body.sandbox, { confinement: 'bwrap', confined: true, detail: /^bubblewrap/ }, 'user code is confined (CI installs bubblewrap)');
});

t.test('/metrics: Prometheus text that follows what the server does', async (t) => {
  const reply = await api.get('/metrics');
  t.equal(reply.status, 200);
  t.match(reply.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const before = await scrape();
  for (const name of [
    'vmstream_executions_total{status="ok"}',
    'vmstream_executions_total{status="crashed"}',
    'vmstream_events_appended_total',
    'vmstream_replay_reads_total',
    'vmstream_replay_cache_hits_total',
    'vmstream_replay_cache_misses_total',
    'vmstream_replay_cache_bytes',
    'vmstream_catchup_kept_bytes',
    'vmstream_send_budget_bytes',
    'vmstream_send_budget_waiting',
    'vmstream_sockets_open',
    'vmstream_event_streams_open',
    'vmstream_executions_live',
    'vmstream_backpressure_pauses_total',
    'vmstream_worker_restarts_total{reason="timeout"}',
    'vmstream_sessions_open',
    'vmstream_execution_queue_wait_seconds_count',
    'vmstream_store_batch_items_count',
    'vmstream_store_batch_seconds_bucket{le="0.001"}',
    'vmstream_execution_duration_seconds_bucket{le="+Inf"}',
    'process_cpu_user_seconds_total',
    'nodejs_eventloop_lag_seconds',
  ]) t.ok(before.has(name), name);

  const client = await TestClient.connect(server.url, server.token);
  t.equal((await scrape()).get('vmstream_sockets_open'), 1, 'one socket open');
  const session = await client.createSession();
  const { execution } = await client.run(session, 'console.log(1); 2');
  await client.expect('subscribed', { op: 'subscribe', execution_id: execution.execution_id, after_seq: 0 });
  // The replay repeats the three events: six in all once it is through.
  await client.waitFor((f) => f.op === 'event' && client.events.get(execution.execution_id)!.length === 6);
  await client.close();
  let after = await scrape();
  while (after.get('vmstream_sockets_open') !== 0) after = await scrape();
  const grew = (name: string) => after.get(name)! - before.get(name)!;
  t.equal(grew('vmstream_executions_total{status="ok"}'), 1, 'one execution ended ok');
  t.equal(grew('vmstream_events_appended_total'), 3, 'console, value, done');
  t.equal(grew('vmstream_execution_duration_seconds_count'), 1, 'its latency observed');
  t.equal(grew('vmstream_execution_queue_wait_seconds_count'), 1, 'its wait in the queue observed');
  t.equal(grew('vmstream_sessions_open'), 1, 'the session is open');
  t.ok(grew('vmstream_store_batch_items_count') >= 1, 'batches observed');
  t.ok(after.get('vmstream_store_batch_items_sum')! >= 3, 'batch sizes observed');
  t.ok(grew('vmstream_replay_reads_total') >= 1, 'the late subscribe read the store');
  t.ok(grew('vmstream_replay_cache_misses_total') >= 1, 'through the replay cache, which read the block from the store');
  t.ok(after.get('vmstream_replay_cache_bytes')! > 0, 'and holds it');
  t.equal(after.get('vmstream_send_budget_bytes'), 0, 'a closed socket holds nothing of the send budget');
  t.equal(after.get('vmstream_send_budget_waiting'), 0, 'nothing waits for it');
  // A healthy store: nothing failed, nothing waits (the commit log's own test makes a store fail).
  t.equal(after.get('vmstream_store_commit_failures_total'), 0, 'no failed store writes');
  t.equal(after.get('vmstream_store_items_waiting'), 0, 'no items waiting for a retry');
});

t.test('a runaway costs its worker: restart counted and logged', async (t) => {
  const name = 'vmstream_worker_restarts_total{reason="timeout"}';
  const before = (await scrape()).get(name)!;
  const http = HttpClient.of(server);
  const session = await http.createSession();
  const record = await http.repl(session, 'while (true) {}', { timeout_ms: 200 });
  const events = await http.untilDone(record.execution_id);
  t.match(events.at(-1), { type: 'done', payload: { status: 'timeout' } });
  let restarts = (await scrape()).get(name)!;
  while (restarts === before) restarts = (await scrape()).get(name)!;
  t.equal(restarts, before + 1, 'counted with its reason');
  t.ok(logLines().some((line) => line.msg.startsWith('a sandbox host was lost') && line.reason === 'timeout' && line.level === 40), 'a warning names the reason');
  t.equal((await scrape()).get('vmstream_executions_total{status="timeout"}'), 1);
});

t.test('logs: JSON lines on stderr, the token never in them', async (t) => {
  const lines = logLines();
  t.ok(lines.length > 0);
  t.notMatch(server.stderr(), server.token, 'the token appears nowhere');
  const starting = lines.find((line) => line.msg === 'starting')!;
  t.equal(starting.workers, 2);
  t.notOk(starting.config, 'the whole config is logged at debug only (test/start-banner.test.ts)');
  t.match(lines.find((line) => line.msg === 'listening'), { http: `http://127.0.0.1:${server.port}` });
  t.ok(lines.some((line) => line.msg === 'socket opened' && line.tenant === 'default'), 'socket opened');
  t.ok(lines.some((line) => line.msg === 'socket closed' && line.tenant === 'default'), 'socket closed');
  const ended = lines.filter((line) => line.msg === 'execution ended');
  t.ok(ended.some((line) => line.status === 'ok' && line.events === 3 && line.kind === 'repl'), 'outcome: ok');
  t.ok(ended.some((line) => line.status === 'timeout' && line.reason === 'timeout'), 'outcome: timeout');
  t.ok(lines.every((line) => typeof line.time === 'number' && typeof line.level === 'number'));
});
