/**
 * The tests type-check as src/ does (tsconfig.test.json: what tsconfig.json checks, plus test/, no
 * output). tap runs them from source without checking types, so a test that drifted from src/
 * (a Workspace built from a number, a RunRequest without its filename) ran on, unnoticed.
 * test/console.test.ts is checked on its own (tsconfig.console.json): its page.evaluate callbacks
 * run in the browser and name DOM globals, and the DOM library would retype fetch for the whole
 * program (src/mcp/http.ts).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { ROOT } from './helpers/server.js';

// tsc reads every file of src/, bench/ and test/: on a loaded machine that outlasts tap's default.
t.setTimeout(600_000);

for (const project of ['tsconfig.test.json', 'tsconfig.console.json']) {
  t.test(`tsc -p ${project} reports no error`, async (t) => {
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await new Promise<{ code: number; output: string }>((resolve) => {
      execFile(process.execPath, [tsc, '-p', project], { cwd: ROOT }, (error, stdout, stderr) => resolve({ code: error ? 1 : 0, output: stdout + stderr }));
    });
    t.equal(result.code, 0, result.output);
  });
}
