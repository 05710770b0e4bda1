// Decode-time helpers: rotary embeddings, attention of new queries over a K/V cache, and random weights.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "vexp.h"
#include "wformat.h"
#include "pool.h"

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

#ifdef __AVX2__
// The sums of a0..a7 as one vector: lane u = Σ a_u (a transpose by horizontal adds, one per 8 dot products).
inline __m256 sum8(const __m256* a) {
  const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}
#endif

// The scaled scores p[j] = (qi · k_j)·scale of positions [0, seen) (keys at k + j·kvStride), returning their maximum.
// With AVX2 and d a multiple of 8, 8 positions at a time: 8 dot products accumulated side by side over d and summed by
// one transpose (a horizontal sum per position cost more than the products at d = 32); the last seen mod 8 positions
// one by one, each as a vector dot product.
inline float scores(const float* qi, const float* k, int64_t kvStride, int64_t seen, int64_t d, float scale, float* p) {
  int64_t j = 0;
  float m = -INFINITY;
#ifdef __AVX2__
  if (d % 8 == 0) {
    __m256 mv = _mm256_set1_ps(-INFINITY);
    const __m256 sv = _mm256_set1_ps(scale);
    for (; j + 8 <= seen; j += 8) {
      __m256 a[8];
      for (int u = 0; u < 8; u++) a[u] = _mm256_setzero_ps();
      for (int64_t t = 0; t < d; t += 8) {
        const __m256 qv = _mm256_loadu_ps(qi + t);
        for (int u = 0; u < 8; u++) a[u] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + (j + u) * kvStride + t), a[u]);
      }
      const __m256 s = _mm256_mul_ps(sum8(a), sv);
      _mm256_storeu_ps(p + j, s);
      mv = _mm256_max_ps(mv, s);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, mv);
    for (float l : lanes) m = std::max(m, l);
    for (; j < seen; j++) {
      __m256 a = _mm256_setzero_ps();
      for (int64_t t = 0; t < d; t += 8)
        a = _mm256_fmadd_ps(_mm256_loadu_ps(qi + t), _mm256_loadu_ps(k + j * kvStride + t), a);
      __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
      h = _mm_add_ps(h, _mm_movehl_ps(h, h));
      h = _mm_add_ss(h, _mm_movehdup_ps(h));
      p[j] = _mm_cvtss_f32(h) * scale;
      m = std::max(m, p[j]);
    }
    return m;
  }
#endif
  for (; j < seen; j++) {
    const float* kj = k + j * kvStride;
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t t = 0; t < d; t++) s += qi[t] * kj[t];
    s *= scale;
    p[j] = s;
    m = std::max(m, s);
  }
  return m;
}

// One (row, head) of causal attention: out[0, d) = softmax(qi·kᵀ·scale over positions [0, seen)) · v, for keys and
// values of that head at k + j·kvStride, v + j·kvStride; p [seen] and acc [d] are the caller's buffers. `attend` and
// `attendRows` both run it, so a row gets the same values from either.
inline void attendHead(const float* qi, const float* k, const float* v, int64_t kvStride, int64_t seen, int64_t d,
                       float scale, float* p, float* acc, float* out) {
  const float m = scores(qi, k, kvStride, seen, d, scale, p);
  // exp over vectors, then the sum (a reduction in the same loop kept the exp scalar)
#pragma omp simd
  for (int64_t j = 0; j < seen; j++) p[j] = vexp(p[j] - m);
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < seen; j++) sum += p[j];
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
// this loaded 2-core machine (measured with the one-position-at-a-time scores) two threads did not pay below it: 16
// rows of tiny-lfa at 150 positions, 2.3·2^18: 132 CPU µs / 151 wall on one thread, 151 / 203 on two; one 2B row at
// 400 positions, 6.3·2^18: 435 / 566 against 603 / 675; at 50·2^18 (16 2B rows at 200) two threads were level on the
// wall clock (8.5 against 8.8 ms).
constexpr int64_t kAttendRowsSerial = int64_t(1) << 21;

}  // namespace

void attend(const float* q, int64_t n, int64_t qStride, const float* k, const float* v, int64_t kvStride, int64_t start,
            int64_t heads, int64_t d, float* out, int threads) {
  const float scale = 1.0f / std::sqrt(float(d));
  const int64_t len = start + n;
  // about n·len·heads·d·2 multiply-adds
  if (n * len * heads * d * 2 < kAttendSerial) threads = 1;
  // a task's scratch: its scores [len], then (16-float aligned) its weighted sum of values [d]
  const int64_t at = (len + 15) / 16 * 16;
  parallelTasks(threads, heads * n, [&](int64_t t) {
    const int64_t h = t / n, i = t % n;
    float* p = taskScratch(at + d);
    attendHead(q + i * qStride + h * d, k + h * d, v + h * d, kvStride, start + i + 1, d, scale, p, p + at,
               out + i * heads * d + h * d);
  });
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
  // a task's scratch: its scores [longest], then (16-float aligned) its weighted sum of values [d]
  const int64_t at = (longest + 15) / 16 * 16;
  parallelTasks(threads, n * heads, [&](int64_t t) {
    const int64_t i = t / heads, h = t % heads;
    const int32_t c = cache[i];
    float* p = taskScratch(at + d);
    attendHead(q + i * qStride + h * d, k[c] + h * d, v[c] + h * d, kvStride, seen[i], d, scale, p, p + at,
               out + i * heads * d + h * d);
  });
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
