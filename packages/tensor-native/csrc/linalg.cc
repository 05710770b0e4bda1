// Dense Float64 linear algebra for quantizers (GPTQ's inverse-Hessian factor), blocked over OpenBLAS's CBLAS level-3
// routines (dsyrk, dtrsm, dtrmm, dgemm). Row-major n×n matrices; LAPACK is not needed.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "wformat.h"

namespace ynk {

namespace {

constexpr int64_t kBlock = 96;

// Unblocked lower Cholesky of the jb×jb block at a (row stride lda), in place; false when not positive definite.
bool potrfLowerSmall(double* a, int64_t jb, int64_t lda) {
  for (int64_t i = 0; i < jb; i++) {
    double* ri = a + i * lda;
    for (int64_t j = 0; j <= i; j++) {
      const double* rj = a + j * lda;
      double s = ri[j];
      for (int64_t k = 0; k < j; k++) s -= ri[k] * rj[k];
      if (j < i) {
        ri[j] = s / rj[j];
      } else {
        if (!(s > 0) || !std::isfinite(s)) return false;
        ri[i] = std::sqrt(s);
      }
    }
  }
  return true;
}

// Unblocked inverse of the lower triangular jb×jb block at a (row stride lda), in place (LAPACK's dtrti2 order).
void trtriLowerSmall(double* a, int64_t jb, int64_t lda) {
  for (int64_t j = jb - 1; j >= 0; j--) {
    a[j * lda + j] = 1.0 / a[j * lda + j];
    const double ajj = -a[j * lda + j];
    // column j below the diagonal: x := T·x with T the already inverted trailing block, then scaled by −1/L_jj
    for (int64_t i = jb - 1; i > j; i--) {
      double s = 0;
      for (int64_t k = j + 1; k <= i; k++) s += a[i * lda + k] * a[k * lda + j];
      a[i * lda + j] = s * ajj;
    }
  }
}

}  // namespace

bool choleskyLower(double* a, int64_t n) {
  for (int64_t j = 0; j < n; j += kBlock) {
    const int64_t jb = std::min(kBlock, n - j);
    double* ajj = a + j * n + j;
    if (!potrfLowerSmall(ajj, jb, n)) return false;
    const int64_t rest = n - j - jb;
    if (rest > 0) {
      double* panel = a + (j + jb) * n + j;
      // panel := panel · L_jjᵀ⁻¹, then the trailing block −= panel · panelᵀ (its lower triangle)
      cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, int(rest), int(jb), 1.0, ajj, int(n),
                  panel, int(n));
      cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, int(rest), int(jb), -1.0, panel, int(n), 1.0,
                  a + (j + jb) * n + (j + jb), int(n));
    }
  }
  for (int64_t i = 0; i < n; i++) std::fill(a + i * n + i + 1, a + (i + 1) * n, 0.0);
  return true;
}

void invertLower(double* a, int64_t n) {
  const int64_t last = ((n - 1) / kBlock) * kBlock;
  for (int64_t j = last; j >= 0; j -= kBlock) {
    const int64_t jb = std::min(kBlock, n - j);
    const int64_t rest = n - j - jb;
    if (rest > 0) {
      double* below = a + (j + jb) * n + j;
      // A[j+jb:, j:j+jb] := −(inverted trailing block) · A[j+jb:, j:j+jb] · L_jj⁻¹
      cblas_dtrmm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, int(rest), int(jb), 1.0,
                  a + (j + jb) * n + (j + jb), int(n), below, int(n));
      cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, int(rest), int(jb), -1.0,
                  a + j * n + j, int(n), below, int(n));
    }
    trtriLowerSmall(a + j * n + j, jb, n);
  }
}

bool inverseUpperCholesky(double* h, int64_t n) {
  // reverse rows and columns in place: R = J·H·J
  const int64_t total = n * n;
  for (int64_t i = 0; i < total / 2; i++) std::swap(h[i], h[total - 1 - i]);
  if (!choleskyLower(h, n)) return false;
  invertLower(h, n);
  // U = J·L'⁻¹·J: upper triangular
  for (int64_t i = 0; i < total / 2; i++) std::swap(h[i], h[total - 1 - i]);
  return true;
}

void gemmSub64(bool transA, int64_t m, int64_t n, int64_t k, const double* a, int64_t lda, const double* b, int64_t ldb,
               double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, CblasNoTrans, int(m), int(n), int(k), -1.0, a, int(lda),
              b, int(ldb), 1.0, c, int(ldc));
}

}  // namespace ynk
