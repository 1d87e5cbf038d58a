#!/usr/bin/env node
// Run before `npm start` and `npm test`: installs from the lockfile on a fresh clone, then builds
// (incrementally: TypeScript, then the web console), so that those two commands are all a newcomer
// needs. With `--test` (the pretest step) it also installs what the tests need from the operating
// system (scripts/system-packages.mjs holds that list).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureSystemPackages } from './system-packages.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const run = (command, args) => execFileSync(command, args, { cwd: root, stdio: 'inherit' });

if (!existsSync(path.join(root, 'node_modules', '.package-lock.json'))) {
  run('npm', ['ci', '--no-audit', '--no-fund']);
}
run(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', root]);
// The web console the server serves at `/` (skipped when dist/web is up to date).
run(process.execPath, [path.join(root, 'scripts', 'build-web.mjs')]);
if (process.argv.includes('--test')) process.exitCode = ensureSystemPackages();
