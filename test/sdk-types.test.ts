/**
 * The SDK's types as a strict TypeScript user meets them: test/fixtures/sdk-types.ts (narrowing
 * an event on `type`, runCode's options and result, the UNAUTHORIZED code) is compiled by tsc.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { ROOT } from './helpers/server.js';

t.test('an event narrowed on `type` types its payload; runCode is typed', async (t) => {
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const args = [tsc, '--noEmit', '--strict', '--exactOptionalPropertyTypes', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node', path.join(ROOT, 'test', 'fixtures', 'sdk-types.ts')];
  const output = await new Promise<string>((resolve) => execFile(process.execPath, args, { cwd: ROOT }, (error, stdout) => resolve(error ? stdout || String(error) : '')));
  t.equal(output, '', 'tsc reports nothing');
});
