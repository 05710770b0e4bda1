import { YuanError, type QuantizeGrid } from '@yuan/core';
import { groupGrid, level, type QuantizedValues } from './grid.js';
import { inverseUpperCholesky } from './linalg.js';

/** GPTQ's own options beside the grid. Defaults (the `gptq` plugin's): actOrder false, damp 0.01, blockSize 128. */
export interface GptqOptions extends QuantizeGrid {
  /** Quantize input columns by decreasing Hessian diagonal ("act-order", `desc_act`); `gIdx` records each one's group. */
  actOrder: boolean;
  /** Dampening λ as a fraction of the mean Hessian diagonal, added to the diagonal before factorising. */
  damp: number;
  /** Columns per lazy batch update (rounded to a multiple of the group size). */
  blockSize: number;
}

/**
 * GPTQ (Frantar et al. 2022, arXiv 2210.17323, Algorithm 1) for one linear: weight [rows, cols] row-major and the
 * Hessian H = 2/N·XᵀX [cols, cols] of its calibration inputs. Dead inputs (H_ii = 0) get H_ii = 1 and weight 0; with
 * act-order columns go by decreasing H_ii; λ = damp·mean(diag H) is added to the diagonal; U, the upper Cholesky factor
 * of H⁻¹, drives the updates. Columns are quantized one at a time in blocks: the rounding error of column j, divided by
 * U_jj, is spread over the block's later columns through row j of U, and over the columns after the block in one
 * batched update when the block ends. A group's grid is taken from its current (already updated) weights when its
 * first column comes up. All arithmetic is Float64.
 */
export function gptqValues(
  weight: Float32Array,
  rows: number,
  cols: number,
  hessian: Float64Array,
  o: GptqOptions,
  name = 'the layer',
): QuantizedValues {
  if (hessian.length !== cols * cols)
    throw new YuanError('quantize', `${name}: the Hessian has ${hessian.length} values; [${cols}, ${cols}] expected`);
  const maxq = 2 ** o.bits - 1;
  const h = Float64Array.from(hessian);
  // W transposed: wt[c * rows + r] = W[r, c], so that a column is contiguous
  const wt = new Float64Array(cols * rows);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) wt[c * rows + r] = weight[r * cols + c];
  for (let c = 0; c < cols; c++) {
    if (h[c * cols + c] === 0) {
      h[c * cols + c] = 1;
      wt.fill(0, c * rows, (c + 1) * rows);
    }
  }
  const perm = Int32Array.from({ length: cols }, (_, i) => i);
  if (o.actOrder) perm.sort((a, b) => h[b * cols + b] - h[a * cols + a] || a - b);
  const hp = new Float64Array(cols * cols);
  const wp = new Float64Array(cols * rows);
  let diagSum = 0;
  for (let i = 0; i < cols; i++) {
    const pi = perm[i];
    for (let j = 0; j < cols; j++) hp[i * cols + j] = h[pi * cols + perm[j]];
    wp.set(wt.subarray(pi * rows, (pi + 1) * rows), i * rows);
    diagSum += hp[i * cols + i];
  }
  const lambda = (o.damp * diagSum) / cols;
  for (let i = 0; i < cols; i++) hp[i * cols + i] += lambda;
  const u = inverseUpperCholesky(hp, cols);
  if (!u)
    throw new YuanError(
      'quantize',
      `${name}: the damped Hessian is not positive definite (raise damp above ${o.damp})`,
    );

  const g = o.groupSize === -1 ? cols : o.groupSize;
  const groups = Math.ceil(cols / g);
  const block = o.groupSize === -1 ? o.blockSize : g >= o.blockSize ? g : g * Math.ceil(o.blockSize / g);
  const scales = new Float32Array(groups * rows);
  const zeros = new Int32Array(groups * rows);
  const qp = new Uint8Array(cols * rows);
  const err = new Float64Array(block * rows);
  const mins = new Float64Array(rows);
  const maxs = new Float64Array(rows);

  const setGrid = (group: number, start: number, end: number) => {
    mins.fill(Infinity);
    maxs.fill(-Infinity);
    for (let c = start; c < end; c++) {
      const col = c * rows;
      for (let r = 0; r < rows; r++) {
        const w = wp[col + r];
        if (w < mins[r]) mins[r] = w;
        if (w > maxs[r]) maxs[r] = w;
      }
    }
    for (let r = 0; r < rows; r++) {
      const { scale, zero } = groupGrid(mins[r], maxs[r], o);
      scales[group * rows + r] = scale;
      zeros[group * rows + r] = zero;
    }
  };

  if (o.groupSize === -1) setGrid(0, 0, cols);
  for (let i1 = 0; i1 < cols; i1 += block) {
    const i2 = Math.min(cols, i1 + block);
    for (let c = i1; c < i2; c++) {
      const group = o.groupSize === -1 ? 0 : Math.floor(c / g);
      if (o.groupSize !== -1 && c % g === 0) setGrid(group, c, Math.min(cols, c + g));
      const d = u[c * cols + c];
      const col = c * rows;
      const e = (c - i1) * rows;
      for (let r = 0; r < rows; r++) {
        const w = wp[col + r];
        const s = scales[group * rows + r];
        const z = zeros[group * rows + r];
        const q = level(w, s, z, maxq);
        qp[col + r] = q;
        err[e + r] = (w - s * (q - z)) / d;
      }
      for (let k = c + 1; k < i2; k++) {
        const f = u[c * cols + k];
        if (f === 0) continue;
        const dst = k * rows;
        for (let r = 0; r < rows; r++) wp[dst + r] -= f * err[e + r];
      }
    }
    // the lazy batch update: W[:, i2:] −= Err · U[i1:i2, i2:]
    for (let k = i2; k < cols; k++) {
      const dst = k * rows;
      for (let j = i1; j < i2; j++) {
        const f = u[j * cols + k];
        if (f === 0) continue;
        const e = (j - i1) * rows;
        for (let r = 0; r < rows; r++) wp[dst + r] -= f * err[e + r];
      }
    }
  }
  const q = new Uint8Array(rows * cols);
  const gIdx = new Int32Array(cols);
  for (let c = 0; c < cols; c++) {
    const orig = perm[c];
    gIdx[orig] = o.groupSize === -1 ? 0 : Math.floor(c / g);
    const col = c * rows;
    for (let r = 0; r < rows; r++) q[r * cols + orig] = qp[col + r];
  }
  return { q, scales, zeros, gIdx, groups };
}
