/**
 * Where an execution's log ends, as ExecutionService.locate and readEvents tell the front doors that
 * answer without subscribing (the HTTP events page's `done`, MCP read_output's `done`, an event
 * stream's 204), in process over a store that fails on demand (test/helpers/memory-store.ts): a log
 * the store refused the rest of ends at its last stored event, without a `done`, and nothing follows
 * it; a running one may go on; an ended one ends at its `done`.
 */
import t from 'tap';
import { DEFAULTS, type Config } from '../src/config.js';
import { ExecutionService } from '../src/sessions/service.js';
import { FakeSandbox } from './helpers/fake-sandbox.js';
import { MemoryEventStore } from './helpers/memory-store.js';
import { removeDir, tempDir } from './helpers/server.js';

t.test('a log the store refused the rest of ends at its last stored event; a running one has no end yet; an ended one ends at its done', async (t) => {
  const dir = tempDir('service-refused');
  const store = new MemoryEventStore();
  await store.open();
  const config: Config = { ...DEFAULTS, dataDir: dir, workspaceDir: dir, shutdownGraceMs: 0 };
  let fake!: FakeSandbox;
  const service = new ExecutionService(config, store, (listener) => (fake = new FakeSandbox(listener)), { onError: () => {} });
  await service.recover();
  t.teardown(async () => {
    store.fault = () => null;
    await service.shutdown();
    removeDir(dir);
  });
  const session = await service.createSession('t');
  const { record } = await service.execute('t', { session_id: session.session_id, kind: 'repl', code: '1' });
  const storedId = (await fake.take('run')).executionId;
  fake.console(storedId, 'stored');
  while ((await service.readEvents('t', record.execution_id, 0, 10)).lastSeq < 1) await new Promise((resolve) => setImmediate(resolve));
  t.equal((await service.locate('t', record.execution_id, 0)).endSeq, null, 'running: its log may go on');

  store.fault = (item) => (item.id === storedId && item.kind === 'events' ? 'STORE_BAD_ARGUMENT' : null);
  fake.console(storedId, 'refused');
  await fake.take('abort');
  fake.done(storedId, 'cancelled');
  let page = await service.readEvents('t', record.execution_id, 0, 10);
  for (let turns = 0; page.endSeq === null && turns < 1000; turns++) {
    await new Promise((resolve) => setImmediate(resolve));
    page = await service.readEvents('t', record.execution_id, 0, 10);
  }
  t.same([page.events.length, page.lastSeq, page.finalSeq], [1, 1, null], 'what was stored; no `done`');
  t.equal(page.endSeq, 1, 'the page says nothing follows its last stored event (its `done` flag, a stream\'s 204)');
  t.equal((await service.locate('t', record.execution_id, 1)).endSeq, 1, 'as locate says it to a subscriber that has it all');

  store.fault = () => null;
  const next = await service.execute('t', { session_id: session.session_id, kind: 'repl', code: '2' });
  fake.done((await fake.take('run')).executionId);
  let ended = await service.readEvents('t', next.record.execution_id, 0, 10);
  for (let turns = 0; ended.endSeq === null && turns < 1000; turns++) {
    await new Promise((resolve) => setImmediate(resolve));
    ended = await service.readEvents('t', next.record.execution_id, 0, 10);
  }
  t.same([ended.finalSeq, ended.endSeq], [1, 1], 'an ended one: at its `done`');
});
