/**
 * Surgery on a stopped server's LevelDB (`<data>/events`, as src/store/level-store.ts lays it out):
 * a log that the server, started again over it, cannot read to its end. Only for a single process
 * on LevelDB (not VMSTREAM_TEST_TARGET=cluster).
 */
import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { Packr } from 'msgpackr';

const packr = new Packr({ useRecords: false });

/**
 * Removes every stored event of the tenant's execution and keeps its record: a log with a gap from
 * seq 1 to its record's last_seq. Resolves with how many entries held events.
 */
export async function removeEvents(dataDir: string, executionId: string, tenant = 'default'): Promise<number> {
  const db = new ClassicLevel<string, Uint8Array>(path.join(dataDir, 'events'), { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  try {
    const storedId = `${tenant}/${executionId}`;
    // Chunks are `e!<stored id>!<last seq>`; a short log's last frames ride in its ended record, `x!<stored id>`: [record, frames].
    const chunks: string[] = [];
    for await (const key of db.keys({ gt: `e!${storedId}!`, lt: `e!${storedId}!\xff` })) chunks.push(key);
    const stored = packr.unpack((await db.get(`x!${storedId}`))!) as object;
    const tail = Array.isArray(stored);
    await db.batch([
      ...chunks.map((key) => ({ type: 'del' as const, key })),
      ...(tail ? [{ type: 'put' as const, key: `x!${storedId}`, value: packr.pack(stored[0]) }] : []),
    ]);
    return chunks.length + (tail ? 1 : 0);
  } finally {
    await db.close();
  }
}
