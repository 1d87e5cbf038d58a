/**
 * What the Jupyter front door keeps beside the event store, in its own small LevelDB
 * (<data>/jupyter): the notebook sessions of each tenant (notebook path ↔ kernel, as Jupyter Server
 * keeps them), and how far each client session has confirmed the messages of each kernel, so that a
 * reconnect after a server restart replays exactly what the client did not get.
 */
import { ClassicLevel } from 'classic-level';

/** The last unit a client confirmed: execution `number`, unit `seq` (0: its start). */
export interface Cursor { number: number; seq: number }

export interface NotebookSession {
  id: string;
  path: string;
  name: string;
  type: string;
  kernelId: string;
}

/** Parts escaped so that `!` only ever separates them. */
const key = (...parts: string[]) => parts.map((part) => encodeURIComponent(part).replaceAll('!', '%21')).join('!');

export class JupyterState {
  readonly #db: ClassicLevel<string, unknown>;

  constructor(location: string) {
    this.#db = new ClassicLevel<string, unknown>(location, { keyEncoding: 'utf8', valueEncoding: 'json' });
  }

  open(): Promise<void> {
    return this.#db.open({ createIfMissing: true });
  }

  close(): Promise<void> {
    return this.#db.close();
  }

  async cursor(tenant: string, kernelId: string, client: string): Promise<Cursor | null> {
    return ((await this.#db.get(key('c', tenant, kernelId, client))) as Cursor | undefined) ?? null;
  }

  saveCursor(tenant: string, kernelId: string, client: string, cursor: Cursor): Promise<void> {
    return this.#db.put(key('c', tenant, kernelId, client), cursor);
  }

  /** Drops the confirmed points of a kernel that was shut down. */
  async forgetKernel(tenant: string, kernelId: string): Promise<void> {
    const prefix = `${key('c', tenant, kernelId)}!`;
    await this.#db.clear({ gt: prefix, lt: `${prefix}\xff` });
  }

  async notebooks(tenant: string): Promise<NotebookSession[]> {
    const prefix = `${key('n', tenant)}!`;
    const items: NotebookSession[] = [];
    for await (const value of this.#db.values({ gt: prefix, lt: `${prefix}\xff` })) items.push(value as NotebookSession);
    return items;
  }

  saveNotebook(tenant: string, session: NotebookSession): Promise<void> {
    return this.#db.put(key('n', tenant, session.id), session);
  }

  deleteNotebook(tenant: string, id: string): Promise<void> {
    return this.#db.del(key('n', tenant, id));
  }
}
