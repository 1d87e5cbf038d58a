/**
 * A kernel channel on a real server, following an execution whose log cannot be read (its stored
 * events removed from LevelDB while the server was stopped, its record kept: a gap the server reads
 * again 8 times, then gives up on): the channel is ended with 1011 and a reason starting
 * LOG_UNREADABLE, so the client's reconnect reads on from its last confirmed message; the third
 * time, the execution is passed over with a note on stderr and its execute_reply.
 */
import path from 'node:path';
import t from 'tap';
import { ClassicLevel } from 'classic-level';
import { HttpClient } from './helpers/http.js';
import { RawChannel, type JupyterMessage } from './helpers/jupyter.js';
import { removeEvents } from './helpers/level-log.js';
import { removeDir } from './helpers/server.js';
import { serverFor } from './helpers/util.js';

const CLUSTER = process.env.VMSTREAM_TEST_TARGET === 'cluster';

/** The point a client session confirmed in a kernel, as the stopped server kept it (src/jupyter/state.ts). */
async function confirmedPoint(dataDir: string, kernelId: string, session: string): Promise<unknown> {
  const db = new ClassicLevel<string, unknown>(path.join(dataDir, 'jupyter'), { keyEncoding: 'utf8', valueEncoding: 'json' });
  await db.open();
  try {
    return await db.get(['c', 'default', kernelId, session].map(encodeURIComponent).join('!'));
  } finally {
    await db.close();
  }
}

t.test('an unreadable log ends the channel with 1011 twice, then is passed over with a note and its reply', { skip: CLUSTER && 'LevelDB surgery: a single process' }, async (t) => {
  const first = await serverFor(t, { keepDirs: true });
  t.teardown(() => {
    removeDir(first.dataDir);
    removeDir(first.workspaceDir);
  });
  const kernelId = (await HttpClient.of(first).request('POST', '/api/kernels')).body.id as string;
  // A client that confirmed its kernel's first cell: its reconnect starts after it. A ping confirms
  // what was written before it, but may overtake messages still queued: one that arrives after the
  // cell's last message was sent after it, and the second cell's writes are followed by one.
  const channel = await RawChannel.connect(first.port, kernelId, { token: first.token });
  const pings: number[] = [];
  channel.socket.on('ping', () => pings.push(channel.messages.length));
  await channel.reply(channel.send('execute_request', { code: '1' }));
  const firstCellEnd = channel.messages.length;
  await channel.reply(channel.send('execute_request', { code: '2' }));
  while (!pings.some((at) => at > firstCellEnd)) await new Promise((resolve) => channel.socket.once('ping', resolve));
  await channel.close();
  // The next cell, run over HTTP in the kernel's session while the client is away; then its events go.
  const lost = await HttpClient.of(first).post('/api/v1/executions/repl?wait=10000', { session_id: kernelId, code: 'console.log("lost")' });
  t.equal(lost.body.status, 'ok');
  await first.stop();
  t.match(await confirmedPoint(first.dataDir, kernelId, channel.session), { number: Number }, 'the client\'s confirmed point was kept');
  t.ok(await removeEvents(first.dataDir, lost.body.execution_id) > 0, 'the second cell\'s events removed, its record kept');

  const second = await serverFor(t, { dataDir: first.dataDir, workspaceDir: first.workspaceDir });
  for (const attempt of [1, 2]) {
    const again = await RawChannel.connect(second.port, kernelId, { token: second.token, session: channel.session });
    const { code, reason } = await again.closed;
    t.equal(code, 1011, `connection ${attempt}: ended with 1011`);
    t.match(reason, /^LOG_UNREADABLE/);
  }
  const third = await RawChannel.connect(second.port, kernelId, { token: second.token, session: channel.session });
  t.teardown(() => third.close());
  // A native execution's messages answer a request named by its execution id (src/jupyter/derive.ts).
  const ofLost = (type: string) => (message: JupyterMessage) => message.header.msg_type === type && message.parent_header.msg_id === lost.body.execution_id;
  const reply = await third.waitFor(ofLost('execute_reply'));
  t.equal(reply.content.status, 'ok', 'the third time it is passed over: its reply says how it ended');
  const note = third.messages.find(ofLost('stream'))!;
  t.equal(note.content.name, 'stderr');
  t.match(note.content.text, /could not be read/);
  t.notOk(third.messages.some((message) => message.header.msg_type === 'stream' && /lost/.test(message.content.text)), 'nothing of the lost output');
});
