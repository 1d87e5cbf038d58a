/**
 * Event streams (SSE) count against the server's one send budget (VMSTREAM_SEND_BUDGET_BYTES), as
 * WebSockets do: readers that read nothing hold no more than the budget between them (the streams
 * past it wait their turn, `vmstream_send_budget_waiting`), and once they read, each still gets
 * every event of the log once, in order.
 */
import t from 'tap';
import { HttpClient, openSse, type SseMessage } from './helpers/http.js';
import { startServer } from './helpers/server.js';

const BUDGET = 256 * 1024;
const server = await startServer({ env: { VMSTREAM_SEND_BUDGET_BYTES: String(BUDGET) } });
t.teardown(() => server.stop());
const api = HttpClient.of(server);
const session = await api.createSession('sse-budget');

async function metric(name: string): Promise<number> {
  const text = (await api.get('/metrics', { token: null })).body as string;
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1]);
}

function seqsOf(messages: SseMessage[]): number[] {
  return messages.map((message) => JSON.parse(message.data).seq as number);
}

t.test('readers that read nothing wait their turn within the budget, then catch up gap-free', async (t) => {
  const lines = 10_000;
  const readers = 4;
  const record = await api.repl(session, `for (let i = 0; i < ${lines}; i++) console.log(String(i).padStart(6, '0') + ' ' + 'x'.repeat(1000))`);
  await api.untilDone(record.execution_id);
  let read!: () => void;
  const startReading = new Promise<void>((resolve) => (read = resolve));
  const url = `${api.base}/api/v1/executions/${record.execution_id}/events`;
  const streams = await Promise.all(Array.from({ length: readers }, () => openSse(url, server.token, {}, startReading)));
  // Their sockets and the readers' buffers fill; then every stream past the budget waits.
  while ((await metric('vmstream_send_budget_waiting')) === 0) await new Promise((r) => setImmediate(r));
  const held = await metric('vmstream_send_budget_bytes');
  // Each stream stops at the first event past the budget (an event here is under 2 KiB).
  t.ok(held <= BUDGET + readers * 2048, `the streams hold ${held} bytes between them, within the budget of ${BUDGET}`);
  t.ok(held > 0, 'and something: the readers are behind');
  read();
  for (const stream of streams) {
    const seqs = seqsOf(await stream.messages);
    t.equal(seqs.length, lines + 2, 'the lines, the completion value, done');
    t.ok(seqs.every((seq, index) => seq === index + 1), 'each seq once, in order');
  }
  while ((await metric('vmstream_event_streams_open')) !== 0) await new Promise((r) => setImmediate(r));
  t.equal(await metric('vmstream_send_budget_bytes'), 0, 'closed streams hold nothing');
  t.equal(await metric('vmstream_send_budget_waiting'), 0, 'and nothing waits');
});
