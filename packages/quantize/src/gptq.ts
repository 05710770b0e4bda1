import { YuanError, type QuantizeGrid } from '@yuan/core';
import { loadDecodeKernels, type DecodeKernels } from '@yuan/tensor';
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

/** Columns per sub-block inside a block of the BLAS path (see `gptqValues`). */
const INNER = 16;

/** The Float64 BLAS kernels GPTQ can use (from @yuan/tensor-native, through `loadDecodeKernels` of @yuan/tensor). */
export type GptqKernels = Pick<DecodeKernels, 'inverseUpperCholesky' | 'gemmSub64'>;

/**
 * The native Float64 BLAS kernels when @yuan/tensor-native's addon is built (and `YUAN_NATIVE_SKIP` is unset), else
 * undefined: GPTQ then runs its plain loops.
 */
export async function gptqKernels(): Promise<GptqKernels | undefined> {
  const { kernels } = await loadDecodeKernels();
  return typeof kernels?.inverseUpperCholesky === 'function' && typeof kernels.gemmSub64 === 'function'
    ? kernels
    : undefined;
}

/**
 * GPTQ (Frantar et al. 2022, arXiv 2210.17323, Algorithm 1) for one linear: weight [rows, cols] row-major and the
 * Hessian H = 2/N·XᵀX [cols, cols] of its calibration inputs. Dead inputs (H_ii = 0) get H_ii = 1 and weight 0; with
 * act-order columns go by decreasing H_ii; λ = damp·mean(diag H) is added to the diagonal; U, the upper Cholesky factor
 * of H⁻¹, drives the updates. Columns are quantized one at a time in blocks: the rounding error of column j, divided by
 * U_jj, is spread over the block's later columns through row j of U, and over the columns after the block in one
 * batched update when the block ends (the paper's lazy batch update, a matrix product). A group's grid is taken from
 * its current (already updated) weights when its first column comes up. All arithmetic is Float64. With `kernels`
 * (the native backend's OpenBLAS) the factorisation and the updates run as blocked BLAS calls and the Hessian's copy is
 * factorised in place; without them, plain loops (the same algorithm, about 20× slower at 2048 columns).
 */
export function gptqValues(
  weight: Float32Array,
  rows: number,
  cols: number,
  hessian: Float64Array,
  o: GptqOptions,
  name = 'the layer',
  kernels?: GptqKernels,
): QuantizedValues {
  if (hessian.length !== cols * cols)
    throw new YuanError('quantize', `${name}: the Hessian has ${hessian.length} values; [${cols}, ${cols}] expected`);
  const maxq = 2 ** o.bits - 1;
  const dead = new Uint8Array(cols);
  const diag = new Float64Array(cols);
  for (let c = 0; c < cols; c++) {
    diag[c] = hessian[c * cols + c];
    if (diag[c] === 0) {
      dead[c] = 1;
      diag[c] = 1;
    }
  }
  const perm = Int32Array.from({ length: cols }, (_, i) => i);
  if (o.actOrder) perm.sort((a, b) => diag[b] - diag[a] || a - b);
  // the permuted, damped Hessian (one copy; the native path factorises it in place) and W transposed and permuted:
  // wp[i * rows + r] = W[r, perm[i]], so that a column is contiguous
  const hp = new Float64Array(cols * cols);
  const wp = new Float64Array(cols * rows);
  let diagSum = 0;
  for (let i = 0; i < cols; i++) {
    const pi = perm[i];
    const src = pi * cols;
    const dst = i * cols;
    for (let j = 0; j < cols; j++) hp[dst + j] = hessian[src + perm[j]];
    hp[dst + i] = diag[pi];
    diagSum += diag[pi];
    if (!dead[pi]) for (let r = 0; r < rows; r++) wp[i * rows + r] = weight[r * cols + pi];
  }
  const lambda = (o.damp * diagSum) / cols;
  for (let i = 0; i < cols; i++) hp[i * cols + i] += lambda;
  const u = kernels ? (kernels.inverseUpperCholesky(hp, cols) ? hp : undefined) : inverseUpperCholesky(hp, cols);
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

  // c [m, rows] −= aᵀ·b with a [k, m] (row stride cols, inside U) and b [k, rows] (inside err): BLAS or plain loops
  const update = (m: number, k: number, a: number, b: number, c: number) => {
    if (kernels) {
      kernels.gemmSub64(true, m, rows, k, u.subarray(a), cols, err.subarray(b), rows, wp.subarray(c), rows);
      return;
    }
    for (let i = 0; i < m; i++) {
      const dst = c + i * rows;
      for (let j = 0; j < k; j++) {
        const f = u[a + j * cols + i];
        if (f === 0) continue;
        const e = b + j * rows;
        for (let r = 0; r < rows; r++) wp[dst + r] -= f * err[e + r];
      }
    }
  };
  // Inside a block, columns go in sub-blocks of `inner`: a column's error reaches the rest of its sub-block at once
  // (plain loops, few columns), the rest of the block when the sub-block ends (one product). A group starts on a
  // sub-block boundary (groups of a multiple of 16; otherwise sub-blocks of one column), so its grid sees every update.
  const inner = kernels && (o.groupSize === -1 || g % INNER === 0) ? INNER : 1;
  if (o.groupSize === -1) setGrid(0, 0, cols);
  for (let i1 = 0; i1 < cols; i1 += block) {
    const i2 = Math.min(cols, i1 + block);
    for (let s1 = i1; s1 < i2; s1 += inner) {
      const s2 = Math.min(i2, s1 + inner);
      for (let c = s1; c < s2; c++) {
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
        // the sub-block's later columns: W[:, c+1:s2] −= err_c · U[c, c+1:s2]
        for (let k = c + 1; k < s2; k++) {
          const f = u[c * cols + k];
          if (f === 0) continue;
          const dst = k * rows;
          for (let r = 0; r < rows; r++) wp[dst + r] -= f * err[e + r];
        }
      }
      // the block's columns after the sub-block: W[:, s2:i2] −= Err[s1:s2] · U[s1:s2, s2:i2]
      if (s2 < i2) update(i2 - s2, s2 - s1, s1 * cols + s2, (s1 - i1) * rows, s2 * rows);
    }
    // the lazy batch update: W[:, i2:] −= Err · U[i1:i2, i2:]
    if (i2 < cols) update(cols - i2, i2 - i1, i1 * cols + i2, 0, i2 * rows);
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
