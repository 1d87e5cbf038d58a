/**
 * The scenarios against the real vmstream server, in run order. Each is a module in this directory
 * exporting a Scenario (bench/harness/types.ts); registering one is one line here.
 */
import type { Scenario } from '../harness/types.js';
import { connections } from './connections.js';
import { executeTrivial, executeTrivialPlain } from './execute-trivial.js';
import { fanout } from './fanout.js';
import { forward } from './forward.js';
import { jupyter } from './jupyter.js';
import { latency } from './latency.js';
import { reconnectStorm } from './reconnect-storm.js';
import { replay, replayJetstream } from './replay.js';
import { replayDeep, replayDeepJetstream } from './replay-deep.js';
import { stream, streamJetstream } from './stream.js';
import { takeover } from './takeover.js';

export const scenarios: Scenario[] = [executeTrivial, executeTrivialPlain, latency, stream, streamJetstream, replay, replayJetstream, replayDeep, replayDeepJetstream, fanout, connections, reconnectStorm, jupyter, forward, takeover];
