import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { native, values } from './test-util.js';
import { tf } from './tf.js';
import { weightKernels } from './weights.js';

// The weight-format kernels against references computed here: weights packed by hand in the GPTQ layout, dequantized
// in JS, multiplied with tfjs's matMul on the cpu backend.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function toBf16(v: number): number {
  f32[0] = v;
  const x = u32[0];
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}
function fromBf16(b: number): number {
  u32[0] = b << 16;
  return f32[0];
}
function toHalf(v: number): number {
  // exact for the scales used here (powers of two times small integers)
  if (v === 0) return 0;
  const sign = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  const e = Math.floor(Math.log2(a));
  const m = Math.round((a / 2 ** e - 1) * 1024);
  return sign | ((e + 15) << 10) | m;
}
function fromHalf(h: number): number {
  const e = (h >> 10) & 31;
  const m = h & 1023;
  const v = e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15);
  return h & 0x8000 ? -v : v;
}

/** A GPTQ weight built from explicit codes q [in][out], zeros z [groups][out] (as stored) and scales s [groups][out]. */
interface Hand {
  bits: number;
  group: number;
  inF: number;
  out: number;
  q: number[][];
  z: number[][];
  s: number[][];
}

function pack(h: Hand): { qweight: Int32Array; qzeros: Int32Array; scales: Uint16Array } {
  const per = 32 / h.bits;
  const groups = Math.ceil(h.inF / h.group);
  const qweight = new Int32Array((h.inF / per) * h.out);
  for (let k = 0; k < h.inF; k++)
    for (let c = 0; c < h.out; c++) qweight[Math.floor(k / per) * h.out + c] |= h.q[k][c] << (h.bits * (k % per));
  const words = Math.ceil((h.out * h.bits) / 32);
  const qzeros = new Int32Array(groups * words);
  for (let g = 0; g < groups; g++)
    for (let c = 0; c < h.out; c++) qzeros[g * words + Math.floor(c / per)] |= h.z[g][c] << (h.bits * (c % per));
  const scales = new Uint16Array(groups * h.out);
  for (let g = 0; g < groups; g++) for (let c = 0; c < h.out; c++) scales[g * h.out + c] = toHalf(h.s[g][c]);
  return { qweight, qzeros, scales };
}

/** Dequantized W as [in, out] from the hand-made codes. */
function dequant(h: Hand, offset: number): Float32Array {
  const w = new Float32Array(h.inF * h.out);
  for (let k = 0; k < h.inF; k++) {
    const g = Math.floor(k / h.group);
    for (let c = 0; c < h.out; c++)
      w[k * h.out + c] = Math.fround((h.q[k][c] - (h.z[g][c] + offset)) * fromHalf(toHalf(h.s[g][c])));
  }
  return w;
}

function randomHand(bits: number, group: number, inF: number, out: number, seed: number): Hand {
  const groups = Math.ceil(inF / group);
  const r = values(inF * out + 2 * groups * out, seed);
  let i = 0;
  const top = 2 ** bits;
  const next = () => (r[i++] + 1) / 2;
  const q = Array.from({ length: inF }, () =>
    Array.from({ length: out }, () => Math.min(top - 1, Math.floor(next() * top))),
  );
  const z = Array.from({ length: groups }, () =>
    Array.from({ length: out }, () => Math.min(top - 2, Math.floor(next() * (top - 1)))),
  );
  const s = Array.from({ length: groups }, () => Array.from({ length: out }, () => (1 + Math.floor(next() * 15)) / 64));
  return { bits, group, inF, out, q, z, s };
}

/** x [n, in] · w [in, out] by tfjs on the cpu backend. */
function reference(x: Float32Array, n: number, w: Float32Array, inF: number, out: number): Float32Array {
  void tf.setBackend('cpu');
  return tf.tidy(() => tf.matMul(tf.tensor2d(x, [n, inF]), tf.tensor2d(w, [inF, out])).dataSync() as Float32Array);
}

/**
 * The activations as the register kernels quantize them (chunks of ≤ 32 inputs for 4-bit weights and ≤ 16 for 8-bit,
 * inside a group; scale max|x|/top).
 */
function quantizedX(
  x: Float32Array,
  n: number,
  inF: number,
  group: number,
  bits: number,
): { xq: Float32Array; dx: Float32Array } {
  const top = bits === 4 ? 127 : 32767;
  const size = bits === 4 ? 32 : 16;
  const xq = new Float32Array(x.length);
  const dx = new Float32Array(x.length);
  for (let r = 0; r < n; r++) {
    for (let g0 = 0; g0 < inF; g0 += group) {
      for (let c0 = g0; c0 < Math.min(inF, g0 + group); c0 += size) {
        const c1 = Math.min(inF, g0 + group, c0 + size);
        let m = 0;
        for (let k = c0; k < c1; k++) m = Math.max(m, Math.abs(x[r * inF + k]));
        const d = Math.fround(m / top);
        const inv = m > 0 ? Math.fround(top / m) : 0;
        for (let k = c0; k < c1; k++) {
          const v = Math.fround(x[r * inF + k] * inv);
          let c = Math.round(v);
          if (Math.abs(v - Math.trunc(v)) === 0.5 && c % 2 !== 0) c -= 1; // half to even
          xq[r * inF + k] = c * d;
          dx[r * inF + k] = d;
        }
      }
    }
  }
  return { xq, dx };
}

function expectNear(actual: Float32Array, expected: Float32Array, tol: Float32Array | number, what: string): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    const t = typeof tol === 'number' ? tol : tol[i];
    if (!(Math.abs(actual[i] - expected[i]) <= t))
      throw new Error(`${what}: element ${i} is ${actual[i]}, expected ${expected[i]} ± ${t}`);
  }
}

describe.skipIf(!native.info)('weight-format kernels', () => {
  const k = native.info ? weightKernels() : undefined!;

  it('unpacks a hand-made 4-bit and 8-bit GPTQ weight (nibble and byte order, zero offset, group of each row)', () => {
    // q[k][c] = (k + 3c) mod 16 over 16 inputs × 8 outputs, group 8: zeros stored 7 (group 0) and 3 (group 1),
    // scales 0.5 and 0.25 → W[k][c] = (q − (z + 1))·s with AutoGPTQ's offset of 1.
    const h: Hand = {
      bits: 4,
      group: 8,
      inF: 16,
      out: 8,
      q: Array.from({ length: 16 }, (_, r) => Array.from({ length: 8 }, (_, c) => (r + 3 * c) % 16)),
      z: [Array(8).fill(7), Array(8).fill(3)],
      s: [Array(8).fill(0.5), Array(8).fill(0.25)],
    };
    const p = pack(h);
    // column 0 of packed row 0 holds q[0..7][0] = 0..7, lowest nibble first
    expect(p.qweight[0]).toBe(0x76543210);
    // zeros of 8 columns in one word
    expect(p.qzeros[0]).toBe(0x77777777);
    const wt = new Float32Array(16 * 8);
    k.dequantGptq(p.qweight, p.qzeros, p.scales, null, 4, 8, 16, 8, 1, 0, 8, wt);
    expect(wt[0 * 8 + 0]).toBe((0 - 8) * 0.5);
    expect(wt[5 * 8 + 2]).toBe((11 - 8) * 0.5);
    expect(wt[9 * 8 + 1]).toBe((12 - 4) * 0.25);
    expect(Array.from(wt)).toEqual(Array.from(dequant(h, 1)));
    const v2 = new Float32Array(16 * 3);
    k.dequantGptq(p.qweight, p.qzeros, p.scales, null, 4, 8, 16, 8, 0, 2, 5, v2);
    expect(v2[9 * 3 + 0]).toBe((((9 + 6) % 16) - 3) * 0.25);

    const h8: Hand = {
      ...h,
      bits: 8,
      q: h.q.map((row, r) => row.map((v, c) => (v * 16 + r + c) % 256)),
      z: [Array(8).fill(127), Array(8).fill(120)],
    };
    const p8 = pack(h8);
    expect(p8.qweight[0] >>> 0).toBe(((h8.q[3][0] << 24) | (h8.q[2][0] << 16) | (h8.q[1][0] << 8) | h8.q[0][0]) >>> 0);
    const w8 = new Float32Array(16 * 8);
    k.dequantGptq(p8.qweight, p8.qzeros, p8.scales, null, 8, 8, 16, 8, 1, 0, 8, w8);
    expect(w8[13 * 8 + 6]).toBe((h8.q[13][6] - 121) * 0.25);
    expect(Array.from(w8)).toEqual(Array.from(dequant(h8, 1)));
  });

  const dense: [number, number, number][] = [
    [1, 1, 1],
    [1, 7, 5],
    [3, 33, 17],
    [4, 16, 32],
    [5, 9, 31],
    [2, 3, 64],
    [1, 64, 1000],
    [17, 20, 40],
    [20, 70, 33],
    [33, 20, 40], // from 32 rows: BLAS
    [6, 37, 80], // the fp32 small-batch kernel: 4 + 2 rows, an odd row tail
    [40, 70, 300], // input gradients: fp32 blocks of 256 and 44 inputs on 2 threads
    [33, 24, 1100], // input gradients: bf16 tiles of 512, 512 and 76 inputs
  ];
  it.each(dense)('fp32 and bf16 linear, n %i, out %i, in %i', (n, out, inF) => {
    const x = values(n * inF, 1);
    const wf = values(out * inF, 2);
    const bits = new Uint16Array(wf.length);
    for (let i = 0; i < wf.length; i++) bits[i] = toBf16(wf[i]);
    const wb = Float32Array.from(bits, fromBf16);
    const t = (w: Float32Array) => {
      const m = new Float32Array(inF * out);
      for (let o = 0; o < out; o++) for (let i = 0; i < inF; i++) m[i * out + o] = w[o * inF + i];
      return m;
    };
    const tol = 1e-5 * inF;
    const y = new Float32Array(n * out);
    k.linearF32(x, n, wf, out, inF, y);
    expectNear(y, reference(x, n, t(wf), inF, out), tol, 'fp32');
    k.linearBf16(x, n, bits, out, inF, y);
    expectNear(y, reference(x, n, t(wb), inF, out), tol, 'bf16');
    // input gradients: dx [n, in] = dy [n, out] · w
    const dy = values(n * out, 3);
    const dx = new Float32Array(n * inF);
    const gtol = 1e-5 * out;
    k.linearF32GradInput(dy, n, wf, out, inF, dx);
    expectNear(dx, reference(dy, n, wf, out, inF), gtol, 'fp32 input gradient');
    dx.fill(NaN);
    k.linearBf16GradInput(dy, n, bits, out, inF, dx);
    expectNear(dx, reference(dy, n, wb, out, inF), gtol, 'bf16 input gradient');
    const back = new Float32Array(bits.length);
    k.bf16ToF32(bits, back);
    expect(back).toEqual(wb);
    const again = new Uint16Array(bits.length);
    k.f32ToBf16(wf, again);
    expect(again).toEqual(bits);
  });

  // bits, group, in, out, n, act-order permutation, zero offset
  const gptq: [number, number, number, number, number, boolean, number][] = [
    [4, 32, 64, 8, 1, false, 1],
    [4, 32, 72, 13, 1, false, 1], // a partial last group, and 5 tail columns
    [4, 16, 48, 24, 3, true, 0],
    [4, 64, 256, 40, 5, false, 1],
    [4, 256, 256, 16, 2, false, 1], // one group (per channel), chunks of 32
    [4, 8, 40, 9, 4, false, 1],
    [8, 32, 64, 8, 1, false, 1],
    [8, 4, 36, 11, 2, true, 1],
    [8, 128, 200, 17, 4, false, 0], // partial group of 72 rows
    [8, 512, 512, 8, 1, false, 1], // per channel
    [4, 32, 96, 20, 15, true, 1], // 15 rows: 3 register passes and a tail of 3
    [4, 32, 96, 20, 17, true, 1], // 17 rows: the register path, 4 blocks of 4 rows and one row
    [8, 32, 64, 70, 20, false, 1],
    [4, 40, 120, 27, 31, false, 1], // 31 rows, the last register size; chunks of 32 and 8 inputs, 3 tail columns
    [8, 40, 120, 27, 31, true, 0], // the same in 8 bits: chunks of 16 and 8 inputs (4 and 2 packed rows)
    [4, 32, 96, 20, 32, true, 1], // from 32 rows: the dequantize-and-BLAS path
    [8, 32, 64, 70, 40, false, 1],
    [4, 128, 512, 300, 1, false, 1], // a stripe of 37 vectors and 4 tail columns
    [8, 64, 256, 203, 6, false, 0], // 4 + 2 rows, 3 tail columns
    [4, 32, 128, 8200, 2, false, 1], // several stripes (and one chunk's prefetch past the last row)
    [8, 128, 256, 4104, 3, true, 1],
    [8, 1024, 8192, 264, 33, true, 1], // the prompt path's tiles of 256 columns: one full, one of 8
  ];
  it.each(gptq)(
    'GPTQ %i-bit, group %i, in %i, out %i, n %i, act-order %s, zero offset %i',
    (bits, group, inF, out, n, act, offset) => {
      const h = randomHand(bits, group, inF, out, bits * 1000 + inF + out);
      const p = pack(h);
      const x = values(n * inF, 5);
      let perm: Int32Array | null = null;
      let xs = x;
      if (act) {
        // packed row k reads input perm[k]: the reference multiplies the permuted activations
        perm = Int32Array.from({ length: inF }, (_, i) => (i * 7 + 3) % inF);
        expect(new Set(perm).size).toBe(inF);
        xs = new Float32Array(x.length);
        for (let r = 0; r < n; r++) for (let i = 0; i < inF; i++) xs[r * inF + i] = x[r * inF + perm[i]];
      }
      const w = dequant(h, offset);
      const y = new Float32Array(n * out);
      k.linearGptq(x, n, p.qweight, p.qzeros, p.scales, perm, bits, group, inF, out, offset, y);
      const exact = reference(xs, n, w, inF, out);
      const absW = w.map(Math.abs);
      if (n >= 32) {
        const scale = reference(xs.map(Math.abs), n, absW, inF, out);
        expectNear(
          y,
          exact,
          scale.map((v) => 1e-5 * v + 1e-6),
          'dequantized product',
        );
        return;
      }
      // register path: exactly W · x̂ (up to fp32 rounding), and within Σ|w|·dx/2 of W · x
      const { xq, dx } = quantizedX(xs, n, inF, group, bits);
      const onQuantized = reference(xq, n, w, inF, out);
      const size = reference(xq.map(Math.abs), n, absW, inF, out);
      expectNear(
        y,
        onQuantized,
        size.map((v) => 2e-6 * v + 1e-6),
        'product with the quantized activations',
      );
      const bound = reference(
        dx.map((d) => d / 2),
        n,
        absW,
        inF,
        out,
      );
      expectNear(
        y,
        exact,
        bound.map((b, i) => b * 1.001 + 2e-6 * size[i] + 1e-6),
        'error bound of activation quantization',
      );
    },
  );

  // bits, group, in, out, n, act-order permutation, zero offset: tiles of 512 inputs with a partial last tile (in 520,
  // 1100), partial groups, groups that end inside a tile, column tails (out not a multiple of 8), 2 threads
  const gradShapes: [number, number, number, number, number, boolean, number][] = [
    [4, 32, 72, 13, 1, false, 1],
    [4, 16, 48, 24, 3, true, 0],
    [8, 4, 36, 11, 2, true, 1],
    [8, 128, 200, 17, 40, false, 0],
    [4, 40, 120, 27, 31, true, 1],
    [4, 128, 520, 300, 40, true, 1],
    [8, 64, 264, 2056, 33, true, 1],
    [4, 96, 392, 1003, 7, false, 0],
    [8, 96, 1100, 24, 5, true, 1],
  ];
  it.each(gradShapes)(
    'GPTQ %i-bit input gradient, group %i, in %i, out %i, n %i, act-order %s, zero offset %i: dy · W',
    (bits, group, inF, out, n, act, offset) => {
      const h = randomHand(bits, group, inF, out, bits * 100 + inF + out);
      const p = pack(h);
      const dy = values(n * out, 6);
      // W [out, in] from the codes ([in, out] transposed); with act-order packed row k is input perm[k]
      const w = dequant(h, offset);
      const perm = act ? Int32Array.from({ length: inF }, (_, i) => (i * 7 + 3) % inF) : null;
      if (perm) expect(new Set(perm).size).toBe(inF);
      const wOut = new Float32Array(out * inF);
      const absOut = new Float32Array(out * inF);
      for (let k0 = 0; k0 < inF; k0++)
        for (let c = 0; c < out; c++) {
          wOut[c * inF + (perm ? perm[k0] : k0)] = w[k0 * out + c];
          absOut[c * inF + (perm ? perm[k0] : k0)] = Math.abs(w[k0 * out + c]);
        }
      const dx = new Float32Array(n * inF).fill(NaN);
      k.linearGptqGradInput(dy, n, p.qweight, p.qzeros, p.scales, perm, bits, group, inF, out, offset, dx);
      const scale = reference(dy.map(Math.abs), n, absOut, out, inF);
      expectNear(
        dx,
        reference(dy, n, wOut, out, inF),
        scale.map((v) => 1e-5 * v + 1e-6),
        'input gradient',
      );
    },
  );

  // bits, group, in, out: partial groups, chunks of fewer than 32 inputs, column tails, several stripes; full groups
  // with an odd number of column vectors (the one-row kernel's two-vector loop and its tail)
  const rowShapes: [number, number, number, number][] = [
    [4, 128, 1024, 1000],
    [8, 128, 1024, 1000],
    [4, 32, 200, 4104],
    [8, 64, 264, 2056],
    [4, 32, 72, 13],
    [4, 64, 64, 64],
    [4, 8, 40, 45],
    [4, 48, 136, 203],
    [8, 4, 36, 11],
    [8, 40, 120, 83],
    [8, 128, 256, 2056],
  ];
  // the fp32 and bf16 register paths: 1, 2, 3 and 4 rows per block, 4 output rows per block and a tail of outputs,
  // inputs in vectors of 16 and a scalar tail (150 = 9·16 + 6), or none (128)
  it.each([
    [150, 37],
    [128, 64],
    [16, 5],
  ])('fp32 and bf16, in %i, out %i: each of n = 1..31 rows gets bit for bit its result alone', (inF, out) => {
    const x = values(31 * inF, 4);
    const wf = values(out * inF, 5);
    const wb = Uint16Array.from(wf, toBf16);
    const products = [
      ['fp32', (xs: Float32Array, n: number, y: Float32Array) => k.linearF32(xs, n, wf, out, inF, y)],
      ['bf16', (xs: Float32Array, n: number, y: Float32Array) => k.linearBf16(xs, n, wb, out, inF, y)],
    ] as const;
    for (const [name, product] of products) {
      const alone = new Float32Array(31 * out);
      for (let r = 0; r < 31; r++)
        product(x.subarray(r * inF, (r + 1) * inF), 1, alone.subarray(r * out, (r + 1) * out));
      for (let n = 2; n <= 31; n++) {
        const y = new Float32Array(n * out);
        product(x.subarray(0, n * inF), n, y);
        const got = new Uint32Array(y.buffer);
        const want = new Uint32Array(alone.buffer, 0, n * out);
        const bad = got.findIndex((b, i) => b !== want[i]);
        expect(bad, `${name}, n ${n}: first row·column differing from the row alone`).toBe(-1);
      }
    }
  });

  it.each(rowShapes)(
    'GPTQ %i-bit, group %i, in %i, out %i: each of n = 1..31 rows gets bit for bit its result alone',
    (bits, group, inF, out) => {
      const p = pack(randomHand(bits, group, inF, out, 7 * bits + inF + out));
      const x = values(31 * inF, 9);
      const alone = new Float32Array(31 * out);
      for (let r = 0; r < 31; r++) {
        k.linearGptq(
          x.subarray(r * inF, (r + 1) * inF),
          1,
          p.qweight,
          p.qzeros,
          p.scales,
          null,
          bits,
          group,
          inF,
          out,
          1,
          alone.subarray(r * out, (r + 1) * out),
        );
      }
      const w = dequant(randomHand(bits, group, inF, out, 7 * bits + inF + out), 1);
      for (let n = 2; n <= 31; n++) {
        const y = new Float32Array(n * out);
        k.linearGptq(x.subarray(0, n * inF), n, p.qweight, p.qzeros, p.scales, null, bits, group, inF, out, 1, y);
        // bit patterns compared as words (toEqual is slow on long typed arrays)
        const got = new Uint32Array(y.buffer);
        const want = new Uint32Array(alone.buffer, 0, n * out);
        const bad = got.findIndex((b, i) => b !== want[i]);
        expect(bad, `n ${n}: first row·column differing from the row alone`).toBe(-1);
        if (n <= 20 && inF * out < 50000) {
          // and the product itself: within the activation quantization's bound of the exact one
          const xs = x.subarray(0, n * inF);
          const { dx } = quantizedX(xs, n, inF, group, bits);
          const absW = w.map(Math.abs);
          const bound = reference(
            dx.map((d) => d / 2),
            n,
            absW,
            inF,
            out,
          );
          const size = reference(xs.map(Math.abs), n, absW, inF, out);
          expectNear(
            y,
            reference(xs, n, w, inF, out),
            bound.map((b, i) => b * 1.001 + 4e-6 * size[i] + 1e-6),
            `n ${n}`,
          );
        }
      }
    },
  );

  it('rejects a misshapen GPTQ weight with a one-line error naming the argument', () => {
    const x = new Float32Array(64);
    const y = new Float32Array(8);
    const q = new Int32Array(8 * 8);
    const z = new Int32Array(2);
    const s = new Uint16Array(16);
    expect(() => k.linearGptq(x, 1, q, z, s, null, 4, 32, 64, 8, 1, y)).not.toThrow();
    expect(() => k.linearGptq(x, 1, q.subarray(1), z, s, null, 4, 32, 64, 8, 1, y)).toThrow(
      'linearGptq: qweight must be [in·bits/32, out]',
    );
    expect(() => k.linearGptq(x, 1, q, z, s, null, 3, 32, 64, 8, 1, y)).toThrow('linearGptq: bits must be 4 or 8');
    expect(() => k.linearGptq(x, 1, q, z, s, new Int32Array(64).fill(64), 4, 32, 64, 8, 1, y)).toThrow(
      'perm has an index outside',
    );
    expect(() => k.linearGptqGradInput(y, 1, q, z, s, null, 4, 32, 64, 8, 1, x.subarray(1))).toThrow(
      'linearGptqGradInput: dy [n, out] and dx [n, in] do not match',
    );
    expect(() => k.linearBf16GradInput(y, 1, new Uint16Array(7), 8, 8, x)).toThrow(
      'linearBf16GradInput: dy [n, out], w [out, in] and dx [n, in] do not match',
    );
    expect(() => k.linearBf16(x, 1, new Uint16Array(7), 8, 8, y)).toThrow(
      'linearBf16: x [n, in], w [out, in] and y [n, out] do not match',
    );
  });

  it('rope rotates each head like the rotate-half formula', () => {
    const n = 3,
      heads = 2,
      d = 8,
      stride = 20;
    const x = values(n * stride, 9);
    const pos = Int32Array.from([0, 5, 1000]);
    const y = x.slice();
    k.rope(y, n, stride, heads, d, pos, 10000);
    for (let r = 0; r < n; r++) {
      for (let h = 0; h < heads; h++) {
        for (let i = 0; i < d / 2; i++) {
          const a = Math.fround(pos[r] * Math.fround(1 / 10000 ** ((2 * i) / d)));
          const [c, s] = [Math.cos(a), Math.sin(a)];
          const o = r * stride + h * d;
          expect(y[o + i]).toBeCloseTo(x[o + i] * c - x[o + i + d / 2] * s, 5);
          expect(y[o + i + d / 2]).toBeCloseTo(x[o + i + d / 2] * c + x[o + i] * s, 5);
        }
      }
      for (let j = heads * d; j < stride; j++) expect(y[r * stride + j]).toBe(x[r * stride + j]);
    }
  });

  // heads, d, start, n, kvStride: d = 4 takes the scalar scores; d = 32 and 64 the AVX2 path (8 positions per step and
  // a tail of seen mod 8 one by one: 13 + 1..3 and 21 + 1 positions)
  it.each([
    [3, 4, 5, 2, 14],
    [2, 32, 13, 3, 70],
    [1, 64, 21, 1, 64],
  ])(
    'attend is causal softmax attention over the cache, per head (heads %i, d %i, start %i, n %i)',
    (heads, d, start, n, kvs) => {
      const q = values(n * heads * d, 1).map((v) => v * 3);
      const kk = values((start + n) * kvs, 2);
      const vv = values((start + n) * kvs, 3);
      const out = new Float32Array(n * heads * d);
      k.attend(q, n, heads * d, kk, vv, kvs, start, heads, d, out);
      for (let i = 0; i < n; i++) {
        for (let h = 0; h < heads; h++) {
          const seen = start + i + 1;
          const sc = Array.from({ length: seen }, (_, j) => {
            let s = 0;
            for (let t = 0; t < d; t++) s += q[i * heads * d + h * d + t] * kk[j * kvs + h * d + t];
            return s / Math.sqrt(d);
          });
          const m = Math.max(...sc);
          const e = sc.map((s) => Math.exp(s - m));
          const sum = e.reduce((a, b) => a + b, 0);
          for (let t = 0; t < d; t++) {
            let o = 0;
            for (let j = 0; j < seen; j++) o += (e[j] / sum) * vv[j * kvs + h * d + t];
            expect(out[i * heads * d + h * d + t]).toBeCloseTo(o, 5);
          }
        }
      }
    },
  );

  // The pair products against the two single products they replace: bit for bit (compared as raw bits), every format,
  // widths that are not multiples of 8 or 16 (column tails), 1, 2 and 5 rows (register blocks of 1, 2 and 4 + 1) and 33
  // (the prompt paths), on 1 and 2 threads (the last shape's wider product is above the 2^21 multiply-adds from which 2 threads run).
  describe('pair products: bit for bit the two single products', () => {
    const bitsOf = (y: Float32Array) => new Uint32Array(y.buffer, y.byteOffset, y.length);
    /** Random packed GPTQ parts of [out, in] (any codes and zero points, scales (1..15)/64). */
    const packed = (bits: number, group: number, inF: number, out: number, seed: number) => {
      const per = 32 / bits;
      const groups = Math.ceil(inF / group);
      const qweight = new Int32Array((inF / per) * out);
      k.randomWords(qweight, seed);
      const qzeros = new Int32Array(groups * Math.ceil((out * bits) / 32));
      k.randomWords(qzeros, seed + 1);
      const r = values(groups * out, seed + 2);
      const scales = Uint16Array.from(r, (v) => toHalf((1 + Math.floor(((v + 1) / 2) * 15)) / 64));
      return { qweight, qzeros, scales };
    };
    // in, outA, outB
    const shapes: [number, number, number][] = [
      [64, 13, 24],
      [96, 40, 9],
      [160, 203, 77],
      [1024, 2056, 1100],
    ];
    const cases = [1, 2].flatMap((threads) =>
      shapes.flatMap(([inF, outA, outB]) => [1, 2, 5, 33].map((n) => [threads, inF, outA, outB, n] as const)),
    );
    const threadsBefore = k.setDecodeThreads(2);

    it.each(cases)('fp32 and bf16, %i threads, in %i, outs %i and %i, n %i', (threads, inF, outA, outB, n) => {
      k.setDecodeThreads(threads);
      const x = values(n * inF, 11);
      const wa = values(outA * inF, 12);
      const wb = values(outB * inF, 13);
      const ya = new Float32Array(n * outA);
      const yb = new Float32Array(n * outB);
      const ra = new Float32Array(n * outA);
      const rb = new Float32Array(n * outB);
      k.linearF32(x, n, wa, outA, inF, ra);
      k.linearF32(x, n, wb, outB, inF, rb);
      k.linearF32Pair(x, n, wa, outA, wb, outB, inF, ya, yb);
      expect(bitsOf(ya)).toEqual(bitsOf(ra));
      expect(bitsOf(yb)).toEqual(bitsOf(rb));
      const ba = Uint16Array.from(wa, toBf16);
      const bb = Uint16Array.from(wb, toBf16);
      k.linearBf16(x, n, ba, outA, inF, ra);
      k.linearBf16(x, n, bb, outB, inF, rb);
      ya.fill(NaN);
      yb.fill(NaN);
      k.linearBf16Pair(x, n, ba, outA, bb, outB, inF, ya, yb);
      expect(bitsOf(ya)).toEqual(bitsOf(ra));
      expect(bitsOf(yb)).toEqual(bitsOf(rb));
      k.setDecodeThreads(threadsBefore);
    });

    // the second weight: the same activations (bits, group, permutation), or not (another group, another permutation,
    // one permutation against none, another width)
    const variants = ['same', 'group', 'perm', 'one perm', '8 and 4 bits'] as const;
    it.each(cases.flatMap((c) => [4, 8].map((bits) => [...c, bits] as const)))(
      'GPTQ, %i threads, in %i, outs %i and %i, n %i, %i-bit: every variant of the second weight',
      (threads, inF, outA, outB, n, bits) => {
        k.setDecodeThreads(threads);
        const x = values(n * inF, 21);
        const permOf = (step: number) => Int32Array.from({ length: inF }, (_, i) => (i * step + 3) % inF);
        for (const variant of variants) {
          const bitsB = variant === '8 and 4 bits' ? 12 - bits : bits;
          const groupA = 32;
          const groupB = variant === 'group' ? 16 : groupA;
          const permA = variant === 'one perm' || variant === 'perm' ? permOf(7) : null;
          const permB = variant === 'perm' ? permOf(5) : null;
          const a = packed(bits, groupA, inF, outA, 31);
          const b = packed(bitsB, groupB, inF, outB, 41);
          const ra = new Float32Array(n * outA);
          const rb = new Float32Array(n * outB);
          k.linearGptq(x, n, a.qweight, a.qzeros, a.scales, permA, bits, groupA, inF, outA, 1, ra);
          k.linearGptq(x, n, b.qweight, b.qzeros, b.scales, permB, bitsB, groupB, inF, outB, 0, rb);
          const ya = new Float32Array(n * outA).fill(NaN);
          const yb = new Float32Array(n * outB).fill(NaN);
          k.linearGptqPair(
            x,
            n,
            a.qweight,
            a.qzeros,
            a.scales,
            permA,
            bits,
            groupA,
            inF,
            outA,
            1,
            b.qweight,
            b.qzeros,
            b.scales,
            permB,
            bitsB,
            groupB,
            inF,
            outB,
            0,
            ya,
            yb,
          );
          expect(bitsOf(ya), variant).toEqual(bitsOf(ra));
          expect(bitsOf(yb), variant).toEqual(bitsOf(rb));
        }
        k.setDecodeThreads(threadsBefore);
      },
    );

    it('rejects mismatched pairs with one-line errors naming what was wrong', () => {
      const x = new Float32Array(64);
      const w = new Float32Array(8 * 64);
      const y = new Float32Array(8);
      expect(() => k.linearF32Pair(x, 1, w, 8, w, 8, 64, y, y)).not.toThrow();
      expect(() => k.linearF32Pair(x, 1, w, 8, w.subarray(1), 8, 64, y, y)).toThrow(
        'linearF32Pair: x [n, in], wa [outA, in] and wb [outB, in] do not match',
      );
      expect(() =>
        k.linearBf16Pair(x, 1, new Uint16Array(512), 8, new Uint16Array(512), 8, 64, y, y.subarray(1)),
      ).toThrow('linearBf16Pair: ya [n, outA] and yb [n, outB] do not match');
      const q = packed(4, 32, 64, 8, 1);
      const q2 = packed(4, 32, 32, 8, 1);
      expect(() =>
        k.linearGptqPair(
          x,
          1,
          q.qweight,
          q.qzeros,
          q.scales,
          null,
          4,
          32,
          64,
          8,
          1,
          q2.qweight,
          q2.qzeros,
          q2.scales,
          null,
          4,
          32,
          32,
          8,
          1,
          y,
          y,
        ),
      ).toThrow('linearGptqPair: the two weights differ in input width');
    });
  });

  describe('attendRows: each row over its own cache, bit for bit attend per sequence', () => {
    /**
     * Caches of the given lengths ([len, kvStride] keys and values) and rows attending them: `runs` [cache, m] puts m
     * rows on a cache (its last m positions, as a prompt's rows); rows of one cache may also be apart.
     */
    const check = (
      heads: number,
      d: number,
      kvs: number,
      lengths: number[],
      runs: [number, number][],
      threads: number,
    ) => {
      const before = k.setDecodeThreads(threads);
      const ks = lengths.map((len, c) => values(len * kvs, 100 + c));
      const vs = lengths.map((len, c) => values(len * kvs, 200 + c));
      const rows = runs.flatMap(([c, m]) => Array.from({ length: m }, (_, j) => ({ c, j, m })));
      const n = rows.length;
      const qs = heads * d + 3;
      const q = values(n * qs, 7).map((v) => v * 2);
      const cache = Int32Array.from(rows, (r) => r.c);
      const seen = Int32Array.from(rows, (r) => lengths[r.c] - r.m + r.j + 1);
      const out = new Float32Array(n * heads * d);
      k.attendRows(q, n, qs, ks, vs, cache, seen, kvs, heads, d, out);
      // each run alone through attend
      let r0 = 0;
      for (const [c, m] of runs) {
        const alone = new Float32Array(m * heads * d);
        k.attend(q.subarray(r0 * qs), m, qs, ks[c], vs[c], kvs, lengths[c] - m, heads, d, alone);
        const got = out.subarray(r0 * heads * d, (r0 + m) * heads * d);
        expect(new Uint32Array(got.slice().buffer)).toEqual(new Uint32Array(alone.buffer));
        r0 += m;
      }
      k.setDecodeThreads(before);
    };

    it.each([1, 2])('small: contexts of 1 and odd lengths, a prompt run among decode rows (%i threads)', (threads) => {
      // cache 0: a 3-row prompt (its first call); cache 1: context 1; cache 2: 7 positions; cache 3 twice, apart
      check(
        3,
        4,
        14,
        [3, 1, 7, 5, 2],
        [
          [0, 3],
          [1, 1],
          [2, 1],
          [3, 1],
          [4, 2],
          [3, 1],
        ].map(([c, m]) => [c, m]) as [number, number][],
        threads,
      );
    });

    it.each([1, 2])('above the one-thread size: 16 sequences and a prompt, heads of 64 (%i threads)', (threads) => {
      // Σ seen · heads · d · 2 above 2^21 (about 4.4M): the rows are split between the threads
      const lengths = Array.from({ length: 17 }, (_, c) => (c === 16 ? 9 : 100 + ((c * 37) % 301)));
      const runs: [number, number][] = lengths.map((_, c) => [c, c === 16 ? 9 : 1]);
      check(8, 64, 8 * 64, lengths, runs, threads);
    });

    it('rejects rows outside their caches with one-line errors', () => {
      const kv = [new Float32Array(3 * 8)];
      const out = new Float32Array(8);
      const q = new Float32Array(8);
      expect(() => k.attendRows(q, 1, 8, kv, kv, Int32Array.of(0), Int32Array.of(3), 8, 2, 4, out)).not.toThrow();
      expect(() => k.attendRows(q, 1, 8, kv, kv, Int32Array.of(1), Int32Array.of(3), 8, 2, 4, out)).toThrow(
        'attendRows: cache has an index outside 0..ks.length-1',
      );
      expect(() => k.attendRows(q, 1, 8, kv, kv, Int32Array.of(0), Int32Array.of(4), 8, 2, 4, out)).toThrow(
        'attendRows: seen has an entry below 1 or beyond its cache',
      );
      expect(() => k.attendRows(q, 1, 8, kv, [], Int32Array.of(0), Int32Array.of(1), 8, 2, 4, out)).toThrow(
        'attendRows: ks and vs differ in length',
      );
    });
  });

  it('random tables and words depend on the seed and the index only', () => {
    const table = Float32Array.from({ length: 65536 }, (_, i) => i);
    const a = new Float32Array(1001);
    k.randomTable(a, 7, table);
    const b = new Float32Array(2000);
    k.randomTable(b, 7, table);
    expect(Array.from(b.subarray(0, 1001))).toEqual(Array.from(a));
    const c = new Float32Array(1001);
    k.randomTable(c, 8, table);
    expect(c).not.toEqual(a);
    // roughly uniform indices
    const mean = b.reduce((s, v) => s + v, 0) / b.length;
    expect(Math.abs(mean - 32767.5)).toBeLessThan(2000);
    const bits = new Uint16Array(1001);
    k.randomTable(
      bits,
      7,
      Float32Array.from(table, (v) => v / 1024),
    );
    expect(Array.from(bits, fromBf16)).toEqual(Array.from(a, (v) => fromBf16(toBf16(v / 1024))));
    const w1 = new Int32Array(5);
    const w2 = new Int32Array(9);
    k.randomWords(w1, 3);
    k.randomWords(w2, 3);
    expect(Array.from(w2.subarray(0, 5))).toEqual(Array.from(w1));
    expect(() => k.randomWords(w1, -1)).toThrow('randomWords: seed must be a non-negative safe integer');
  });

  it('maps a file read-only-by-copy: its bytes, and writes stay private', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'yuan-map-'));
    try {
      const file = path.join(dir, 'f.bin');
      writeFileSync(file, Buffer.from([1, 2, 3, 4, 5]));
      const buf = k.mapFile(file);
      expect(Array.from(new Uint8Array(buf))).toEqual([1, 2, 3, 4, 5]);
      new Uint8Array(buf)[0] = 9;
      expect(Array.from(new Uint8Array(k.mapFile(file)))).toEqual([1, 2, 3, 4, 5]);
      expect(() => k.mapFile(path.join(dir, 'missing'))).toThrow(/mapFile: cannot open .*missing/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!native.info)('Float64 linear algebra kernels', () => {
  const k = native.info ? weightKernels() : undefined!;

  it('inverseUpperCholesky: Uᵀ·U = H⁻¹ with U upper triangular, for a size spanning several blocks', () => {
    const n = 200;
    // H = I + B·Bᵀ/n with a fixed B
    const b = Float64Array.from({ length: n * n }, (_, i) => Math.sin(i * 0.37) + Math.cos(i * 0.011));
    const h = new Float64Array(n * n);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        let s = i === j ? 1 : 0;
        for (let p = 0; p < n; p++) s += (b[i * n + p] * b[j * n + p]) / n;
        h[i * n + j] = s;
      }
    const u = Float64Array.from(h);
    expect(k.inverseUpperCholesky(u, n)).toBe(true);
    // (Uᵀ·U)·H = I: check with M = U·H, then Uᵀ·M
    const m = new Float64Array(n * n);
    for (let i = 0; i < n; i++)
      for (let p = i; p < n; p++) {
        const f = u[i * n + p];
        for (let j = 0; j < n; j++) m[i * n + j] += f * h[p * n + j];
      }
    let worst = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < i; j++) expect(u[i * n + j]).toBe(0);
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p <= i; p++) s += u[p * n + i] * m[p * n + j];
        worst = Math.max(worst, Math.abs(s - (i === j ? 1 : 0)));
      }
    }
    expect(worst).toBeLessThan(1e-9);
    const bad = Float64Array.from(h);
    bad[150 * n + 150] = -5;
    expect(k.inverseUpperCholesky(bad, n)).toBe(false);
  });

  it('gemmSub64: c −= op(a)·b', () => {
    const a = Float64Array.from([1, 2, 3, 4, 5, 6]); // [2, 3]
    const b = Float64Array.from([1, 0, 0, 1, 1, 1]); // [3, 2]
    const c = Float64Array.from([10, 10, 10, 10]);
    k.gemmSub64(false, 2, 2, 3, a, 3, b, 2, c, 2);
    expect([...c]).toEqual([10 - 4, 10 - 5, 10 - 10, 10 - 11]);
    const t = Float64Array.from([1, 4, 2, 5, 3, 6]); // aᵀ [3, 2]
    const c2 = Float64Array.from([10, 10, 10, 10]);
    k.gemmSub64(true, 2, 2, 3, t, 2, b, 2, c2, 2);
    expect([...c2]).toEqual([...c]);
    expect(() => k.gemmSub64(false, 2, 2, 3, a, 3, b, 2, new Float64Array(3), 2)).toThrow(/c is shorter/);
  });
  describe('decode worker threads (csrc/pool.h): any thread count, spin and caller give the serial bits', () => {
    const bitsOf = (y: Float32Array) => Array.from(new Uint32Array(y.buffer, y.byteOffset, y.length));
    // big enough to run in parallel (2^21 multiply-adds or more), odd widths so that tasks differ in size
    const inF = 1024;
    const out = 2056;
    const gptq = () => {
      const qweight = new Int32Array((inF / 8) * out);
      k.randomWords(qweight, 5);
      const qzeros = new Int32Array((inF / 128) * Math.ceil(out / 8));
      k.randomWords(qzeros, 6);
      const scales = Uint16Array.from(values((inF / 128) * out, 7), (v) =>
        toHalf((1 + Math.floor(((v + 1) / 2) * 15)) / 64),
      );
      return { qweight, qzeros, scales };
    };

    it('hundreds of back-to-back loops on 1 to 3 threads, workers sleeping or spinning', () => {
      const w = gptq();
      const wf = values(out * inF, 8);
      const threadsBefore = k.setDecodeThreads(1);
      const spinBefore = k.setDecodeSpin(-1);
      try {
        const runs = [1, 3, 4].map((n) => {
          const x = values(n * inF, 9 + n);
          const g = new Float32Array(n * out);
          const f = new Float32Array(n * out);
          const product = () => {
            k.linearGptq(x, n, w.qweight, w.qzeros, w.scales, null, 4, 128, inF, out, 1, g);
            k.linearF32(x, n, wf, out, inF, f);
            return [...bitsOf(g), ...bitsOf(f)];
          };
          return { product, serial: product(), g, f };
        });
        for (let i = 0; i < 300; i++) {
          if (i % 50 === 0) k.setDecodeSpin(i % 100 === 0 ? 0 : 200);
          k.setDecodeThreads(1 + (i % 3));
          const r = runs[i % runs.length];
          r.g.fill(NaN);
          r.f.fill(NaN);
          const got = r.product();
          if (got.some((b, j) => b !== r.serial[j])) expect(got).toEqual(r.serial);
        }
      } finally {
        k.setDecodeThreads(threadsBefore);
        k.setDecodeSpin(spinBefore);
      }
    });

    it('a second JavaScript thread decoding at the same time gets the same bits', async () => {
      const { Worker } = await import('node:worker_threads');
      const w = gptq();
      const n = 3;
      const x = values(n * inF, 21);
      const y = new Float32Array(n * out);
      // the serial bits, then both JavaScript threads decode on two threads at once (the pool serves one; the other
      // runs its tasks itself), starting together
      const threadsBefore = k.setDecodeThreads(1);
      try {
        k.linearGptq(x, n, w.qweight, w.qzeros, w.scales, null, 4, 128, inF, out, 1, y);
        const serial = bitsOf(y);
        k.setDecodeThreads(2);
        const addon = fileURLToPath(new URL('../build/Release/yuan_native.node', import.meta.url));
        const start = new Int32Array(new SharedArrayBuffer(8));
        const worker = new Worker(
          `const { parentPort, workerData: d } = require('node:worker_threads');
           const k = require(d.addon);
           Atomics.store(d.start, 0, 1);
           Atomics.notify(d.start, 0);
           Atomics.wait(d.start, 1, 0);
           const y = new Float32Array(d.n * d.out);
           let bad = 0;
           for (let i = 0; i < 200; i++) {
             y.fill(NaN);
             k.linearGptq(d.x, d.n, d.qweight, d.qzeros, d.scales, null, 4, 128, d.inF, d.out, 1, y);
             const b = new Uint32Array(y.buffer);
             for (let j = 0; j < b.length; j++) if (b[j] !== d.serial[j]) { bad++; break; }
           }
           parentPort.postMessage(bad);`,
          { eval: true, workerData: { addon, start, n, inF, out, x, ...w, serial: Uint32Array.from(serial) } },
        );
        const workerBad = new Promise<number>((resolve, reject) => {
          worker.once('message', resolve);
          worker.once('error', reject);
        });
        Atomics.wait(start, 0, 0, 30_000);
        Atomics.store(start, 1, 1);
        Atomics.notify(start, 1);
        let bad = 0;
        for (let i = 0; i < 200; i++) {
          y.fill(NaN);
          k.linearGptq(x, n, w.qweight, w.qzeros, w.scales, null, 4, 128, inF, out, 1, y);
          if (bitsOf(y).some((b, j) => b !== serial[j])) bad++;
        }
        expect(bad).toBe(0);
        expect(await workerBad).toBe(0);
        await worker.terminate();
      } finally {
        k.setDecodeThreads(threadsBefore);
      }
    });
  });
});
