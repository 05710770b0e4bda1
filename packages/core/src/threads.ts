import { statSync } from 'node:fs';

/**
 * A thread count for work over `inputs` when the user asked for none: `cores`, but at most one thread per
 * `bytesPerThread` bytes of input (each file's size times `weight(file)`, e.g. more for compressed files), and at least
 * 1. For work whose threads each pay a start-up cost (loading a model, compiling the code) that small inputs do not
 * repay. Files that cannot be read count as empty: the caller reports them.
 */
export function threadsForInput(
  inputs: readonly string[],
  cores: number,
  bytesPerThread: number,
  weight: (file: string) => number = () => 1,
): number {
  let bytes = 0;
  for (const f of inputs) {
    try {
      bytes += statSync(f).size * weight(f);
    } catch {
      // missing or unreadable: the caller names it
    }
  }
  return Math.max(1, Math.min(cores, Math.floor(bytes / bytesPerThread)));
}
