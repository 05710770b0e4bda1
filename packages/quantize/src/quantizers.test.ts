import { Rng } from '@yuan/core';
import { describe, expect, it } from 'vitest';
import { halfCeil } from './grid.js';
import { gptqKernels, gptqValues } from './gptq.js';
import { dequantizeLinear, gptqQuantizer, GPTQ_DEFAULTS, packLinear, rtnQuantizer } from './plugins.js';

const kernels = await gptqKernels();

/** Weights already on a grid: per row and group a power-of-two scale, a zero point in [1, maxq], levels 0 and maxq used. */
function onGrid(rows: number, cols: number, group: number, bits: number, rng: Rng): Float32Array {
  const maxq = 2 ** bits - 1;
  const w = new Float32Array(rows * cols);
  for (let o = 0; o < rows; o++) {
    for (let start = 0; start < cols; start += group) {
      const s = 2 ** -(3 + Math.floor(rng.next() * 6));
      const z = 1 + Math.floor(rng.next() * maxq);
      for (let i = start; i < Math.min(cols, start + group); i++) {
        const q = i === start ? 0 : i === start + 1 ? maxq : Math.floor(rng.next() * (maxq + 1));
        w[o * cols + i] = s * (q - z);
      }
    }
  }
  return w;
}

function randn(n: number, rng: Rng, std = 1): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal() * std);
}

/** ‖X·Wᵀ − X·Ŵᵀ‖² for X [n, cols]. */
function outputError(
  x: Float32Array,
  n: number,
  w: Float32Array,
  wq: Float32Array,
  rows: number,
  cols: number,
): number {
  let sum = 0;
  for (let t = 0; t < n; t++) {
    for (let o = 0; o < rows; o++) {
      let d = 0;
      for (let i = 0; i < cols; i++) d += x[t * cols + i] * (w[o * cols + i] - wq[o * cols + i]);
      sum += d * d;
    }
  }
  return sum;
}

function hessianOf(x: Float32Array, n: number, cols: number): Float64Array {
  const h = new Float64Array(cols * cols);
  for (let t = 0; t < n; t++)
    for (let i = 0; i < cols; i++)
      for (let j = 0; j < cols; j++) h[i * cols + j] += (2 / n) * x[t * cols + i] * x[t * cols + j];
  return h;
}

describe('rtn', () => {
  for (const [bits, group] of [
    [4, 32],
    [4, -1],
    [8, 128],
    [8, -1],
  ] as const) {
    it(`a weight already on the grid comes back exactly (${bits} bits, group ${group})`, async () => {
      const rows = 8;
      const cols = 256;
      const w = onGrid(rows, cols, group === -1 ? cols : group, bits, new Rng(bits * 1000 + group));
      const q = await rtnQuantizer.quantize(
        { name: 'w', weight: w, rows, cols },
        { bits, groupSize: group, sym: false },
      );
      expect(q.scales.length).toBe((group === -1 ? 1 : cols / group) * rows);
      expect([...rtnQuantizer.dequantize(q)]).toEqual([...w]);
    });
  }

  it('off the grid every weight is within one step of its group, and the symmetric grid has zero point 2^(bits−1)', async () => {
    const rows = 8;
    const cols = 64;
    const w = randn(rows * cols, new Rng(3), 0.05);
    for (const sym of [false, true]) {
      const q = await rtnQuantizer.quantize({ name: 'w', weight: w, rows, cols }, { bits: 4, groupSize: 16, sym });
      const back = dequantizeLinear(q);
      for (let o = 0; o < rows; o++)
        for (let i = 0; i < cols; i++) {
          const scale = q.scales[Math.floor(i / 16) * rows + o];
          expect(Math.abs(back[o * cols + i] - w[o * cols + i])).toBeLessThanOrEqual(sym ? scale : scale / 2 + 1e-9);
        }
      if (sym) expect([...q.qzeros]).toEqual(new Array(4).fill(0x77777777)); // 4 groups × 8 rows, each stored 8 − 1
      q.scales.forEach((s) => expect(halfCeil(s)).toBe(s)); // float16 values
    }
  });

  it('validate names unknown options and bad grids', () => {
    expect(() => rtnQuantizer.validate!({ bits: 3 })).toThrow(/quantizer rtn: bits 3; expected 4 or 8/);
    expect(() => rtnQuantizer.validate!({ groupSize: 0 })).toThrow(/groupSize 0; expected a positive integer or -1/);
    expect(() => rtnQuantizer.validate!({ damp: 0.1 })).toThrow(/quantizer rtn: unknown option "damp"/);
    expect(gptqQuantizer.validate!({ actOrder: true })).toEqual({ ...GPTQ_DEFAULTS, actOrder: true });
    expect(() => gptqQuantizer.validate!({ damp: -1 })).toThrow(/damp -1; expected a number >= 0/);
  });
});

describe('gptq', () => {
  // a random layer whose inputs are correlated (mixed from fewer sources, with unequal column scales): what GPTQ exploits
  const rows = 32;
  const cols = 128;
  const n = 512;
  const rng = new Rng(11);
  const sources = 24;
  const z = randn(n * sources, rng);
  const mix = randn(sources * cols, rng);
  const colScale = Float32Array.from({ length: cols }, () => 0.2 + 2 * rng.next());
  const x = new Float32Array(n * cols);
  for (let t = 0; t < n; t++)
    for (let i = 0; i < cols; i++) {
      let v = 0.1 * rng.normal();
      for (let k = 0; k < sources; k++) v += z[t * sources + k] * mix[k * cols + i];
      x[t * cols + i] = v * colScale[i];
    }
  const w = randn(rows * cols, rng, 0.05);
  const hessian = hessianOf(x, n, cols);
  const layer = { name: 'layer', weight: w, rows, cols, hessian };

  for (const [bits, group, actOrder] of [
    [4, 32, false],
    [4, 32, true],
    [4, -1, false],
    [4, 128, true],
    [8, 128, false],
  ] as const) {
    it(`lowers the layer's output error ‖XWᵀ − XŴᵀ‖ below RTN's at the same grid (${bits} bits, group ${group}${actOrder ? ', act-order' : ''})`, async () => {
      const grid = { bits, groupSize: group, sym: false };
      const rtn = dequantizeLinear(await rtnQuantizer.quantize(layer, grid));
      const q = await gptqQuantizer.quantize(layer, { ...GPTQ_DEFAULTS, ...grid, actOrder });
      const gptq = dequantizeLinear(q);
      const eRtn = outputError(x, n, w, rtn, rows, cols);
      const eGptq = outputError(x, n, w, gptq, rows, cols);
      expect(eGptq).toBeLessThan(0.5 * eRtn);
      if (actOrder) {
        // g_idx follows the act-order permutation: each group holds `group` columns, not in input order
        const counts = new Map<number, number>();
        q.gIdx.forEach((g) => counts.set(g, (counts.get(g) ?? 0) + 1));
        expect([...counts.values()].every((c) => c === group)).toBe(true);
      }
    });
  }

  it('with H = c·I (uncorrelated inputs of equal power) there is nothing to compensate: GPTQ equals RTN exactly', async () => {
    const eye = new Float64Array(cols * cols);
    for (let i = 0; i < cols; i++) eye[i * cols + i] = 3;
    const grid = { bits: 4, groupSize: 32, sym: false };
    const rtn = await rtnQuantizer.quantize(layer, grid);
    const gptq = await gptqQuantizer.quantize(
      { ...layer, hessian: eye },
      { ...GPTQ_DEFAULTS, ...grid, actOrder: true },
    );
    expect([...gptq.qweight]).toEqual([...rtn.qweight]);
    expect([...gptq.scales]).toEqual([...rtn.scales]);
    expect([...gptq.gIdx]).toEqual([...rtn.gIdx]);
  });

  it('needs the Hessian, and a dead input (H_ii = 0) gets weight 0', async () => {
    await expect(gptqQuantizer.quantize({ name: 'x.weight', weight: w, rows, cols }, GPTQ_DEFAULTS)).rejects.toThrow(
      /x.weight: gptq needs the Hessian/,
    );
    const dead = Float64Array.from(hessian);
    for (let j = 0; j < cols; j++) dead[5 * cols + j] = dead[j * cols + 5] = 0;
    const back = dequantizeLinear(await gptqQuantizer.quantize({ ...layer, hessian: dead }, GPTQ_DEFAULTS));
    for (let o = 0; o < rows; o++) expect(Math.abs(back[o * cols + 5])).toBeLessThan(1e-3);
  });
});

/**
 * GPTQ written the plain way (Frantar et al., eq. 2–3, as in OBQ): H⁻¹ by Gauss–Jordan; for each column q in order,
 * round it, spread its error over the later columns with row q of H⁻¹, and remove q from H⁻¹ (one Gaussian elimination
 * step). No Cholesky, no blocks. Grid: per row, the group's current min/max, as GPTQ takes it.
 */
function plainGptq(
  w: Float32Array,
  rows: number,
  cols: number,
  h: Float64Array,
  bits: number,
  group: number,
  damp: number,
): Float32Array {
  const maxq = 2 ** bits - 1;
  const a = Float64Array.from(h);
  let mean = 0;
  for (let i = 0; i < cols; i++) mean += a[i * cols + i] / cols;
  for (let i = 0; i < cols; i++) a[i * cols + i] += damp * mean;
  // Gauss–Jordan inverse
  const inv = new Float64Array(cols * cols);
  for (let i = 0; i < cols; i++) inv[i * cols + i] = 1;
  for (let p = 0; p < cols; p++) {
    const d = a[p * cols + p];
    for (let j = 0; j < cols; j++) {
      a[p * cols + j] /= d;
      inv[p * cols + j] /= d;
    }
    for (let i = 0; i < cols; i++) {
      if (i === p) continue;
      const f = a[i * cols + p];
      for (let j = 0; j < cols; j++) {
        a[i * cols + j] -= f * a[p * cols + j];
        inv[i * cols + j] -= f * inv[p * cols + j];
      }
    }
  }
  const wk = Float64Array.from(w);
  const out = new Float32Array(rows * cols);
  const scale = new Float64Array(rows);
  const zero = new Float64Array(rows);
  for (let q = 0; q < cols; q++) {
    if (q % group === 0) {
      for (let r = 0; r < rows; r++) {
        let lo = 0;
        let hi = 0;
        for (let c = q; c < q + group; c++) {
          lo = Math.min(lo, wk[r * cols + c]);
          hi = Math.max(hi, wk[r * cols + c]);
        }
        scale[r] = halfCeil((hi - lo) / maxq);
        zero[r] = Math.round(-lo / scale[r]);
        if (zero[r] < 1) [scale[r], zero[r]] = [halfCeil(hi / (maxq - 1)), 1];
      }
    }
    const d = inv[q * cols + q];
    for (let r = 0; r < rows; r++) {
      const v = wk[r * cols + q];
      const level = Math.min(maxq, Math.max(0, Math.round(v / scale[r]) + zero[r]));
      const back = scale[r] * (level - zero[r]);
      out[r * cols + q] = back;
      const e = (v - back) / d;
      for (let c = q + 1; c < cols; c++) wk[r * cols + c] -= e * inv[q * cols + c];
    }
    // remove q: H⁻¹ ← H⁻¹ − H⁻¹[:, q]·H⁻¹[q, :] / H⁻¹[q, q]
    for (let i = q + 1; i < cols; i++) {
      const f = inv[i * cols + q] / d;
      for (let j = q + 1; j < cols; j++) inv[i * cols + j] -= f * inv[q * cols + j];
    }
  }
  return out;
}

describe('gptq against a plain reference', () => {
  const rows = 16;
  const cols = 64;
  const n = 256;
  const rng = new Rng(23);
  const x = new Float32Array(n * cols);
  const base = randn(n * 8, rng);
  for (let t = 0; t < n; t++)
    for (let i = 0; i < cols; i++) x[t * cols + i] = base[t * 8 + (i % 8)] * (1 + (i % 5)) + 0.3 * rng.normal();
  const w = randn(rows * cols, rng, 0.05);
  const hessian = hessianOf(x, n, cols);

  for (const [bits, group, blockSize] of [
    [4, 16, 128],
    [4, 16, 32],
    [8, 32, 16],
  ] as const) {
    for (const path of ['plain loops', 'native BLAS'] as const) {
      it.skipIf(path === 'native BLAS' && !kernels)(
        `the blocked Cholesky form gives the plain algorithm's weights (${bits} bits, group ${group}, blocks of ${blockSize}; ${path})`,
        () => {
          const want = plainGptq(w, rows, cols, hessian, bits, group, 0.01);
          const options = { ...GPTQ_DEFAULTS, bits, groupSize: group, blockSize };
          const v = gptqValues(w, rows, cols, hessian, options, 'layer', path === 'native BLAS' ? kernels : undefined);
          const got = dequantizeLinear(packLinear(v, rows, cols, options));
          // the same levels up to float rounding: allow a rare level flip at a rounding tie, nothing more
          let differ = 0;
          for (let i = 0; i < rows * cols; i++) if (Math.abs(got[i] - want[i]) > 1e-6) differ++;
          expect(differ).toBeLessThanOrEqual(2);
        },
      );
    }
  }
});
