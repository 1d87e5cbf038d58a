/**
 * The scenarios against the real vmstream server, in run order. Each is a module in this directory
 * exporting a Scenario (bench/harness/types.ts); registering one is one line here, e.g.
 *   import { executeTrivial } from './execute-trivial.js';
 *   export const scenarios: Scenario[] = [executeTrivial];
 * None exist yet: they wait for the core server (execute-trivial, latency, stream, replay, fanout,
 * connections, reconnect-storm).
 */
import type { Scenario } from '../harness/types.js';

export const scenarios: Scenario[] = [];
