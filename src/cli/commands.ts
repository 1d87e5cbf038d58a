/**
 * The client commands of the `vmstream` binary (with no command it starts the server, see
 * main.ts). Each is loaded only when called, so starting the server loads none of them.
 */
import { ConnectionError } from '../client/index.js';
import { DEFAULT_URL, UsageError } from './connect.js';

export const USAGE = `usage:
  vmstream                      start the server (configured by VMSTREAM_* variables)
  vmstream repl [URL]           an interactive session
  vmstream run FILE             run a local file in a new session (--workspace: a file of the server's workspace)
  vmstream tail EXECUTION_ID    follow an execution's output from the start (--after-seq N: after event N)
  vmstream mcp                  an MCP server on stdin/stdout for MCP clients, bridged to the running server's /mcp

options of repl, run, tail, mcp:
  --url URL        the server (default: $VMSTREAM_URL, else ${DEFAULT_URL}); http:// and the console URL work too
  --token TOKEN    default: $VMSTREAM_TOKEN, else the ?token= of the URL
  --session ID     (repl, run) use this open session instead of creating one
  --timeout-ms N   (run) the execution's time limit
`;

export async function runCommand(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  try {
    switch (command) {
      case 'repl':
        return await (await import('./repl.js')).repl(args);
      case 'run':
        return await (await import('./follow.js')).run(args);
      case 'tail':
        return await (await import('./follow.js')).tail(args);
      case 'mcp':
        return await (await import('../mcp/bridge.js')).bridge(args);
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        return 0;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (error) {
    // parseArgs reports unknown options and missing values as TypeErrors with an ERR_PARSE_ARGS_ code.
    const parseError = typeof (error as { code?: unknown }).code === 'string' && (error as { code: string }).code.startsWith('ERR_PARSE_ARGS');
    if (error instanceof UsageError || parseError) {
      process.stderr.write(`vmstream: ${(error as Error).message}\n\n${USAGE}`);
      return 2;
    }
    if (error instanceof ConnectionError) {
      process.stderr.write(`vmstream: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}
