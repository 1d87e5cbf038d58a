/**
 * `vmstream repl` in a real pseudo-terminal (tmux): line editing, multi-line input, colours,
 * Ctrl-C, and a server killed and restarted in the middle of a streaming execution, after which
 * the screen holds every line the server logged, each once, and the session comes back.
 */
import t from 'tap';
import { TestClient } from './helpers/client.js';
import { loggedLines, restart, startOnFixedPort } from './helpers/sdk.js';
import { MAIN } from './helpers/server.js';
import { Terminal, tmuxAvailable } from './helpers/terminal.js';

if (!tmuxAvailable()) throw new Error('tmux is needed for this test: apt-get install -y tmux (npm test installs it: scripts/system-packages.mjs)');

t.test('the REPL streams, edits, cancels, and survives a server restart without repeating a line', async (t) => {
  // A cancel that takes its time (a synchronous loop is stopped only when the grace runs out), so
  // the second Ctrl-C below surely comes while the first is still cancelling.
  const env = { VMSTREAM_STOP_GRACE_MS: '600000', VMSTREAM_SHUTDOWN_GRACE_MS: '0' };
  let server = await startOnFixedPort({ env });
  t.teardown(() => server.stop());
  const terminal = Terminal.start([process.execPath, MAIN, 'repl', server.url, '--token', server.token], { VMSTREAM_REPL_HISTORY: '' });
  t.teardown(() => terminal.kill());
  const banner = await terminal.waitFor((screen) => terminal.atPrompt(screen));
  const sessionId = /session (\S+)/.exec(banner)![1]!;

  terminal.type('let kept = 41; "ready-" + kept');
  await terminal.waitFor("'ready-41'");

  terminal.type('function add(a, b) {');
  await terminal.waitFor('\n... ');
  terminal.type('return a + b }');
  terminal.type('add(2, 3)');
  await terminal.waitFor(/^5$/m);
  t.match(terminal.screen(), /> function add\(a, b\) \{\n\.\.\. return a \+ b \}/, 'the continuation prompt took the second line');

  terminal.type('console.error("bad-" + 1); console.warn("careful")');
  await terminal.waitFor(/^careful$/m);
  const coloured = terminal.screen(true);
  t.match(coloured, /\u001b\[31mbad-1/, 'console.error in red');
  t.match(coloured, /\u001b\[33mcareful/, 'console.warn in yellow');

  terminal.type('for (;;) { console.log("tick"); await new Promise((r) => setTimeout(r, 20)); }');
  await terminal.waitFor(/^tick$/m);
  terminal.keys('C-c');
  await terminal.waitFor('[vmstream] cancelled');

  terminal.type('for (let i = 1; i <= 2000; i++) { console.log("line " + i); await new Promise((r) => setTimeout(r, 5)); }');
  await terminal.waitFor(/^line 20$/m);
  await server.kill();
  await terminal.waitFor('[vmstream] connection lost');
  server = await restart(server, env);
  await terminal.waitFor('[vmstream] reconnected');
  await terminal.waitFor('interrupted: the server stopped before it finished');
  await terminal.waitFor((screen) => terminal.atPrompt(screen));

  const shown = terminal.lines().filter((line) => /^line \d+$/.test(line));
  const direct = await TestClient.connect(server.url, server.token);
  t.teardown(() => direct.close());
  const [execution] = (await direct.expect('executions', { op: 'execution.list', session_id: sessionId, limit: 1 })).items;
  const logged = await loggedLines(server, execution.execution_id);
  t.ok(logged.length >= 20, `the server logged ${logged.length} lines before it was killed`);
  t.same(shown, logged, 'the screen shows every logged line, once, in order');

  terminal.type('kept');
  await terminal.waitFor(/the session's state is being rebuilt: re-running its \d+ earlier inputs?…\n(?:.*\n)*?.*session restored: its state was rebuilt by re-running \d+ earlier inputs?; values they computed .* may differ from the first time\n41\n/);

  terminal.type('for (;;) {}');
  terminal.keys('C-c');
  await terminal.waitFor('cancelling');
  terminal.keys('C-c');
  const screen = await terminal.waitFor((screen) => terminal.exitStatus(screen) !== null);
  t.equal(terminal.exitStatus(screen), 130, 'a second Ctrl-C exits');
});
