/**
 * connections: what holding clients costs the server. 10 000 idle sockets (several client
 * processes), then, on a fresh server, 1 000 sessions that have each run one `1 + 1` (their context
 * built and used). Memory is the server's resident set (main thread and workers), read at rest
 * before, halfway and after, so the figure is bytes per socket (or session) as the process holds them,
 * with the heap's own growth included. The goal (≤ 8 KiB per socket) is absolute: no baseline sets
 * it. Beside it, the same reading for the bare uWS server: what a socket costs before vmstream adds
 * its own state. The sessions' contexts live in the tenant's sandbox process (one tenant here): its
 * resident set is read beside the server's, at the end.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { startBareServer } from '../baselines/bare-server.js';
import type { Child } from '../harness/procs.js';
import { readFileSync } from 'node:fs';
import { descendantPids, openFilesLimit, rssBytes } from '../harness/proc-stats.js';
import type { Ctx, Figure, Scenario } from '../harness/types.js';
import { startVmstream } from '../harness/vmstream.js';
import type { IdleJob } from '../loadgen/types.js';
import { check, serverRss } from './common.js';

const KIB = 1024;

interface Growth {
  /** Whole run: (rss at N − rss at 0) / N. */
  perThing: number;
  /** Second half only: leaves out one-time growth (maps resized, the young generation's first expansion). */
  perThingSlope: number;
  rss: number[];
  seconds: number;
}

/**
 * Opens the job's connections and sessions in two steps and reads the server's RSS at rest before,
 * after the first step and after the second.
 */
async function growth(ctx: Ctx, server: Child, job: IdleJob, processes: number, things: number): Promise<Growth> {
  const settleMs = ctx.quick ? 200 : 1_500;
  await sleep(settleMs);
  const rss = [rssBytes(server.pid)];
  const r = await ctx.loadgen(job, processes, {
    timeoutMs: ctx.quick ? 30_000 : 150_000,
    onReady: async () => {
      await sleep(settleMs);
      rss.push(rssBytes(server.pid));
    },
  });
  check(r.connections === job.connections && r.sessions === job.sessions, `opened ${r.connections} sockets and ${r.sessions} sessions of ${job.connections} and ${job.sessions}`);
  const [r0, r1, r2] = rss as [number, number, number];
  return { perThing: (r2 - r0) / things, perThingSlope: (r2 - r1) / (things - Math.round(things / 2)), rss, seconds: r.openSeconds };
}

/** The resident set of each sandbox process of `serverPid` (its Node descendants; bwrap and setpriv between are not counted). */
function sandboxRssBytes(serverPid: number): number[] {
  return descendantPids(serverPid).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'node';
    } catch {
      return false;
    }
  }).map((pid) => rssBytes(pid));
}

function assertFileLimit(pid: number, needed: number, what: string): void {
  const limit = openFilesLimit(pid);
  check(!(limit < needed), `${what} may open ${limit} files (ulimit -n) and needs ${needed}: raise ulimit -n before running the bench`);
}

export const connections: Scenario = {
  name: 'connections',
  headline: 'kib_per_socket',
  goal: { value: 8, unit: 'KiB', better: 'lower' },
  async run(ctx) {
    const sockets = ctx.quick ? 200 : 10_000;
    const sessions = ctx.quick ? 20 : 1_000;
    const processes = ctx.quick ? 2 : 4;
    const idle = (url: string, token?: string): IdleJob => ({
      driver: 'idle', url, token, connections: sockets, sessions: 0, steps: 2, connectConcurrency: 16,
    });
    assertFileLimit(process.pid, Math.ceil(sockets / processes) + 100, 'a load-generator process');

    const bare = await startBareServer(ctx);
    let bareGrowth: Growth;
    try {
      assertFileLimit(bare.server.pid, sockets + 100, 'the bare server');
      bareGrowth = await growth(ctx, bare.server, idle(bare.url), processes, sockets);
    } finally {
      await bare.server.stop();
    }

    const figures: Record<string, Figure> = {};
    const server = await startVmstream(ctx, { name: 'connections' });
    let socketGrowth: Growth;
    try {
      assertFileLimit(server.child.pid, sockets + 100, 'the vmstream server');
      socketGrowth = await growth(ctx, server.child, idle(server.url, server.token), processes, sockets);
      Object.assign(figures, serverRss(server));
    } finally {
      await server.stop();
    }

    const fresh = await startVmstream(ctx, { name: 'sessions' });
    let sessionGrowth: Growth;
    try {
      const job: IdleJob = { driver: 'idle', url: fresh.url, token: fresh.token, connections: 10, sessions, code: '1 + 1', steps: 2 };
      sessionGrowth = await growth(ctx, fresh.child, job, 1, sessions);
      const sandboxes = sandboxRssBytes(fresh.child.pid);
      figures.sandbox_processes = { value: sandboxes.length, unit: 'processes' };
      figures.sandbox_rss_with_sessions_mb = { value: sandboxes.reduce((sum, bytes) => sum + bytes, 0) / (1024 * 1024), unit: 'MB' };
      figures.sessions_server_peak_rss_mb = { value: fresh.peakRssBytes() / (1024 * 1024), unit: 'MB' };
    } finally {
      await fresh.stop();
    }

    return {
      figure: { value: socketGrowth.perThing / KIB, unit: 'KiB' },
      figures: {
        kib_per_socket_second_half: { value: socketGrowth.perThingSlope / KIB, unit: 'KiB' },
        bare_uws_kib_per_socket: { value: bareGrowth.perThing / KIB, unit: 'KiB' },
        kib_per_session: { value: sessionGrowth.perThing / KIB, unit: 'KiB' },
        kib_per_session_second_half: { value: sessionGrowth.perThingSlope / KIB, unit: 'KiB' },
        sockets: { value: sockets, unit: 'sockets' },
        sessions: { value: sessions, unit: 'sessions' },
        sockets_open_seconds: { value: socketGrowth.seconds, unit: 's' },
        sessions_open_seconds: { value: sessionGrowth.seconds, unit: 's' },
        rss_before_sockets_mb: { value: socketGrowth.rss[0]! / (1024 * 1024), unit: 'MB' },
        rss_with_sockets_mb: { value: socketGrowth.rss[2]! / (1024 * 1024), unit: 'MB' },
        rss_before_sessions_mb: { value: sessionGrowth.rss[0]! / (1024 * 1024), unit: 'MB' },
        rss_with_sessions_mb: { value: sessionGrowth.rss[2]! / (1024 * 1024), unit: 'MB' },
        ...figures,
      },
      shown: [
        'kib_per_socket_second_half', 'bare_uws_kib_per_socket', 'kib_per_session', 'kib_per_session_second_half',
        'rss_with_sockets_mb', 'rss_with_sessions_mb', 'server_peak_rss_mb', 'sessions_server_peak_rss_mb', 'sandbox_rss_with_sessions_mb',
      ],
      setup: `${sockets} idle sockets (${processes} client processes); then ${sessions} sessions on a fresh server, each having run 1 + 1`,
    };
  },
};
