/**
 * Idle driver: opens connections and sessions in equal steps and holds them, stopping at a gate
 * after each step so the harness can read the server's memory at known counts. Nothing is sent
 * between steps: what the server holds then is what an idle socket or session costs.
 */
import { performance } from 'node:perf_hooks';
import type WebSocket from 'ws';
import { selfCpuMeter } from '../harness/proc-stats.js';
import { connectAll } from './connect.js';
import { gate } from './gate.js';
import type { IdleJob, IdleResult } from './types.js';
import { createSession, executeToDone } from './vmstream-calls.js';

export async function runIdle(job: IdleJob): Promise<IdleResult> {
  const clientCpu = selfCpuMeter();
  const sockets: WebSocket[] = [];
  let sessions = 0;
  let executions = 0;
  let openMs = 0;
  try {
    for (let step = 0; step < job.steps; step++) {
      const t0 = performance.now();
      const wantSockets = Math.round((job.connections * (step + 1)) / job.steps);
      sockets.push(...(await connectAll(job.url, wantSockets - sockets.length, job.token, job.connectConcurrency ?? 1)));
      const wantSessions = Math.round((job.sessions * (step + 1)) / job.steps);
      // Session k lives on socket k mod sockets: each socket creates its share one after another,
      // the sockets side by side.
      const share = new Map<number, number>();
      for (let k = sessions; k < wantSessions; k++) share.set(k % sockets.length, (share.get(k % sockets.length) ?? 0) + 1);
      await Promise.all(
        [...share].map(async ([index, count]) => {
          for (let i = 0; i < count; i++) {
            const sessionId = await createSession(sockets[index]!, `idle-${index}-${i}`);
            if (job.code !== undefined) {
              await executeToDone(sockets[index]!, sessionId, job.code);
              executions++;
            }
          }
        }),
      );
      sessions = wantSessions;
      openMs += performance.now() - t0;
      await gate(step, { connections: sockets.length, sessions, executions });
    }
  } finally {
    for (const ws of sockets) ws?.terminate();
  }
  return { driver: 'idle', connections: sockets.length, sessions, executions, openSeconds: openMs / 1000, clientCpuPct: clientCpu() };
}
