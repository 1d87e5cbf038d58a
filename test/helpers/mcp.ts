/**
 * MCP from a test's side: the SDK's own Client, over Streamable HTTP to a real server's /mcp, or
 * over stdio to a real `vmstream mcp` bridge process (launched as an MCP client launches tools,
 * with no VMSTREAM_* variable in its environment), closed at teardown.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { getDefaultEnvironment, StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { MAIN, type TestServer } from './server.js';

export type McpTransportKind = 'http' | 'stdio';
export const MCP_TRANSPORTS: McpTransportKind[] = ['http', 'stdio'];

type Tap = { teardown(fn: () => unknown): void };

export function mcpUrl(server: TestServer): string {
  return `http://127.0.0.1:${server.port}/mcp`;
}

/** A connected Client; `token` defaults to the server's. */
export async function mcpClientFor(t: Tap, server: TestServer, kind: McpTransportKind, token = server.token): Promise<Client> {
  const client = new Client({ name: 'vmstream-test', version: '1.0.0' });
  if (kind === 'http') {
    await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl(server)), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
  } else {
    await client.connect(stdioTransport(process.execPath, [MAIN, 'mcp', '--url', server.url, '--token', token]));
  }
  t.teardown(() => client.close());
  return client;
}

/** A bridge process as MCP clients start one: their default environment, which has no VMSTREAM_*. */
export function stdioTransport(command: string, args: string[]): StdioClientTransport {
  const env = getDefaultEnvironment();
  for (const name of Object.keys(env)) if (name.startsWith('VMSTREAM_')) delete env[name];
  return new StdioClientTransport({ command, args, env, stderr: 'pipe' });
}

/** Long runs outlast the SDK's default 60 s request timeout on a loaded machine. */
export const LONG = { timeout: 600_000 };

export async function call(client: Client, name: string, args: Record<string, unknown> = {}): Promise<CallToolResult & { structuredContent?: any }> {
  return (await client.callTool({ name, arguments: args }, undefined, LONG)) as CallToolResult;
}

export function textOf(result: CallToolResult): string {
  if (result.content.length !== 1 || result.content[0]!.type !== 'text') throw new Error(`not one text block: ${JSON.stringify(result.content)}`);
  return result.content[0]!.text;
}
