/**
 * What a process has cost, read from Linux's /proc (NaN elsewhere): peak RSS, CPU time, and the
 * whole machine's busy time, so a run can tell its own load from a neighbour's.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Figure } from './types.js';

/**
 * Peak resident set size of a process in bytes, from the kernel's high-water mark (VmHWM), which
 * catches a peak between samples that polling `memoryUsage().rss` would miss. NaN off Linux.
 */
export function peakRssBytes(pid: number | 'self' = 'self'): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmHWM:\s+(\d+) kB/m.exec(status);
    return match ? Number(match[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * Current resident set size of a process in bytes (VmRSS), for memory-per-thing figures: the
 * difference between two readings at rest, divided by how many things were added in between.
 */
export function rssBytes(pid: number | 'self' = 'self'): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return match ? Number(match[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** The soft limit on open files of a process (`ulimit -n` as it applies to it); NaN off Linux. */
export function openFilesLimit(pid: number | 'self' = 'self'): number {
  try {
    const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
    return match ? (match[1] === 'unlimited' ? Infinity : Number(match[1])) : NaN;
  } catch {
    return NaN;
  }
}

/**
 * CPU time (user + system) a process has used, in seconds, from /proc/<pid>/stat; NaN off Linux.
 * Its share of a run's wall time says which side saturated: a server near 100 % is the limit, one
 * well under it is waiting on the load generator.
 */
export function cpuSeconds(pid: number | 'self' = 'self', withReapedChildren = false, tid?: number): number {
  try {
    // /proc/<pid>/task/<tid>/stat has the same fields for one thread: tid = pid is the main thread,
    // the one that runs the event loop; the others are workers, libuv's pool (LevelDB's I/O) and V8's.
    const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces: utime, stime,
    // then cutime, cstime (children already exited and waited for).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const own = Number(fields[11]) + Number(fields[12]);
    return (withReapedChildren ? own + Number(fields[13]) + Number(fields[14]) : own) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** CPU seconds the whole machine has spent busy (all cores), from /proc/stat; NaN off Linux. */
export function machineBusySeconds(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** USER_HZ: 100 on every Linux build Node supports. */
export const CLOCK_TICKS = 100;

/**
 * Starts a meter of this process's CPU share, in % of one core (process.cpuUsage: finer than the
 * 10 ms ticks of /proc). A load generator near 100 % set the figure itself: a ratio is only fair
 * while the same client is the bottleneck for baseline and scenario alike.
 */
export function selfCpuMeter(): () => number {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  return () => {
    const used = process.cpuUsage(cpu0);
    return ((used.user + used.system) / 1000 / (performance.now() - t0)) * 100;
  };
}

/** A byte count as the MB figure the tables show for peak RSS. */
export function rssFigure(bytes: number): Figure {
  return { value: bytes / (1024 * 1024), unit: 'MB' };
}

/** Every process descending from `pid` (children, their children…), from each process's parent in /proc; [] off Linux. */
export function descendantPids(pid: number): number[] {
  const parents = new Map<number, number>();
  try {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        // The fourth field, after the command name in parentheses (which may hold spaces).
        parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      } catch {
        // it ended meanwhile
      }
    }
  } catch {
    return [];
  }
  const descends = (child: number): boolean => {
    for (let at = parents.get(child); at !== undefined && at > 1; at = parents.get(at)) if (at === pid) return true;
    return false;
  };
  return [...parents.keys()].filter(descends);
}

/**
 * Resident set of a process and all its descendants, summed (pages shared between them counted in
 * each): what a server with its kernels or sandbox processes holds, read the same way for both.
 */
export function treeRssBytes(pid: number): number {
  return rssBytes(pid) + sumOver(descendantPids(pid), rssBytes);
}

/**
 * CPU seconds of a process and of every live process below it (a server's sandbox processes,
 * bubblewrap's children): with confined sandboxes most of a run's CPU is spent there, outside the
 * server's own /proc/<pid>/stat. A descendant that ended meanwhile is missing unless its parent
 * waited for it; sandbox processes live as long as their server, so a step loses none of theirs.
 */
export function treeCpuSeconds(pid: number): number {
  return cpuSeconds(pid) + sumOver(descendantPids(pid), cpuSeconds);
}

/**
 * CPU seconds of the processes below `pid` that are not its children (grandchildren and deeper):
 * when a run's children are stopped, theirs are orphaned and reaped by init, not by us, so their
 * time would count as a neighbour's unless read before.
 */
export function orphanableCpuSeconds(pid: number | 'self' = 'self'): number {
  const root = pid === 'self' ? process.pid : pid;
  const children = new Set(childPids(root));
  return sumOver(descendantPids(root).filter((descendant) => !children.has(descendant)), cpuSeconds);
}

/** What `read` says of each process, summed; one it cannot read (NaN: it ended meanwhile) adds nothing. */
function sumOver(pids: number[], read: (pid: number) => number): number {
  let total = 0;
  for (const pid of pids) {
    const value = read(pid);
    if (Number.isFinite(value)) total += value;
  }
  return total;
}

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
