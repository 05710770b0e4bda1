/**
 * Dense Float64 linear algebra for GPTQ, row-major n×n matrices. The inner loops run over contiguous rows.
 */

/**
 * In-place lower Cholesky factor of a symmetric positive definite matrix (only its lower triangle is read):
 * A = L·Lᵀ, L written over the lower triangle, the strict upper triangle set to 0. Returns false (A partly
 * overwritten) when A is not positive definite.
 */
export function choleskyLower(a: Float64Array, n: number): boolean {
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    for (let j = 0; j <= i; j++) {
      const rj = j * n;
      let s = a[ri + j];
      for (let k = 0; k < j; k++) s -= a[ri + k] * a[rj + k];
      if (j < i) a[ri + j] = s / a[rj + j];
      else {
        if (!(s > 0) || !Number.isFinite(s)) return false;
        a[ri + i] = Math.sqrt(s);
      }
    }
    for (let j = i + 1; j < n; j++) a[ri + j] = 0;
  }
  return true;
}

/** The inverse of a lower triangular matrix L (nonzero diagonal), lower triangular, as a new array. */
export function invertLower(l: Float64Array, n: number): Float64Array {
  const m = new Float64Array(n * n);
  const acc = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    // row i of M = L⁻¹: M[i, j] = −(Σ_{j≤k<i} L[i,k]·M[k,j]) / L[i,i] for j < i, M[i,i] = 1/L[i,i]
    acc.fill(0, 0, i);
    const ri = i * n;
    for (let k = 0; k < i; k++) {
      const c = l[ri + k];
      if (c === 0) continue;
      const rk = k * n;
      for (let j = 0; j <= k; j++) acc[j] += c * m[rk + j];
    }
    const d = l[ri + i];
    for (let j = 0; j < i; j++) m[ri + j] = -acc[j] / d;
    m[ri + i] = 1 / d;
  }
  return m;
}

/**
 * The upper Cholesky factor U of H⁻¹ (H⁻¹ = Uᵀ·U, U upper triangular with a positive diagonal) for a symmetric positive
 * definite H, without forming H⁻¹: with J the reversal permutation and J·H·J = L'·L'ᵀ, H = V·Vᵀ for the upper
 * triangular V = J·L'·J, so H⁻¹ = V⁻ᵀ·V⁻¹ and U = V⁻¹ = J·L'⁻¹·J. Costs n³/3 multiply-adds. Returns undefined
 * when H is not positive definite.
 */
export function inverseUpperCholesky(h: Float64Array, n: number): Float64Array | undefined {
  const r = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) r[i * n + j] = h[(n - 1 - i) * n + (n - 1 - j)];
  if (!choleskyLower(r, n)) return undefined;
  const m = invertLower(r, n);
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) u[i * n + j] = m[(n - 1 - i) * n + (n - 1 - j)];
  return u;
}
