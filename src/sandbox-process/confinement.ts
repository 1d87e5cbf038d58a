/**
 * How a sandbox process is started: the command line that wraps `node host-main.js` in what the OS
 * offers to confine it, chosen once at start-up (../shared/README.md, "Confining a process here"):
 *
 * - `bwrap` (Debian's bubblewrap), as root or not: new user, pid, network, ipc, uts and mount
 *   namespaces; a filesystem of only /usr (and Node), the built code and the two packages the
 *   sandbox imports, all read-only, plus an empty /tmp; no capabilities; an empty environment. As
 *   root it is started through `setpriv` as the sandbox user, so outside its namespace it is not
 *   root either.
 * - `unshare` + `setpriv` (util-linux), root only: new network, ipc and uts namespaces, the sandbox
 *   user, no capabilities. The filesystem stays visible (what is world-readable is readable), so
 *   the server keeps its data folder 0700.
 * - none: a plain child process with an empty environment. Only with VMSTREAM_SANDBOX=unconfined,
 *   or on a loopback bind (server.ts says so loudly).
 *
 * On Linux every kind runs under `prlimit --as`: an address-space cap beyond V8's heap limits.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, lstatSync, readlinkSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** `in-process` is not a confinement: start.ts gives the engine the server's own worker pool. */
export type SandboxMode = 'confined' | 'unconfined' | 'auto' | 'in-process';
export type ConfinementKind = 'bwrap' | 'unshare' | 'none';

export interface ConfinementOptions {
  mode: SandboxMode;
  /** The sandbox user and group when the server is root. */
  uid: number;
  gid: number;
  /** RLIMIT_AS of each sandbox process, in MiB; 0 for none. */
  memoryMb: number;
}

export interface LaunchCommand {
  file: string;
  args: string[];
}

export interface Confinement {
  kind: ConfinementKind;
  /** What it is, or why nothing better was possible: for the log and /readyz. */
  detail: string;
  /** The command that starts a sandbox process. */
  command: LaunchCommand;
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const HOST_ENTRY = path.join(ROOT, 'dist/src/sandbox-process/host-main.js');
/** What of the checkout a sandbox process reads: the built code and the packages it imports. */
const CODE_PATHS = ['package.json', 'dist/src', 'dist/protocol', 'node_modules/msgpackr', 'node_modules/acorn'].map((entry) => path.join(ROOT, entry));
/** Top-level system folders a dynamically linked Node may need; symlinks on merged-/usr systems. */
const SYSTEM_LINKS = ['/bin', '/lib', '/lib32', '/lib64', '/sbin'];
/** Node's own flags in the sandbox process (its workers get theirs from pool/worker-pool.ts). */
const NODE_FLAGS = ['--no-warnings'];
const ENV = '/usr/bin/env';

/** Picks the strongest confinement that works here, trying it once; never throws. */
export function detectConfinement(options: ConfinementOptions): Confinement {
  const node = realpathSync(process.execPath);
  const plain = withoutEnvironment(node);
  const limit = (command: LaunchCommand) => withMemoryCap(command, options.memoryMb);
  if (options.mode === 'unconfined') return { kind: 'none', detail: 'VMSTREAM_SANDBOX=unconfined', command: limit(plain) };
  if (process.platform !== 'linux') return { kind: 'none', detail: `no confinement on ${process.platform} (Linux only)`, command: limit(plain) };
  const root = process.getuid?.() === 0;
  const failures: string[] = [];
  const bwrap = which('bwrap');
  if (bwrap) {
    const command = limit(bubblewrap(bwrap, node, root ? options : null));
    const failure = probe(command);
    if (failure === null) return { kind: 'bwrap', detail: `bubblewrap${root ? `, as ${options.uid}:${options.gid}` : ''}`, command };
    failures.push(`bwrap failed: ${failure}`);
  } else {
    failures.push('bubblewrap (bwrap) is not installed');
  }
  const unshare = which('unshare');
  const setpriv = which('setpriv');
  if (!root) failures.push('unshare + setpriv need root');
  else if (!unshare || !setpriv) failures.push('unshare or setpriv (util-linux) is missing');
  else {
    const command = limit(unshareSetpriv(unshare, setpriv, node, options));
    const failure = probe(command);
    if (failure === null) return { kind: 'unshare', detail: `unshare + setpriv, as ${options.uid}:${options.gid}`, command };
    failures.push(`unshare + setpriv failed: ${failure}`);
  }
  return { kind: 'none', detail: failures.join('; '), command: limit(plain) };
}

function bubblewrap(bwrap: string, node: string, user: ConfinementOptions | null): LaunchCommand {
  const args = [
    '--unshare-all', '--unshare-user', '--die-with-parent', '--new-session', '--cap-drop', 'ALL', '--clearenv',
    '--uid', String(user?.uid ?? 65534), '--gid', String(user?.gid ?? 65534), '--hostname', 'sandbox',
    '--ro-bind', '/usr', '/usr',
  ];
  for (const link of SYSTEM_LINKS) {
    if (!existsSync(link)) continue;
    if (lstatSync(link).isSymbolicLink()) args.push('--symlink', readlinkSync(link), link);
    else args.push('--ro-bind', link, link);
  }
  // The tmpfs first: bound after the code, it would hide a checkout that lives under /tmp.
  args.push('--tmpfs', '/tmp');
  // Node installed outside /usr (nvm, a tarball): its own prefix, read-only.
  const prefix = path.dirname(path.dirname(node));
  if (!prefix.startsWith('/usr/')) args.push('--ro-bind', prefix, prefix);
  for (const entry of CODE_PATHS) if (existsSync(entry)) args.push('--ro-bind', entry, entry);
  const inner = withoutEnvironment(node);
  args.push('--proc', '/proc', '--dev', '/dev', '--chdir', '/', '--', inner.file, ...inner.args);
  // As root, bwrap itself starts as the sandbox user, so that user is what the process is outside its namespace too.
  return user ? asUser(which('setpriv') ?? 'setpriv', user, { file: bwrap, args }) : { file: bwrap, args };
}

function unshareSetpriv(unshare: string, setpriv: string, node: string, user: ConfinementOptions): LaunchCommand {
  const inner = asUser(setpriv, user, withoutEnvironment(node));
  // The parent-death signal: a sandbox process outlives nothing of the server.
  inner.args.unshift('--pdeathsig', 'KILL');
  return { file: unshare, args: ['--net', '--ipc', '--uts', '--', inner.file, ...inner.args] };
}

/**
 * Node started through `env -i`: the server spawns with an empty environment, but bwrap sets PWD
 * even with --clearenv, and anything that hooks the server's spawn (a preloaded module adding
 * NODE_OPTIONS, as tap's process tracking does) would otherwise reach the sandbox.
 */
function withoutEnvironment(node: string): LaunchCommand {
  const command = { file: node, args: [...NODE_FLAGS, HOST_ENTRY] };
  return existsSync(ENV) ? { file: ENV, args: ['-i', command.file, ...command.args] } : command;
}

function asUser(setpriv: string, user: { uid: number; gid: number }, command: LaunchCommand): LaunchCommand {
  return {
    file: setpriv,
    args: [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--no-new-privs', '--inh-caps=-all', '--bounding-set=-all', '--', command.file, ...command.args],
  };
}

function withMemoryCap(command: LaunchCommand, memoryMb: number): LaunchCommand {
  const prlimit = memoryMb > 0 && process.platform === 'linux' ? which('prlimit') : null;
  if (!prlimit) return command;
  return { file: prlimit, args: [`--as=${memoryMb * 1024 * 1024}`, '--', command.file, ...command.args] };
}

/**
 * Starts the command with the entry swapped for a check that it can read the code: null when it
 * works, else what went wrong. Costs one short Node start, once per server start.
 */
function probe(command: LaunchCommand): string | null {
  const check = `process.exit([${JSON.stringify(HOST_ENTRY)}].every((f) => require('fs').existsSync(f)) ? 0 : 3)`;
  const args = command.args.map((arg) => (arg === HOST_ENTRY ? '-e' : arg));
  args.push(check);
  const result = spawnSync(command.file, args, { env: {}, stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000, encoding: 'utf8' });
  if (result.error) return result.error.message;
  if (result.status === 0) return null;
  if (result.status === 3) return 'the built code is not readable from inside';
  return `exit ${result.status ?? result.signal}: ${result.stderr.trim().slice(0, 300)}`;
}

function which(name: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}
