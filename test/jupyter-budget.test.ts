/**
 * Jupyter kernel channels count against the server's one send budget (VMSTREAM_SEND_BUDGET_BYTES),
 * as the protocol's sockets do: channels whose clients read nothing hold no more than the budget
 * between them (the ones past it wait their turn), and once they read, each gets every line of its
 * cell once, in order.
 */
import t from 'tap';
import { BATCH_MAX_BYTES } from '../protocol/batch.js';
import { HttpClient } from './helpers/http.js';
import { RawChannel, type JupyterMessage } from './helpers/jupyter.js';
import { startServer } from './helpers/server.js';

const BUDGET = 256 * 1024;
const server = await startServer({ env: { VMSTREAM_SEND_BUDGET_BYTES: String(BUDGET) } });
t.teardown(() => server.stop());
const api = HttpClient.of(server);

async function metric(name: string): Promise<number> {
  const text = (await api.get('/metrics', { token: null })).body as string;
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1]);
}

/** The numbers of the `stream` lines a channel received, in the order they came. */
function linesOf(messages: JupyterMessage[]): number[] {
  const text = messages.filter((message) => message.header.msg_type === 'stream').map((message) => message.content.text as string).join('');
  return [...text.matchAll(/^line (\d+) /gm)].map((match) => Number(match[1]));
}

t.test('channels whose clients read nothing wait their turn within the budget, then get every line', async (t) => {
  const lines = 10_000;
  const clients = 4;
  const channels: RawChannel[] = [];
  const requests: string[] = [];
  for (let index = 0; index < clients; index++) {
    const kernelId = (await api.request('POST', '/api/kernels')).body.id as string;
    const channel = await RawChannel.connect(server.port, kernelId, { token: server.token });
    t.teardown(() => channel.close());
    // The client stops reading its socket: the server's buffer and the kernel's fill.
    channel.socket.pause();
    channels.push(channel);
    requests.push(channel.send('execute_request', { code: `for (let i = 0; i < ${lines}; i++) console.log('line ' + i + ' ' + 'x'.repeat(1000))` }));
  }
  while ((await metric('vmstream_send_budget_waiting')) === 0) await new Promise((r) => setImmediate(r));
  const held = await metric('vmstream_send_budget_bytes');
  // A channel stops at the first write past the budget: one `events` frame's lines, as one `stream`
  // message (at most BATCH_MAX_BYTES of stored events; the message's header and JSON under 2 KiB more).
  t.ok(held <= BUDGET + clients * (BATCH_MAX_BYTES + 2048), `the channels hold ${held} bytes between them, within the budget of ${BUDGET}`);
  for (const channel of channels) channel.socket.resume();
  for (const [index, channel] of channels.entries()) {
    const reply = await channel.reply(requests[index]!);
    t.equal(reply.content.status, 'ok');
    t.same(linesOf(channel.messages), Array.from({ length: lines }, (_, line) => line), 'every line once, in order');
  }
});
