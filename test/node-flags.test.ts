/**
 * The server's Node flags (src/cli/node-flags.ts) are where it is launched: the `vmstream` bin's
 * shebang, `npm start`, and the bench's launcher (which imports the same list). A server started
 * through the bin itself runs node with them (its command line, from /proc), and so do the servers
 * the tests (test/helpers/server.ts) and the scripts (scripts/lib/server.sh) start.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { SERVER_NODE_FLAGS } from '../src/cli/node-flags.js';
import { MAIN, ROOT, startServer } from './helpers/server.js';

t.test('the bin and npm start carry the flags', async (t) => {
  const shebang = readFileSync(MAIN, 'utf8').split('\n', 1)[0];
  t.equal(shebang, `#!/usr/bin/env -S node ${SERVER_NODE_FLAGS.join(' ')}`);
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
  t.equal(pkg.scripts.start, `node ${SERVER_NODE_FLAGS.join(' ')} dist/src/cli/main.js`);
});

const onLinux = { skip: process.platform === 'linux' ? false : 'reads /proc (Linux only)' };
/** A process's command line, from /proc. */
const argvOf = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);

t.test('a server started through the bin runs node with them', onLinux, async (t) => {
  const server = await startServer({ command: { file: MAIN, args: [], cwd: ROOT } });
  t.teardown(() => server.stop());
  const argv = argvOf(server.process.pid!);
  t.match(path.basename(argv[0]!), /^node/);
  t.same(argv.slice(1, 1 + SERVER_NODE_FLAGS.length), SERVER_NODE_FLAGS);
  t.equal(argv[1 + SERVER_NODE_FLAGS.length], MAIN);
});

t.test("the tests' servers run with them", onLinux, async (t) => {
  const server = await startServer();
  t.teardown(() => server.stop());
  t.same(argvOf(server.process.pid!).slice(1), [...SERVER_NODE_FLAGS, MAIN]);
});

t.test("the scripts' servers run with them, read from the build", async (t) => {
  const script = readFileSync(path.join(ROOT, 'scripts/lib/server.sh'), 'utf8');
  const starts = script.split('\n').filter((line) => line.includes('dist/src/cli/main.js'));
  t.ok(starts.length >= 2, 'the plain and the cluster start');
  for (const line of starts) t.match(line, /\bnode \$SERVER_NODE_FLAGS "\$ROOT\/dist\/src\/cli\/main\.js"/);
  t.match(script, /SERVER_NODE_FLAGS=\$\(node --input-type=module -e[^)]*dist\/src\/cli\/node-flags\.js/);
});
