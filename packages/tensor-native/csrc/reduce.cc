// Reductions over the contiguous inner axis and a row softmax (sums accumulate in double, as tfjs's cpu backend does).
#include <cmath>
#include <vector>

#include "kernels.h"
#include "vexp.h"

namespace ynk {

namespace {
constexpr int64_t kParallelMin = 1 << 16;
}

void reduceInner(int op, const float* x, float* out, int64_t outer, int64_t inner) {
#pragma omp parallel for num_threads(kernelThreads()) schedule(static) if (outer * inner >= kParallelMin)
  for (int64_t o = 0; o < outer; o++) {
    const float* p = x + o * inner;
    if (op == R_SUM || op == R_MEAN) {
      double s = 0;
      for (int64_t i = 0; i < inner; i++) s += p[i];
      out[o] = float(op == R_MEAN ? s / double(inner) : s);
    } else {
      float m = p[0];
      for (int64_t i = 1; i < inner; i++) {
        const float v = p[i];
        if (std::isnan(v) || (op == R_MAX ? v > m : v < m)) m = v;
      }
      out[o] = m;
    }
  }
}

void reduceOuter(int op, const float* x, float* out, int64_t outer, int64_t inner) {
  if (op == R_SUM || op == R_MEAN) {
    std::vector<double> acc(inner, 0.0);
    for (int64_t o = 0; o < outer; o++) {
      const float* p = x + o * inner;
#pragma omp simd
      for (int64_t i = 0; i < inner; i++) acc[i] += p[i];
    }
    for (int64_t i = 0; i < inner; i++) out[i] = float(op == R_MEAN ? acc[i] / double(outer) : acc[i]);
    return;
  }
  for (int64_t i = 0; i < inner; i++) out[i] = x[i];
  for (int64_t o = 1; o < outer; o++) {
    const float* p = x + o * inner;
    for (int64_t i = 0; i < inner; i++) {
      const float v = p[i];
      if (std::isnan(v) || (op == R_MAX ? v > out[i] : v < out[i])) out[i] = v;
    }
  }
}

void softmax(const float* x, float* out, int64_t rows, int64_t cols) {
#pragma omp parallel for num_threads(kernelThreads()) schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; r++) {
    const float* p = x + r * cols;
    float* q = out + r * cols;
    float m = p[0];
    for (int64_t i = 1; i < cols; i++) m = p[i] > m ? p[i] : m;
#pragma omp simd
    for (int64_t i = 0; i < cols; i++) q[i] = vexp(p[i] - m);
    double s = 0;
    for (int64_t i = 0; i < cols; i++) s += q[i];
    const float inv = float(s);
    for (int64_t i = 0; i < cols; i++) q[i] = q[i] / inv;
  }
}

}  // namespace ynk
