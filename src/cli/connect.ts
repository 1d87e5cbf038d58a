/**
 * Where the terminal commands connect, and with which token: the URL argument (or --url, or
 * VMSTREAM_URL, or the default local server), and --token, else VMSTREAM_TOKEN, else the URL's
 * own `?token=` (the URL the server prints carries it).
 */
import { Client, resolveTarget } from '../client/index.js';

export const DEFAULT_URL = 'ws://127.0.0.1:8080/v1/ws';

export const CONNECTION_OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
} as const;

/** The socket URL (ws: or wss:) and the token the options and the environment say. */
export function targetFromArgs(url: string | undefined, token: string | undefined): { url: string; token: string } {
  const target = resolveTarget(url ?? process.env.VMSTREAM_URL ?? DEFAULT_URL, token ?? (process.env.VMSTREAM_TOKEN || undefined));
  if (target.token === undefined) {
    throw new UsageError('no token: give --token, set VMSTREAM_TOKEN, or use the URL with ?token= that the server printed');
  }
  return { url: target.url, token: target.token };
}

export async function connectFromArgs(url: string | undefined, token: string | undefined): Promise<{ client: Client; url: string }> {
  const target = targetFromArgs(url, token);
  return { client: await Client.connect(target.url, { token: target.token }), url: target.url };
}

/** A mistake in how a command was called: reported with the usage, exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
