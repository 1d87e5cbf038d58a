/**
 * The child side of a gated step: say ready (with what this process has to report), then wait for
 * the harness's go. Between the two the harness reads the server at a known moment.
 */
import { receiveFromParent, sendToParent } from '../harness/child.js';
import type { GoMessage } from './types.js';

export async function gate(step: number, info?: Record<string, number>): Promise<void> {
  const go = receiveGo(step);
  await sendToParent({ type: 'ready', step, ...(info ? { info } : {}) });
  await go;
}

async function receiveGo(step: number): Promise<void> {
  for (;;) {
    const message = await receiveFromParent<GoMessage>('go');
    if (message.step === step) return;
  }
}
