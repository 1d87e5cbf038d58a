/**
 * The loop the unit benchmarks time an operation with: `run(batch)` again and again for `seconds`
 * after a warm-up of the same length (so the JIT has settled), counted in operations per second.
 */
export function operationsPerSecond(run: (count: number) => unknown, seconds: number, batch: number): number {
  for (const end = performance.now() + seconds * 1000; performance.now() < end;) run(batch);
  let count = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    run(batch);
    count += batch;
  }
  return count / ((performance.now() - start) / 1000);
}
