// Fused kernels with their own backward passes: one pass over memory where tfjs would run 6-20 small ops.
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
