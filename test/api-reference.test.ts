/**
 * The SDK's API reference (`npm run docs`: TypeDoc over src/client/index.ts into docs/api, see
 * typedoc.json) builds with no warning: every exported type it reaches is itself exported and
 * documented. Built here into a temporary folder; docs/api is not committed (it would go stale).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT, removeDir, tempDir } from './helpers/server.js';

t.test('TypeDoc builds the reference without warnings', async (t) => {
  const out = tempDir('typedoc');
  t.teardown(() => removeDir(out));
  const typedoc = path.join(ROOT, 'node_modules', 'typedoc', 'bin', 'typedoc');
  const result = await new Promise<{ code: number; output: string }>((resolve) => {
    execFile(process.execPath, [typedoc, '--out', out], { cwd: ROOT }, (error, stdout, stderr) => resolve({ code: error ? 1 : 0, output: stdout + stderr }));
  });
  t.equal(result.code, 0, result.output);
  t.notMatch(result.output, /warning|error/i, 'no warning');
  const client = readFileSync(path.join(out, 'classes', 'Client.html'), 'utf8');
  t.match(client, /runCode/, 'Client.runCode is documented');
});
