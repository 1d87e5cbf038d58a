/**
 * The real vmstream server (dist/src/cli/main.js), started the way the bench starts every child: it
 * exits when the harness does, even one killed with SIGKILL that could not stop it, so no orphan
 * server holds a port or a core into the next run. Configuration is the environment, as for
 * `npm start`; the harness sets it (harness/vmstream.ts).
 */
import { bindToParent } from '../harness/child.js';

bindToParent();
await import('../../src/cli/main.js');
