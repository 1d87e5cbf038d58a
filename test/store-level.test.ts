import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LevelEventStore } from '../src/store/level-store.js';
import { runStoreSuite } from './store/suite.js';

// Each store gets its own LevelDB folder under one temporary root, removed when the file ends.
const root = mkdtempSync(path.join(os.tmpdir(), 'vmstream-store-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
let stores = 0;

runStoreSuite(t, 'LevelEventStore', async () => new LevelEventStore(path.join(root, `db-${++stores}`)));
