/**
 * Load-generator process: receives one job over IPC, runs it, sends back {type:'result', result} or
 * {type:'error', message}, and exits. A process of its own so its CPU is not the server's.
 */
import { bindToParent, receiveFromParent, sendToParent } from '../harness/child.js';
import { runIdle } from './idle.js';
import { runRtt } from './rtt.js';
import { runSink } from './sink.js';
import { runStorm } from './storm.js';
import type { LoadJob, LoadResult } from './types.js';

function run(job: LoadJob): Promise<LoadResult> {
  switch (job.driver) {
    case 'rtt':
      return runRtt(job);
    case 'sink':
      return runSink(job);
    case 'idle':
      return runIdle(job);
    case 'storm':
      return runStorm(job);
  }
}

bindToParent();
const { job } = await receiveFromParent<{ type: 'job'; job: LoadJob }>('job');
try {
  await sendToParent({ type: 'result', result: await run(job) });
} catch (error) {
  await sendToParent({ type: 'error', message: (error as Error).stack ?? String(error) });
}
process.exit(0);
