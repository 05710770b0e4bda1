import { YuanError, type QuantizeGrid } from '@yuan/core';

/**
 * The smallest float16 value ≥ v for v > 0 (scales are stored as F16; rounding up keeps the group's range covered).
 * A value below the smallest subnormal becomes 2^−24; one above 65504 is an error.
 */
export function halfCeil(v: number): number {
  if (!(v > 0) || !Number.isFinite(v)) throw new YuanError('quantize', `scale ${v} is not a positive finite number`);
  let e = Math.floor(Math.log2(v));
  if (2 ** e > v) e--;
  else if (2 ** (e + 1) <= v) e++;
  const quantum = 2 ** (Math.max(e, -14) - 10);
  const h = Math.ceil(v / quantum) * quantum;
  if (h > 65504)
    throw new YuanError(
      'quantize',
      `scale ${v} does not fit float16 (weights of magnitude ${v.toExponential(2)}·levels)`,
    );
  return h;
}

/** A group's grid: w ≈ scale·(q − zero), q an integer in [0, 2^bits − 1]. */
export interface GroupGrid {
  scale: number;
  zero: number;
}

/**
 * The grid of a group whose values span [min, max], as GPTQ's reference quantizer makes it: the range is widened to
 * include 0; asymmetric: scale = (max − min)/(2^bits − 1), zero = round(−min/scale); symmetric: scale =
 * 2·max|w|/(2^bits − 1), zero = 2^(bits−1); an all-zero group gets the range [−1, 1]. The scale is rounded up to
 * float16. Asymmetric zero points are kept in [1, 2^bits − 1] so that AutoGPTQ's v1 layout (which stores zero − 1)
 * holds them: a group whose zero would round to 0 (all values ≥ −scale/2) gets zero 1 and scale max/(2^bits − 2).
 */
export function groupGrid(min: number, max: number, grid: QuantizeGrid): GroupGrid {
  const maxq = 2 ** grid.bits - 1;
  let lo = Math.min(min, 0);
  let hi = Math.max(max, 0);
  if (grid.sym) {
    const m = Math.max(-lo, hi) || 1;
    return { scale: halfCeil((2 * m) / maxq), zero: (maxq + 1) / 2 };
  }
  if (lo === hi) {
    lo = -1;
    hi = 1;
  }
  const scale = halfCeil((hi - lo) / maxq);
  const zero = Math.round(-lo / scale);
  if (zero < 1) return { scale: halfCeil(hi / (maxq - 1)), zero: 1 };
  return { scale, zero: Math.min(zero, maxq) };
}

/** The integer level of w on a grid: clamp(round(w/scale) + zero, 0, maxq). */
export function level(w: number, scale: number, zero: number, maxq: number): number {
  const q = Math.round(w / scale) + zero;
  return q < 0 ? 0 : q > maxq ? maxq : q;
}

/**
 * What a quantizer computes for one linear before packing: integer weights `q` [rows, cols] (row-major), `scales` and
 * `zeros` [groups, rows], and the group of each input column, `gIdx` [cols].
 */
export interface QuantizedValues {
  q: Uint8Array;
  scales: Float32Array;
  zeros: Int32Array;
  gIdx: Int32Array;
  groups: number;
}

/** Checks a grid's fields (bits 4 or 8, groupSize −1 or a positive integer, sym boolean); names the bad one. */
export function checkGrid(grid: QuantizeGrid, who: string): void {
  if (grid.bits !== 4 && grid.bits !== 8)
    throw new YuanError('config', `${who}: bits ${JSON.stringify(grid.bits)}; expected 4 or 8`);
  if (!(grid.groupSize === -1 || (Number.isInteger(grid.groupSize) && grid.groupSize > 0))) {
    throw new YuanError(
      'config',
      `${who}: groupSize ${JSON.stringify(grid.groupSize)}; expected a positive integer or -1 (per channel)`,
    );
  }
  if (typeof grid.sym !== 'boolean')
    throw new YuanError('config', `${who}: sym ${JSON.stringify(grid.sym)}; expected true or false`);
}
