/** The baselines, in the order a full run measures them. */
import type { Baseline } from '../harness/types.js';
import { echo } from './echo.js';
import { ipykernel } from './ipykernel.js';
import { jetstream } from './jetstream.js';
import { push } from './push.js';
import { storage } from './storage.js';

export const baselines: Baseline[] = [echo, push, storage, jetstream, ipykernel];
