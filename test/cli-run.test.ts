/**
 * `vmstream run` and `vmstream tail` as a script would use them: output on stdout, notes on
 * stderr, the execution's status as the exit status; and where the token may come from.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { MAIN, startServer, tempDir, workspaceFile } from './helpers/server.js';

interface Result { code: number; stdout: string; stderr: string }

function vmstream(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { env: { PATH: process.env.PATH ?? '', ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

const server = await startServer();
t.teardown(() => server.stop());
const dir = tempDir('cli');
const auth = ['--url', server.url, '--token', server.token];

t.test('run FILE prints its output and exits 0; tail replays it after a seq', async (t) => {
  const file = path.join(dir, 'ok.js');
  writeFileSync(file, 'for (let i = 1; i <= 3; i++) console.log("line " + i);\nconsole.error("to stderr? no: a console level");\n"the final value"');
  const result = await vmstream(['run', file, ...auth]);
  t.equal(result.code, 0);
  t.equal(result.stdout, "line 1\nline 2\nline 3\nto stderr? no: a console level\n'the final value'\n", 'run prints the final value');
  const id = /execution (\S+)/.exec(result.stderr)?.[1];
  t.match(id, /^[A-Za-z0-9]{15}$/, 'stderr names the execution, by an id protocol/ids.ts made');

  const tail = await vmstream(['tail', id!, '--after-seq', '2', ...auth]);
  t.equal(tail.code, 0);
  t.equal(tail.stdout, "line 3\nto stderr? no: a console level\n'the final value'\n", 'tail shows values');
});

t.test('a failing file exits 1 with the exception; --workspace runs a server file', async (t) => {
  const file = path.join(dir, 'throws.js');
  writeFileSync(file, 'console.log("before"); throw new TypeError("broken")');
  const failed = await vmstream(['run', file, ...auth]);
  t.equal(failed.code, 1);
  t.match(failed.stdout, /^before\nUncaught TypeError: broken\n {4}at .*throws\.js:1:\d+/, 'the stack trace names the file');
  t.notMatch(failed.stdout, /REPL\d/);

  writeFileSync(workspaceFile(server, 'remote.js'), 'console.log("read by the server")');
  const remote = await vmstream(['run', 'remote.js', '--workspace', ...auth]);
  t.equal(remote.code, 0);
  t.equal(remote.stdout, 'read by the server\n', 'a final undefined is not printed');
});

t.test('the token comes from --token, VMSTREAM_TOKEN or the URL; a bad call exits 2', async (t) => {
  const file = path.join(dir, 'hello.js');
  writeFileSync(file, 'console.log("hello")');
  const fromEnv = await vmstream(['run', file, '--url', server.url], { VMSTREAM_TOKEN: server.token });
  t.equal(fromEnv.stdout, 'hello\n');
  const fromUrl = await vmstream(['run', file, '--url', `${server.url}?token=${server.token}`]);
  t.equal(fromUrl.stdout, 'hello\n');
  const httpForm = await vmstream(['run', file, '--url', `http://127.0.0.1:${server.port}/?token=${server.token}`]);
  t.equal(httpForm.stdout, 'hello\n', 'the console URL works as well');
  const refused = await vmstream(['run', file, '--url', server.url, '--token', 'wrong-token-000']);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /the token was refused \(HTTP 401\)/);
  const noToken = await vmstream(['run', file, '--url', server.url]);
  t.equal(noToken.code, 2);
  t.match(noToken.stderr, /no token/);
  const unknown = await vmstream(['run', file, '--bogus']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /Unknown option '--bogus'[\s\S]*usage:/);
  const missing = await vmstream(['tail', ...auth, 'no-such-execution']);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /NOT_FOUND/);
});
