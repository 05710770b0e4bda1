// Elementwise float32 kernels: broadcasting binary ops, unary ops and add-n, split over threads with OpenMP.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels.h"
#include "vexp.h"

namespace ynk {

namespace {

constexpr int64_t kParallelMin = 1 << 16;

template <typename T, typename F>
void binaryLoop(F f, const float* a, const float* b, T* out, int rank, const int32_t* shape, const int32_t* as,
                const int32_t* bs) {
  const int64_t inner = rank ? shape[rank - 1] : 1;
  const int64_t sa = rank ? as[rank - 1] : 0, sb = rank ? bs[rank - 1] : 0;
  int64_t outer = 1;
  for (int d = 0; d + 1 < rank; d++) outer *= shape[d];
#pragma omp parallel for num_threads(kernelThreads()) schedule(static) if (outer * inner >= kParallelMin)
  for (int64_t o = 0; o < outer; o++) {
    int64_t rest = o, ia = 0, ib = 0;
    for (int d = rank - 2; d >= 0; d--) {
      const int64_t i = rest % shape[d];
      rest /= shape[d];
      ia += i * as[d];
      ib += i * bs[d];
    }
    const float* pa = a + ia;
    const float* pb = b + ib;
    T* po = out + o * inner;
    if (sa == 1 && sb == 1) {
      for (int64_t i = 0; i < inner; i++) po[i] = f(pa[i], pb[i]);
    } else if (sa == 1) {
      const float vb = pb[0];
      for (int64_t i = 0; i < inner; i++) po[i] = f(pa[i], vb);
    } else if (sb == 1) {
      const float va = pa[0];
      for (int64_t i = 0; i < inner; i++) po[i] = f(va, pb[i]);
    } else {
      for (int64_t i = 0; i < inner; i++) po[i] = f(pa[i * sa], pb[i * sb]);
    }
  }
}

template <typename F>
void unaryLoop(F f, const float* x, float* out, int64_t n) {
  // simd: with -fno-math-errno GCC calls glibc's vector expf/tanhf/... (libmvec) on 16 lanes.
#pragma omp parallel for simd num_threads(kernelThreads()) schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) out[i] = f(x[i]);
}

}  // namespace

void binary(int op, const float* a, const float* b, float* out, int rank, const int32_t* shape, const int32_t* as,
            const int32_t* bs) {
  switch (op) {
    case ADD: return binaryLoop([](float x, float y) { return x + y; }, a, b, out, rank, shape, as, bs);
    case SUB: return binaryLoop([](float x, float y) { return x - y; }, a, b, out, rank, shape, as, bs);
    case MUL: return binaryLoop([](float x, float y) { return x * y; }, a, b, out, rank, shape, as, bs);
    case DIV: return binaryLoop([](float x, float y) { return x / y; }, a, b, out, rank, shape, as, bs);
    case MAXIMUM:
      return binaryLoop([](float x, float y) { return (std::isnan(x) || x > y) ? x : y; }, a, b, out, rank, shape, as, bs);
    case MINIMUM:
      return binaryLoop([](float x, float y) { return (std::isnan(x) || x < y) ? x : y; }, a, b, out, rank, shape, as, bs);
    case SQUARED_DIFF:
      return binaryLoop([](float x, float y) { return (x - y) * (x - y); }, a, b, out, rank, shape, as, bs);
  }
}

void compare(int op, const float* a, const float* b, uint8_t* out, int rank, const int32_t* shape, const int32_t* as,
             const int32_t* bs) {
  switch (op) {
    case EQUAL: return binaryLoop([](float x, float y) -> uint8_t { return x == y; }, a, b, out, rank, shape, as, bs);
    case NOT_EQUAL: return binaryLoop([](float x, float y) -> uint8_t { return x != y; }, a, b, out, rank, shape, as, bs);
    case LESS: return binaryLoop([](float x, float y) -> uint8_t { return x < y; }, a, b, out, rank, shape, as, bs);
    case LESS_EQUAL: return binaryLoop([](float x, float y) -> uint8_t { return x <= y; }, a, b, out, rank, shape, as, bs);
    case GREATER: return binaryLoop([](float x, float y) -> uint8_t { return x > y; }, a, b, out, rank, shape, as, bs);
    case GREATER_EQUAL:
      return binaryLoop([](float x, float y) -> uint8_t { return x >= y; }, a, b, out, rank, shape, as, bs);
  }
}

void unary(int op, const float* x, float* out, int64_t n) {
  switch (op) {
    case NEG: return unaryLoop([](float v) { return -v; }, x, out, n);
    case EXP: return unaryLoop([](float v) { return vexp(v); }, x, out, n);
    case LOG: return unaryLoop([](float v) { return std::log(v); }, x, out, n);
    case SQRT: return unaryLoop([](float v) { return std::sqrt(v); }, x, out, n);
    case RSQRT: return unaryLoop([](float v) { return 1.0f / std::sqrt(v); }, x, out, n);
    case SQUARE: return unaryLoop([](float v) { return v * v; }, x, out, n);
    case SIGMOID: return unaryLoop([](float v) { return 1.0f / (1.0f + vexp(-v)); }, x, out, n);
    case TANH: return unaryLoop([](float v) { return std::tanh(v); }, x, out, n);
    case RELU: return unaryLoop([](float v) { return v < 0 ? 0.0f : v; }, x, out, n);
    case RECIPROCAL: return unaryLoop([](float v) { return 1.0f / v; }, x, out, n);
    case ABS: return unaryLoop([](float v) { return std::fabs(v); }, x, out, n);
    case COS: return unaryLoop([](float v) { return std::cos(v); }, x, out, n);
    case SIN: return unaryLoop([](float v) { return std::sin(v); }, x, out, n);
  }
}

void addN(const float* const* xs, int count, float* out, int64_t n) {
#pragma omp parallel for num_threads(kernelThreads()) schedule(static) if (n * count >= kParallelMin)
  for (int64_t i = 0; i < n; i++) {
    float s = 0;
    for (int j = 0; j < count; j++) s += xs[j][i];
    out[i] = s;
  }
}

}  // namespace ynk
