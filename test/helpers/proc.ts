/**
 * What /proc says about a test server's sandbox processes: which they are (the Node processes
 * among its descendants; bwrap, setpriv and prlimit sit between), and their user, namespaces,
 * environment and arguments.
 */
import { readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { descendantPids } from '../../bench/harness/proc-stats.js';

const NODE = realpathSync(process.execPath);

function isNode(pid: number): boolean {
  try {
    return readlinkSync(`/proc/${pid}/exe`) === NODE;
  } catch {
    return false;
  }
}

/** The Node processes descending from `serverPid`: its sandbox processes. */
export function sandboxPids(serverPid: number): number[] {
  return descendantPids(serverPid).filter(isNode);
}

/** Waits until a sandbox process not in `known` exists, and returns it. */
export async function newSandboxPid(serverPid: number, known: number[], timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const fresh = sandboxPids(serverPid).filter((pid) => !known.includes(pid));
    if (fresh.length === 1) return fresh[0]!;
    if (fresh.length > 1) throw new Error(`more than one new sandbox process: ${fresh.join(', ')}`);
    if (Date.now() > deadline) throw new Error('no new sandbox process appeared');
    await delay(20);
  }
}

export interface ProcInfo {
  uid: number[];
  gid: number[];
  netns: string;
  environ: string;
  cmdline: string;
  /** The CPU time it has used, in clock ticks. */
  cpu: number;
}

export function procInfo(pid: number): ProcInfo {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const ids = (name: string) => /^(\w+):\s+(.*)$/m.exec(status.split('\n').find((line) => line.startsWith(`${name}:`)) ?? '')![2]!.split(/\s+/).map(Number);
  const rawStat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const stat = rawStat.slice(rawStat.lastIndexOf(')') + 2).split(' ');
  return {
    uid: ids('Uid'),
    gid: ids('Gid'),
    netns: readlinkSync(`/proc/${pid}/ns/net`),
    environ: readFileSync(`/proc/${pid}/environ`, 'utf8'),
    cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' '),
    cpu: Number(stat[11]) + Number(stat[12]),
  };
}

/** Waits until `pid` has used more CPU than it had: it is running something. */
export async function spinning(pid: number, timeoutMs = 30_000): Promise<void> {
  const before = procInfo(pid).cpu;
  const deadline = Date.now() + timeoutMs;
  while (procInfo(pid).cpu <= before + 5) {
    if (Date.now() > deadline) throw new Error(`process ${pid} is not spinning`);
    await delay(20);
  }
}
