#!/usr/bin/env node
// Run before `npm start` and `npm test`: installs from the lockfile on a fresh clone (and again
// after a pull that changed the lockfile), then builds
// (incrementally: TypeScript, then the web console), so that those two commands are all a newcomer
// needs. With `--test` (the pretest step) it also installs what the tests need from the operating
// system (scripts/system-packages.mjs holds that list).
import { execFileSync } from 'node:child_process';
import { chmodSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureSystemPackages } from './system-packages.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const run = (command, args) => execFileSync(command, args, { cwd: root, stdio: 'inherit' });

const modifiedAt = (file) => statSync(path.join(root, file), { throwIfNoEntry: false })?.mtimeMs ?? -1;
// npm writes node_modules/.package-lock.json at each install: older than the lockfile means stale.
if (modifiedAt('node_modules/.package-lock.json') < modifiedAt('package-lock.json')) {
  run('npm', ['ci', '--no-audit', '--no-fund']);
}
run(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', root]);
// tsc writes 0644: the package's own `bin` must be executable for `npx vmstream` inside the checkout
// (npm sets the mode only when it installs the package into another project).
chmodSync(path.join(root, 'dist', 'src', 'cli', 'main.js'), 0o755);
// The web console the server serves at `/` (skipped when dist/web is up to date).
run(process.execPath, [path.join(root, 'scripts', 'build-web.mjs')]);
if (process.argv.includes('--test')) process.exitCode = ensureSystemPackages();
