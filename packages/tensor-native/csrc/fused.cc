// Fused kernels with their own backward passes: one pass over memory where tfjs would run 6-20 small ops.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels.h"
#include "vexp.h"

namespace ynk {

void rmsNormForward(const float* x, const float* w, float eps, float* out, float* inv, int64_t rows, int64_t d) {
  for (int64_t r = 0; r < rows; r++) {
    const float* p = x + r * d;
    float* q = out + r * d;
    double s = 0;
    for (int64_t i = 0; i < d; i++) s += double(p[i]) * p[i];
    const float iv = 1.0f / std::sqrt(float(s / double(d)) + eps);
    inv[r] = iv;
    for (int64_t i = 0; i < d; i++) q[i] = p[i] * iv * w[i];
  }
}

void rmsNormBackward(const float* x, const float* w, const float* inv, const float* dy, float* dx, float* dw,
                     int64_t rows, int64_t d) {
  std::vector<double> acc(d, 0.0);
  for (int64_t r = 0; r < rows; r++) {
    const float* p = x + r * d;
    const float* g = dy + r * d;
    float* q = dx + r * d;
    const float iv = inv[r];
    // n = x·inv, dn = dy·w: dx = inv·(dn − n·mean(dn·n)), dw = Σ_rows dy·n.
    double dot = 0;
    for (int64_t i = 0; i < d; i++) {
      const float n = p[i] * iv;
      dot += double(g[i]) * w[i] * n;
      acc[i] += double(g[i]) * n;
    }
    const float m = float(dot / double(d));
    for (int64_t i = 0; i < d; i++) q[i] = iv * (g[i] * w[i] - p[i] * iv * m);
  }
  for (int64_t i = 0; i < d; i++) dw[i] = float(acc[i]);
}

void ropeHeadsForward(const float* x, const float* cos, const float* sin, float* out, int64_t b, int64_t t, int64_t h,
                      int64_t d, int64_t cb) {
  const int64_t half = d / 2;
  for (int64_t bi = 0; bi < b; bi++)
    for (int64_t ti = 0; ti < t; ti++) {
      const float* c = cos + ((cb == 1 ? 0 : bi) * t + ti) * d;
      const float* s = sin + ((cb == 1 ? 0 : bi) * t + ti) * d;
      for (int64_t hi = 0; hi < h; hi++) {
        const float* p = x + ((bi * t + ti) * h + hi) * d;
        float* q = out + ((bi * h + hi) * t + ti) * d;
#pragma omp simd
        for (int64_t i = 0; i < half; i++) {
          q[i] = p[i] * c[i] - p[i + half] * s[i];
          q[i + half] = p[i + half] * c[i + half] + p[i] * s[i + half];
        }
      }
    }
}

void ropeHeadsBackward(const float* x, const float* cos, const float* sin, const float* dy, float* dx, float* dcos,
                       float* dsin, int64_t b, int64_t t, int64_t h, int64_t d, int64_t cb) {
  const int64_t half = d / 2;
  std::fill(dcos, dcos + cb * t * d, 0.0f);
  std::fill(dsin, dsin + cb * t * d, 0.0f);
  for (int64_t bi = 0; bi < b; bi++)
    for (int64_t ti = 0; ti < t; ti++) {
      const int64_t row = ((cb == 1 ? 0 : bi) * t + ti) * d;
      const float* c = cos + row;
      const float* s = sin + row;
      float* gc = dcos + row;
      float* gs = dsin + row;
      for (int64_t hi = 0; hi < h; hi++) {
        const float* p = x + ((bi * t + ti) * h + hi) * d;
        const float* g = dy + ((bi * h + hi) * t + ti) * d;
        float* q = dx + ((bi * t + ti) * h + hi) * d;
#pragma omp simd
        for (int64_t i = 0; i < half; i++) {
          q[i] = g[i] * c[i] + g[i + half] * s[i + half];
          q[i + half] = g[i + half] * c[i + half] - g[i] * s[i];
          gc[i] += g[i] * p[i];
          gc[i + half] += g[i + half] * p[i + half];
          gs[i] -= g[i] * p[i + half];
          gs[i + half] += g[i + half] * p[i];
        }
      }
    }
}

void swigluForward(const float* u, float* out, int64_t rows, int64_t f) {
  for (int64_t r = 0; r < rows; r++) {
    const float* a = u + r * 2 * f;
    const float* g = a + f;
    float* q = out + r * f;
#pragma omp simd
    for (int64_t i = 0; i < f; i++) q[i] = a[i] / (1.0f + vexp(-a[i])) * g[i];
  }
}

void swigluBackward(const float* u, const float* dy, float* du, int64_t rows, int64_t f) {
  for (int64_t r = 0; r < rows; r++) {
    const float* a = u + r * 2 * f;
    const float* g = a + f;
    const float* d = dy + r * f;
    float* da = du + r * 2 * f;
    float* dg = da + f;
#pragma omp simd
    for (int64_t i = 0; i < f; i++) {
      const float s = 1.0f / (1.0f + vexp(-a[i]));
      dg[i] = d[i] * a[i] * s;
      da[i] = d[i] * g[i] * s * (1.0f + a[i] * (1.0f - s));
    }
  }
}

void adamw(const float* p, const float* g, const float* m, const float* v, float* po, float* mo, float* vo, int64_t n,
           const AdamWParams& h) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) {
    const float mi = m[i] * h.beta1 + g[i] * (1.0f - h.beta1);
    const float vi = v[i] * h.beta2 + g[i] * g[i] * (1.0f - h.beta2);
    const float update = (mi / h.c1) / (std::sqrt(vi / h.c2) + h.eps) + h.weightDecay * p[i];
    mo[i] = mi;
    vo[i] = vi;
    po[i] = p[i] - update * h.lr;
  }
}

}  // namespace ynk
