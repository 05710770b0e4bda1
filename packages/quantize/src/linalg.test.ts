import { describe, expect, it } from 'vitest';
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
