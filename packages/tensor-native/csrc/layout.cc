// Data movement: transpose, slice, gather and segment sums.
#include <cstring>

#include "kernels.h"

namespace ynk {

namespace {
constexpr int64_t kParallelMin = 1 << 16;
}

void transpose(const float* x, float* out, int rank, const int32_t* shape, const int32_t* perm) {
  int64_t inStrides[8], outShape[8], srcStride[8];
  int64_t s = 1;
  for (int d = rank - 1; d >= 0; d--) {
    inStrides[d] = s;
    s *= shape[d];
  }
  const int64_t total = s;
  for (int d = 0; d < rank; d++) {
    outShape[d] = shape[perm[d]];
    srcStride[d] = inStrides[perm[d]];
  }
  const int64_t inner = rank ? outShape[rank - 1] : 1;
  const int64_t innerStride = rank ? srcStride[rank - 1] : 1;
  const int64_t outer = inner ? total / inner : 0;
#pragma omp parallel for num_threads(kernelThreads()) schedule(static) if (total >= kParallelMin)
  for (int64_t o = 0; o < outer; o++) {
    int64_t rest = o, src = 0;
    for (int d = rank - 2; d >= 0; d--) {
      src += (rest % outShape[d]) * srcStride[d];
      rest /= outShape[d];
    }
    float* q = out + o * inner;
    if (innerStride == 1) {
      std::memcpy(q, x + src, sizeof(float) * inner);
    } else {
      for (int64_t i = 0; i < inner; i++) q[i] = x[src + i * innerStride];
    }
  }
}

void copyBox(const float* src, const int32_t* srcShape, const int32_t* srcBegin, float* dst, const int32_t* dstShape,
             const int32_t* dstBegin, const int32_t* size, int rank) {
  int64_t ss[8], ds[8];
  int64_t a = 1, b = 1, s0 = 0, d0 = 0;
  for (int d = rank - 1; d >= 0; d--) {
    ss[d] = a;
    ds[d] = b;
    a *= srcShape[d];
    b *= dstShape[d];
  }
  for (int d = 0; d < rank; d++) {
    if (size[d] == 0) return;
    s0 += srcBegin[d] * ss[d];
    d0 += dstBegin[d] * ds[d];
  }
  // Drop unit dims of the box and merge neighbours that are contiguous in both src and dst, so that the innermost
  // loop is as long as possible (a box [.., n, 1] of a stack/unstack copies n strided elements, not n single ones).
  int64_t n[8], sst[8], dst_[8];
  int r = 0;
  for (int d = 0; d < rank; d++) {
    if (size[d] == 1) continue;
    if (r > 0 && sst[r - 1] == ss[d] * size[d] && dst_[r - 1] == ds[d] * size[d]) {
      n[r - 1] *= size[d];
      sst[r - 1] = ss[d];
      dst_[r - 1] = ds[d];
    } else {
      n[r] = size[d];
      sst[r] = ss[d];
      dst_[r] = ds[d];
      r++;
    }
  }
  const int64_t inner = r ? n[r - 1] : 1;
  const int64_t si1 = r ? sst[r - 1] : 1, di1 = r ? dst_[r - 1] : 1;
  int64_t outer = 1;
  for (int d = 0; d + 1 < r; d++) outer *= n[d];
#pragma omp parallel for num_threads(kernelThreads()) schedule(static) if (outer * inner >= kParallelMin)
  for (int64_t o = 0; o < outer; o++) {
    int64_t rest = o, si = s0, di = d0;
    for (int d = r - 2; d >= 0; d--) {
      const int64_t i = rest % n[d];
      rest /= n[d];
      si += i * sst[d];
      di += i * dst_[d];
    }
    if (si1 == 1 && di1 == 1) {
      std::memcpy(dst + di, src + si, sizeof(float) * inner);
    } else {
      for (int64_t i = 0; i < inner; i++) dst[di + i * di1] = src[si + i * si1];
    }
  }
}

void fill(float* out, int64_t n, float value) {
  for (int64_t i = 0; i < n; i++) out[i] = value;
}

bool gather(const float* x, const int32_t* idx, float* out, int64_t outer, int64_t n, int64_t m, int64_t inner) {
  for (int64_t j = 0; j < m; j++)
    if (idx[j] < 0 || idx[j] >= n) return false;
#pragma omp parallel for num_threads(kernelThreads()) schedule(static) if (outer * m * inner >= kParallelMin)
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t j = 0; j < m; j++) {
      std::memcpy(out + (o * m + j) * inner, x + (o * n + idx[j]) * inner, sizeof(float) * inner);
    }
  }
  return true;
}

void segmentSum(const float* x, const int32_t* seg, float* out, int64_t n, int64_t segments, int64_t inner) {
  std::memset(out, 0, sizeof(float) * segments * inner);
  // Threads split the inner axis so that no two write the same output element.
#pragma omp parallel for num_threads(kernelThreads()) schedule(static) if (n * inner >= kParallelMin && inner >= 64)
  for (int64_t c0 = 0; c0 < inner; c0 += 32) {
    const int64_t c1 = c0 + 32 < inner ? c0 + 32 : inner;
    for (int64_t r = 0; r < n; r++) {
      const int64_t s = seg[r];
      if (s < 0 || s >= segments) continue;
      const float* p = x + r * inner;
      float* q = out + s * inner;
      for (int64_t c = c0; c < c1; c++) q[c] += p[c];
    }
  }
}

}  // namespace ynk
