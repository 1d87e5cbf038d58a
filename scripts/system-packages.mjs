#!/usr/bin/env node
// What the test suite needs from the operating system beyond npm, and the step that installs it
// (run by `npm test` through scripts/prepare.mjs --test): when something is missing, apt-get
// installs it as root on Debian; anywhere else one line names what is missing and how to get it.
//
// `node scripts/system-packages.mjs --dry-run` prints what it would do and changes nothing
// (test/system-packages.test.ts runs it with a faked PATH).
import { execFileSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * THE LIST: one line per Debian package. `command` is a program whose presence on PATH (or an
 * absolute path) shows the package is installed; `for` says who needs it. To add one:
 *   { deb: 'bubblewrap', command: 'bwrap', for: 'sandbox processes are confined with it' },
 */
export const SYSTEM_PACKAGES = [
  { deb: 'chromium', command: 'chromium', for: 'test/console.test.ts drives the web console in it' },
  { deb: 'tmux', command: 'tmux', for: 'test/cli-repl.test.ts drives the REPL in a terminal' },
  { deb: 'nats-server', command: 'nats-server', for: "the JetStream store's tests start it (2.9, Debian's)" },
  { deb: 'jupyter-notebook', command: 'jupyter-notebook', for: 'test/jupyter-notebook.test.ts drives Jupyter Notebook against vmstream' },
  { deb: 'curl', command: 'curl', for: 'scripts/smoke-test.sh and scripts/test-e2e.sh (.ci/run)' },
  { deb: 'bubblewrap', command: 'bwrap', for: 'sandbox processes are confined with it (test/sandbox-process.test.ts checks it)' },
];

/** True when `command` is an executable file: an absolute path, or a name found on `searchPath`. */
export function hasCommand(command, searchPath) {
  const candidates = path.isAbsolute(command) ? [command] : searchPath.split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, command));
  return candidates.some((file) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** The entries of `list` whose command is missing. */
export function missingPackages(list, searchPath) {
  return list.filter((entry) => !hasCommand(entry.command, searchPath));
}

/**
 * What to do about `missing`: nothing; the apt-get commands to run (root on Debian); or the one
 * line that tells the person running the tests what to install.
 */
export function plan(missing, { root, debian }) {
  if (missing.length === 0) return { action: 'none' };
  const names = missing.map((entry) => entry.deb);
  if (root && debian) {
    return { action: 'install', commands: [['apt-get', 'update', '-qq'], ['apt-get', 'install', '-y', '-qq', ...names]] };
  }
  const what = missing.map((entry) => `${entry.deb} (the \`${entry.command}\` command)`).join(', ');
  const how = debian ? `as root: apt-get install -y ${names.join(' ')}` : 'with your package manager (the names are Debian\'s)';
  return { action: 'tell', message: `vmstream's tests need ${what}, which are missing: install them ${how}` };
}

export function isDebian(osRelease = '/etc/os-release') {
  try {
    const text = readFileSync(osRelease, 'utf8');
    return /^ID=("?)debian\1$/m.test(text) || /^ID_LIKE=.*\bdebian\b/m.test(text);
  } catch {
    return false;
  }
}

/** Installs what is missing (or, with `dryRun`, prints what it would do). Returns the exit status. */
export function ensureSystemPackages({ dryRun = false, searchPath = process.env.PATH ?? '', root = process.getuid?.() === 0, debian = isDebian() } = {}) {
  const step = plan(missingPackages(SYSTEM_PACKAGES, searchPath), { root, debian });
  if (step.action === 'none') {
    if (dryRun) console.log('nothing to install');
    return 0;
  }
  if (step.action === 'tell') {
    console.error(step.message);
    return 1;
  }
  for (const command of step.commands) {
    if (dryRun) {
      console.log(`would run: ${command.join(' ')}`);
      continue;
    }
    console.error(`vmstream: ${command.join(' ')}`);
    try {
      execFileSync(command[0], command.slice(1), { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    } catch {
      console.error(`vmstream: \`${command.join(' ')}\` failed: the tests cannot run without ${SYSTEM_PACKAGES.map((entry) => entry.deb).join(', ')}`);
      return 1;
    }
  }
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = ensureSystemPackages({ dryRun: process.argv.includes('--dry-run') });
}
