import type { QuantizeGrid } from '@yuan/core';
import { groupGrid, level, type QuantizedValues } from './grid.js';

/**
 * Round to nearest: each output row's input columns in groups of `groupSize` (−1: all of them), each group's grid from
 * its own min and max (`groupGrid`), every weight rounded to its nearest level. A weight already on its group's grid
 * (with levels 0 and 2^bits − 1 used, zero point ≥ 1 and a float16 scale) comes back exactly.
 */
export function rtnValues(weight: Float32Array, rows: number, cols: number, grid: QuantizeGrid): QuantizedValues {
  const g = grid.groupSize === -1 ? cols : grid.groupSize;
  const groups = Math.ceil(cols / g);
  const maxq = 2 ** grid.bits - 1;
  const q = new Uint8Array(rows * cols);
  const scales = new Float32Array(groups * rows);
  const zeros = new Int32Array(groups * rows);
  for (let o = 0; o < rows; o++) {
    const row = o * cols;
    for (let k = 0; k < groups; k++) {
      const start = k * g;
      const end = Math.min(cols, start + g);
      let min = Infinity;
      let max = -Infinity;
      for (let i = start; i < end; i++) {
        const w = weight[row + i];
        if (w < min) min = w;
        if (w > max) max = w;
      }
      const { scale, zero } = groupGrid(min, max, grid);
      scales[k * rows + o] = scale;
      zeros[k * rows + o] = zero;
      for (let i = start; i < end; i++) q[row + i] = level(weight[row + i], scale, zero, maxq);
    }
  }
  const gIdx = Int32Array.from({ length: cols }, (_, i) => Math.floor(i / g));
  return { q, scales, zeros, gIdx, groups };
}
