import type { ParameterInit } from '@yuan/core';
import type { Rng } from '@yuan/core';

/** Fills a new Float32Array of `size` values as `init` says, drawing from `rng`. */
export function initValues(size: number, init: ParameterInit, rng: Rng): Float32Array {
  const out = new Float32Array(size);
  switch (init.kind) {
    case 'zeros':
      break;
    case 'ones':
      out.fill(1);
      break;
    case 'normal':
      for (let i = 0; i < size; i++) out[i] = rng.normal() * init.std;
      break;
    case 'uniform':
      for (let i = 0; i < size; i++) out[i] = (rng.next() * 2 - 1) * init.bound;
      break;
  }
  return out;
}
