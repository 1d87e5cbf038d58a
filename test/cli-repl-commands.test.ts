/**
 * The REPL's conveniences in a real terminal (tmux), worded as Node's REPL words them: `_` for the
 * last value, a warning for an unhandled rejection, `.editor`, `.load FILE` (stack traces name the
 * file), `.save FILE`, Tab completion.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { MAIN, removeDir, tempDir } from './helpers/server.js';
import { serverFor } from './helpers/util.js';
import { Terminal, tmuxAvailable } from './helpers/terminal.js';

if (!tmuxAvailable()) throw new Error('tmux is needed for this test: apt-get install -y tmux (npm test installs it: scripts/system-packages.mjs)');

const server = await serverFor(t);
const dir = tempDir('repl-files');
t.teardown(() => removeDir(dir));

function repl(t: Test): Promise<Terminal> {
  const terminal = Terminal.start([process.execPath, MAIN, 'repl', server.url, '--token', server.token], { VMSTREAM_REPL_HISTORY: '' });
  t.teardown(() => terminal.kill());
  return terminal.waitFor((screen) => terminal.atPrompt(screen)).then(() => terminal);
}

t.test('_ is the last value until it is assigned', async (t) => {
  const terminal = await repl(t);
  terminal.type('6 * 7');
  await terminal.waitFor(/^42$/m);
  terminal.type('_ + 1');
  await terminal.waitFor(/^43$/m);
  terminal.type('_ = "mine"');
  await terminal.waitFor('Expression assignment to _ now disabled.');
  terminal.type('1 + 1');
  await terminal.waitFor(/^2$/m);
  terminal.type('_');
  await terminal.waitFor(/^'mine'$/m);
});

t.test('an unhandled rejection: the promise and a warning, in Node REPL words', async (t) => {
  const terminal = await repl(t);
  terminal.type('Promise.reject(new Error("nobody caught me"))');
  await terminal.waitFor(/^Promise \{ <rejected> Error: nobody caught me/m);
  await terminal.waitFor(/^Uncaught Error: nobody caught me\n {4}at REPL\d+:1:16/m);
  t.match(terminal.screen(true), /\u001b\[31mUncaught Error: nobody caught me/, 'in red, as an error');
});

t.test('.editor takes lines until Ctrl-D, then runs them; Ctrl-C cancels it', async (t) => {
  const terminal = await repl(t);
  terminal.type('.editor');
  await terminal.waitFor('// Entering editor mode (Ctrl+D to finish, Ctrl+C to cancel)');
  terminal.type('const a = 2');
  terminal.type('const b = 3');
  terminal.type('console.log("sum " + (a + b))');
  terminal.keys('C-d');
  await terminal.waitFor(/^sum 5$/m);
  await terminal.waitFor((screen) => terminal.atPrompt(screen));
  terminal.type('.editor');
  terminal.type('console.log("never run")');
  terminal.keys('C-c');
  await terminal.waitFor((screen) => terminal.atPrompt(screen));
  terminal.type('"after " + a');
  await terminal.waitFor("'after 2'");
  t.notMatch(terminal.screen(), /^never run$/m, 'the cancelled editor input did not run');
});

t.test('.load runs a file, its stack traces name it; .save writes what ran', async (t) => {
  const terminal = await repl(t);
  const file = path.join(dir, 'lib.js');
  writeFileSync(file, 'function twice(n) { return 2 * n }\nfunction broken() {\n  throw new Error("from the file")\n}\n');
  terminal.type(`.load ${file}`);
  await terminal.waitFor((screen) => terminal.atPrompt(screen));
  terminal.type('twice(21)');
  await terminal.waitFor(/^42$/m);
  terminal.type('broken()');
  await terminal.waitFor(/Uncaught Error: from the file\n\s+at broken \((\.\.\/)+([^/\s()]+\/)*vmstream-repl-files-\w+\/lib\.js:3:9\)/);
  terminal.type(`.load ${path.join(dir, 'missing.js')}`);
  await terminal.waitFor(`Failed to load: ${path.join(dir, 'missing.js')}`);

  const saved = path.join(dir, 'saved.js');
  terminal.type(`.save ${saved}`);
  await terminal.waitFor(`Session saved to: ${saved}`);
  t.equal(readFileSync(saved, 'utf8'), `${readFileSync(file, 'utf8')}\ntwice(21)\nbroken()\n`);
  terminal.type('.nope');
  await terminal.waitFor('Invalid REPL keyword .nope');
});

t.test('Tab completes from the session (server `complete`) and the dot-commands', async (t) => {
  const terminal = await repl(t);
  terminal.type('let uniqueVariableName = 40');
  await terminal.waitFor(/^undefined$/m);
  terminal.keys('-l', 'uniqueVar');
  terminal.keys('Tab');
  await terminal.waitFor('> uniqueVariableName');
  terminal.keys('-l', ' + 2');
  terminal.keys('Enter');
  await terminal.waitFor(/^42$/m);
  terminal.keys('-l', 'Math.ma');
  terminal.keys('Tab');
  await terminal.waitFor('> Math.max');
  terminal.keys('-l', '(1, 5)');
  terminal.keys('Enter');
  await terminal.waitFor(/^5$/m);
  terminal.keys('-l', '.ed');
  terminal.keys('Tab');
  await terminal.waitFor('> .editor');
  terminal.keys('C-u');
  t.pass('completed a declared name, a property and a command');
});
