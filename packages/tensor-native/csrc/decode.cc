// Decode-time helpers: rotary embeddings, attention of new queries over a K/V cache, and random weights.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "vexp.h"
#include "wformat.h"

namespace ynk {

void rope(float* x, int64_t n, int64_t stride, int64_t heads, int64_t d, const int32_t* pos, float base) {
  const int64_t half = d / 2;
  std::vector<float> inv(half), cs(half), sn(half);
  // the same float32 steps as the tensor path (nn.ts ropeTables): inv = 1/base^(2i/d), angle = float(pos)·inv
  for (int64_t i = 0; i < half; i++) inv[i] = float(1.0 / std::pow(double(base), double(2 * i) / double(d)));
  for (int64_t r = 0; r < n; r++) {
    for (int64_t i = 0; i < half; i++) {
      const float a = float(pos[r]) * inv[i];
      cs[i] = float(std::cos(double(a)));
      sn[i] = float(std::sin(double(a)));
    }
    for (int64_t h = 0; h < heads; h++) {
      float* v = x + r * stride + h * d;
      for (int64_t i = 0; i < half; i++) {
        const float a = v[i], b = v[i + half];
        v[i] = a * cs[i] - b * sn[i];
        v[i + half] = b * cs[i] + a * sn[i];
      }
    }
  }
}

namespace {

// One (row, head) of causal attention: out[0, d) = softmax(qi·kᵀ·scale over positions [0, seen)) · v, for keys and
// values of that head at k + j·kvStride, v + j·kvStride; p [seen] and acc [d] are the caller's buffers.
inline void attendHead(const float* qi, const float* k, const float* v, int64_t kvStride, int64_t seen, int64_t d,
                       float scale, float* p, float* acc, float* out) {
  float m = -INFINITY;
  for (int64_t j = 0; j < seen; j++) {
    const float* kj = k + j * kvStride;
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t t = 0; t < d; t++) s += qi[t] * kj[t];
    s *= scale;
    p[j] = s;
    m = std::max(m, s);
  }
  float sum = 0;
  for (int64_t j = 0; j < seen; j++) {
    p[j] = vexp(p[j] - m);
    sum += p[j];
  }
  const float inv = 1.0f / sum;
  std::fill(acc, acc + d, 0.0f);
  for (int64_t j = 0; j < seen; j++) {
    const float* vj = v + j * kvStride;
    const float pj = p[j] * inv;
#pragma omp simd
    for (int64_t t = 0; t < d; t++) acc[t] += pj * vj[t];
  }
  std::memcpy(out, acc, d * sizeof(float));
}

// Attention's multiply-adds below which one thread does it (waking a second costs more; see threadsFor in wformat.cc).
constexpr int64_t kAttendSerial = int64_t(1) << 18;
// The same for attendRows, whose rows of many sequences add up: 2^21 as the products (threadsFor in wformat.cc). On
// this loaded 2-core machine two threads did not pay below it (16 rows of tiny-lfa at 150 positions, 2.3·2^18: 132 CPU
// µs / 151 wall on one thread, 151 / 203 on two; one 2B row at 400 positions, 6.3·2^18: 435 / 566 against 603 / 675);
// at 50·2^18 (16 2B rows at 200) two threads were level on the wall clock (8.5 against 8.8 ms).
constexpr int64_t kAttendRowsSerial = int64_t(1) << 21;

}  // namespace

void attend(const float* q, int64_t n, int64_t qStride, const float* k, const float* v, int64_t kvStride, int64_t start,
            int64_t heads, int64_t d, float* out, int threads) {
  const float scale = 1.0f / std::sqrt(float(d));
  const int64_t len = start + n;
  // about n·len·heads·d·2 multiply-adds
  if (n * len * heads * d * 2 < kAttendSerial) threads = 1;
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> p(len);
    std::vector<float> acc(d);
#pragma omp for schedule(dynamic, 1) collapse(2)
    for (int64_t h = 0; h < heads; h++) {
      for (int64_t i = 0; i < n; i++) {
        attendHead(q + i * qStride + h * d, k + h * d, v + h * d, kvStride, start + i + 1, d, scale, p.data(),
                   acc.data(), out + i * heads * d + h * d);
      }
    }
  }
}

void attendRows(const float* q, int64_t n, int64_t qStride, const float* const* k, const float* const* v,
                const int32_t* cache, const int32_t* seen, int64_t kvStride, int64_t heads, int64_t d, float* out,
                int threads) {
  const float scale = 1.0f / std::sqrt(float(d));
  int64_t longest = 0, work = 0;
  for (int64_t i = 0; i < n; i++) {
    longest = std::max<int64_t>(longest, seen[i]);
    work += int64_t(seen[i]) * heads * d * 2;
  }
  if (work < kAttendRowsSerial) threads = 1;
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> p(longest);
    std::vector<float> acc(d);
#pragma omp for schedule(dynamic, 1) collapse(2)
    for (int64_t i = 0; i < n; i++) {
      for (int64_t h = 0; h < heads; h++) {
        const int32_t c = cache[i];
        attendHead(q + i * qStride + h * d, k[c] + h * d, v[c] + h * d, kvStride, seen[i], d, scale, p.data(),
                   acc.data(), out + i * heads * d + h * d);
      }
    }
  }
}

namespace {
inline uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
inline uint64_t hashAt(uint64_t seed, uint64_t i) { return mix(seed * 0x9e3779b97f4a7c15ull + (i + 1) * 0xd1b54a32d192ed03ull); }
}  // namespace

void randomTable(float* out, int64_t n, uint64_t seed, const float* table, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t b = 0; b < (n + 3) / 4; b++) {
    const uint64_t h = hashAt(seed, uint64_t(b));
    for (int64_t j = 0; j < 4 && 4 * b + j < n; j++) out[4 * b + j] = table[(h >> (16 * j)) & 0xffff];
  }
}

void randomTableBf16(uint16_t* out, int64_t n, uint64_t seed, const float* table, int threads) {
  uint16_t bits[65536];
  f32ToBf16(table, bits, 65536);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t b = 0; b < (n + 3) / 4; b++) {
    const uint64_t h = hashAt(seed, uint64_t(b));
    for (int64_t j = 0; j < 4 && 4 * b + j < n; j++) out[4 * b + j] = bits[(h >> (16 * j)) & 0xffff];
  }
}

void randomWords(uint32_t* out, int64_t n, uint64_t seed, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t b = 0; b < (n + 1) / 2; b++) {
    const uint64_t h = hashAt(seed, uint64_t(b));
    out[2 * b] = uint32_t(h);
    if (2 * b + 1 < n) out[2 * b + 1] = uint32_t(h >> 32);
  }
}

}  // namespace ynk
