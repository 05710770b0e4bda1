import { describe, expect, it } from 'vitest';
import { gptqKernels } from './gptq.js';
import { choleskyLower, inverseUpperCholesky, invertLower } from './linalg.js';

function randomSpd(n: number, seed: number): Float64Array {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  const b = Float64Array.from({ length: n * n }, rnd);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let v = i === j ? 0.1 : 0;
      for (let k = 0; k < n; k++) v += b[i * n + k] * b[j * n + k];
      a[i * n + j] = v;
    }
  return a;
}

const matmul = (a: Float64Array, b: Float64Array, n: number) => {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) c[i * n + j] += a[i * n + k] * b[k * n + j];
  return c;
};
const transpose = (a: Float64Array, n: number) =>
  Float64Array.from({ length: n * n }, (_, x) => a[(x % n) * n + Math.floor(x / n)]);

describe('Float64 linear algebra for GPTQ', () => {
  const n = 17;
  const h = randomSpd(n, 7);

  it('choleskyLower gives L with L·Lᵀ = A and a zero upper triangle', () => {
    const l = Float64Array.from(h);
    expect(choleskyLower(l, n)).toBe(true);
    const back = matmul(l, transpose(l, n), n);
    back.forEach((v, i) => expect(v).toBeCloseTo(h[i], 10));
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) expect(l[i * n + j]).toBe(0);
  });

  it('invertLower inverts a lower triangular matrix', () => {
    const l = Float64Array.from(h);
    choleskyLower(l, n);
    const m = invertLower(l, n);
    matmul(l, m, n).forEach((v, x) => expect(v).toBeCloseTo(Math.floor(x / n) === x % n ? 1 : 0, 10));
  });

  it('inverseUpperCholesky gives the upper U with Uᵀ·U = H⁻¹ (so Uᵀ·U·H = I) and a positive diagonal', () => {
    const u = inverseUpperCholesky(h, n)!;
    for (let i = 0; i < n; i++) {
      expect(u[i * n + i]).toBeGreaterThan(0);
      for (let j = 0; j < i; j++) expect(u[i * n + j]).toBe(0);
    }
    matmul(matmul(transpose(u, n), u, n), h, n).forEach((v, x) =>
      expect(v).toBeCloseTo(Math.floor(x / n) === x % n ? 1 : 0, 8),
    );
  });

  it('a matrix that is not positive definite is reported, not factorised', () => {
    const bad = Float64Array.from(h);
    bad[3 * n + 3] = -1;
    expect(inverseUpperCholesky(bad, n)).toBeUndefined();
    expect(choleskyLower(Float64Array.from([1, 2, 2, 1]), 2)).toBe(false);
  });
});

// The native Float64 kernels (OpenBLAS, blocked by 96): the same factor as the plain loops, on sizes that end inside a
// block, span several and are below one.
const kernels = await gptqKernels();
describe.skipIf(!kernels)(
  `native Float64 kernels${kernels ? '' : ' (skipped: the @yuan/tensor-native addon is not built)'}`,
  () => {
    for (const size of [5, 96, 200]) {
      it(`inverseUpperCholesky agrees with the plain loops (n = ${size})`, () => {
        const a = randomSpd(size, 3 + size);
        const plain = inverseUpperCholesky(a, size)!;
        const native = Float64Array.from(a);
        expect(kernels!.inverseUpperCholesky(native, size)).toBe(true);
        let scale = 0;
        let diff = 0;
        for (let i = 0; i < size * size; i++) {
          scale = Math.max(scale, Math.abs(plain[i]));
          diff = Math.max(diff, Math.abs(native[i] - plain[i]));
        }
        expect(diff).toBeLessThan(1e-9 * scale);
      });
    }

    it('inverseUpperCholesky reports a matrix that is not positive definite, and checks its size', () => {
      const bad = randomSpd(130, 5);
      bad[120 * 130 + 120] = -1;
      expect(kernels!.inverseUpperCholesky(bad, 130)).toBe(false);
      expect(() => kernels!.inverseUpperCholesky(new Float64Array(8), 3)).toThrow(/h must hold n·n values/);
    });

    it('gemmSub64 subtracts op(a)·b from a block of c (plain and transposed a, subarray views)', () => {
      const [m, n, k] = [7, 5, 3];
      const a = randomSpd(9, 1); // a [m, k] at offset 2 with row stride 9; its transpose [k, m] at offset 1
      const b = randomSpd(6, 2); // b [k, n], row stride 6
      for (const trans of [false, true]) {
        const c = randomSpd(8, 3); // c [m, n] at offset 8 + 1, row stride 8
        const want = Float64Array.from(c);
        for (let i = 0; i < m; i++)
          for (let j = 0; j < n; j++) {
            let s = 0;
            for (let p = 0; p < k; p++) s += (trans ? a[1 + p * 9 + i] : a[2 + i * 9 + p]) * b[p * 6 + j];
            want[9 + i * 8 + j] -= s;
          }
        kernels!.gemmSub64(trans, m, n, k, a.subarray(trans ? 1 : 2), 9, b, 6, c.subarray(9), 8);
        c.forEach((v, x) => expect(v).toBeCloseTo(want[x], 12));
      }
      expect(() => kernels!.gemmSub64(false, 7, 5, 3, new Float64Array(4), 3, b, 6, new Float64Array(64), 8)).toThrow(
        /a is shorter than its matrix/,
      );
    });
  },
);
