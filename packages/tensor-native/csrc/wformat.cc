// Linear layers over weights in their storage format. Decode (a few rows) reads every weight once and converts it in
// registers; prefill (many rows) converts tiles of the weight to fp32 and hands them to BLAS.
#include "wformat.h"
#include "pool.h"

#include "kernels.h"

#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

// AVX-512 VNNI on 256-bit registers (Zen 4, Ice Lake and later, where `-march` targets them): the batched GPTQ
// kernels' integer dot products by vpdpbusd / vpdpwssd, the same int32 sums as vpmaddubsw / vpmaddwd and their adds.
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define YNK_VNNI 1
#endif

namespace ynk {

namespace {

// Rows of x from which the BLAS path pays off (a prompt); below it the register kernels read W once per 4 rows, and a
// row's result does not depend on the other rows (a batched decode step gives each sequence what it gets alone).
constexpr int64_t kTileRows = 32;
// GPTQ's register path quantizes the activations: from 32 rows (prompts) the exact fp32 activations go through BLAS
// on dequantized tiles instead. Batched decode steps and batched short prompts of up to 31 rows keep the register path,
// so that, as for fp32 and bf16, a row's result below 32 rows does not depend on the other rows (a 16-row call on
// dequantized tiles cost 10x the register path's CPU at the 2B shapes).
constexpr int64_t kGptqTileRows = 32;

// Threads for a product of `macs` multiply-adds: one below 2^18 (a small layer; waking a second thread would cost more
// than it saves, and much more on a loaded machine, where the sleeping OpenMP worker waits for a time slice).
// One thread below 2^21 multiply-adds (about 0.1 ms of one core's work): waking the second OpenMP thread (PASSIVE
// waits) costs 10-65 us a region, so tiny-lfa's 16-row serving steps ran 1.8x slower on two threads than on one
// at the old 2^18; the 2B shapes (4M+ per row) still split.
inline int threadsFor(int threads, int64_t macs) { return macs < (int64_t(1) << 21) ? 1 : threads; }

// Threads of a pair of products (linear*Pair): as many as the larger product alone would take. Deciding on the summed
// work instead split tiny-lfa's 16-row serving steps (up and gate, 1M multiply-adds each) over two threads and cost
// 10% more CPU a step on this loaded 2-core machine; the 2B shapes split either way.
inline int pairThreads(int threads, int64_t n, int64_t outA, int64_t outB, int64_t in) {
  return threadsFor(threads, n * std::max(outA, outB) * in);
}

inline float bf16(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float half(uint16_t h) {
#ifdef __F16C__
  return _cvtsh_ss(h);
#else
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  float f;
  if (exp == 0) {
    f = std::ldexp(float(frac), -24);
  } else if (exp == 31) {
    f = frac ? NAN : INFINITY;
  } else {
    f = std::ldexp(float(frac | 0x400), int(exp) - 25);
  }
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u |= sign;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

// ---------------------------------------------------------------------------------------------------------------
// bf16 and fp32

#ifdef __AVX2__
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#endif

#ifdef __AVX512F__
// The horizontal sums of 16 accumulators v[m] of 16 lanes at once, each summed as `hsum(lo256 + hi256)` sums it (the
// same pairs in the same order, so the same bits as f32Rows): s[(m % 4)·4 + m / 4] = Σ v[m]. Four rounds of shuffles
// and adds (45 instructions) instead of 16 separate reductions (about 110); a lane only ever meets lanes of its own
// accumulator, so unused accumulators may hold anything.
__attribute__((always_inline)) inline void hsum16(const __m512* v, float* s) {
  __m512 c[8], e[4], g[2];
#pragma GCC unroll 8
  for (int k = 0; k < 8; k++)  // [A.lo256 + A.hi256 | B.lo256 + B.hi256]
    c[k] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0x44),
                         _mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0xEE));
#pragma GCC unroll 4
  for (int k = 0; k < 4; k++)  // 128-bit lane L: v[4k + L]'s lo128 + hi128
    e[k] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * k], c[2 * k + 1], 0x88),
                         _mm512_shuffle_f32x4(c[2 * k], c[2 * k + 1], 0xDD));
#pragma GCC unroll 2
  for (int k = 0; k < 2; k++) {  // per lane [s0 + s2, s1 + s3] of e[2k], then of e[2k + 1]
    const __m512d a = _mm512_castps_pd(e[2 * k]), b = _mm512_castps_pd(e[2 * k + 1]);
    g[k] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  _mm512_storeu_ps(s, _mm512_add_ps(_mm512_shuffle_ps(g[0], g[1], 0x88), _mm512_shuffle_ps(g[0], g[1], 0xDD)));
}
#endif

// Dot products of W rows [o0, o0 + W) with R rows of x, given x split into even and odd inputs (xe, xo of length in/2
// per row; a 32-bit word of W holds one even and one odd bf16: even = word << 16, odd = word & 0xffff0000). Even and odd
// products accumulate separately (2·R·W FMA chains side by side; one chain per row is latency-bound), and W shrinks
// as R grows so that the chains fit in the 16 registers. Every (row of W, row of x) sum is formed the same way
// whatever R and W, so a row's result does not depend on the batch.
template <int R, int W>
void bf16Rows(const float* const* xe, const float* const* xo, const float* const* x, const uint16_t* w, int64_t in,
              int64_t o0, int64_t out, float* y) {
  const int64_t pairs = in / 2;
  int64_t i = 0;
  float acc[W][R] = {};
#ifdef __AVX2__
  __m256 a[W][R], b[W][R];
  for (int u = 0; u < W; u++)
    for (int r = 0; r < R; r++) a[u][r] = b[u][r] = _mm256_setzero_ps();
  const __m256i hi = _mm256_set1_epi32(int(0xffff0000u));
  for (; i + 8 <= pairs; i += 8) {
    __m256 e[W], o[W];
    for (int u = 0; u < W; u++) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + (o0 + u) * in + 2 * i));
      e[u] = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
      o[u] = _mm256_castsi256_ps(_mm256_and_si256(v, hi));
    }
    for (int r = 0; r < R; r++) {
      const __m256 xe8 = _mm256_loadu_ps(xe[r] + i), xo8 = _mm256_loadu_ps(xo[r] + i);
      for (int u = 0; u < W; u++) {
        a[u][r] = _mm256_fmadd_ps(e[u], xe8, a[u][r]);
        b[u][r] = _mm256_fmadd_ps(o[u], xo8, b[u][r]);
      }
    }
  }
  for (int u = 0; u < W; u++)
    for (int r = 0; r < R; r++) acc[u][r] = hsum(_mm256_add_ps(a[u][r], b[u][r]));
#endif
  for (int u = 0; u < W; u++) {
    const uint16_t* row = w + (o0 + u) * in;
    for (int r = 0; r < R; r++) {
      float s = acc[u][r];
      for (int64_t j = 2 * i; j < in; j++) s += bf16(row[j]) * x[r][j];
      y[r * out + o0 + u] = s;
    }
  }
}

#ifdef __AVX512F__
// The loop of the 2–4-row kernels on 16-lane registers (f32Rows4Wide, bf16Rows4Wide): rows [o0, o0 + 4) of W with R
// rows of x in 16 accumulators, `steps` steps of 16 inputs; `loadW(u, k)` gives step k of W row o0 + u and `xAt(r,
// k)` the 16 inputs of x row r; every loaded vector is pinned in a register (GCC otherwise re-loads each W vector for
// every FMA, and 16-lane loads, one a cycle on Zen 4, bound the loop at a third of the FMA rate). Then hsum16, and
// `tail(u, r, sum)` adds the inputs past the last whole step. Lane l of an accumulator sums what the one-row kernel's
// first (l < 8) or second 8-lane chain sums, so with the same tail each row gets that kernel's bits.
template <int R, class LoadW, class XAt, class Tail>
__attribute__((always_inline)) inline void rows4Wide(int64_t steps, const LoadW& loadW, const XAt& xAt,
                                                      const Tail& tail, int64_t o0, int64_t out, float* y) {
  __m512 v[16];
#pragma GCC unroll 16
  for (int m = 0; m < 16; m++) v[m] = _mm512_setzero_ps();
  for (int64_t k = 0; k < steps; k++) {
    __m512 p[4];
#pragma GCC unroll 4
    for (int u = 0; u < 4; u++) {
      p[u] = loadW(u, k);
      asm("" : "+v"(p[u]));
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      __m512 xv = _mm512_loadu_ps(xAt(r, k));
      asm("" : "+v"(xv));
#pragma GCC unroll 4
      for (int u = 0; u < 4; u++) v[r * 4 + u] = _mm512_fmadd_ps(p[u], xv, v[r * 4 + u]);
    }
  }
  alignas(64) float s[16];
  hsum16(v, s);
  for (int u = 0; u < 4; u++)
    for (int r = 0; r < R; r++) y[r * out + o0 + u] = tail(u, r, s[u * 4 + r]);
}

// bf16 rows [o0, o0 + 4) of W with R = 2..4 rows of x: a W vector is 8 words (8 pairs) in both halves, lanes 0–7
// their even bf16 and lanes 8–15 their odd ones, and xb holds each row's pairs in blocks of 8 as [8 even | 8 odd]
// inputs, so lane l is bf16Rows's a (l < 8) or b chain.
template <int R>
void bf16Rows4Wide(const float* const* xb, const float* const* x, const uint16_t* w, int64_t in, int64_t o0,
                   int64_t out, float* y) {
  const int64_t steps = in / 2 / 8;
  const __m512i hi = _mm512_set1_epi32(int(0xffff0000u));
  const uint16_t* w0 = w + o0 * in;
  const auto loadW = [&](int u, int64_t k) {
    const __m512i t = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w0 + u * in + 16 * k)));
    return _mm512_castsi512_ps(_mm512_mask_and_epi32(_mm512_slli_epi32(t, 16), 0xFF00, t, hi));
  };
  const auto xAt = [&](int r, int64_t k) { return xb[r] + 16 * k; };
  const auto tail = [&](int u, int r, float t) {
    const uint16_t* row = w0 + u * in;
    for (int64_t j = 16 * steps; j < in; j++) t += bf16(row[j]) * x[r][j];
    return t;
  };
  rows4Wide<R>(steps, loadW, xAt, tail, o0, out, y);
}
#endif

template <int R>
void bf16Block(const float* const* xe, const float* const* xo, const float* const* xb, const float* const* x,
               const uint16_t* w, int64_t in, int64_t r0, int64_t r1, int64_t out, float* y) {
  int64_t o = r0;
#ifdef __AVX512F__
  if constexpr (R > 1)
    for (; o + 4 <= r1; o += 4) bf16Rows4Wide<R>(xb, x, w, in, o, out, y);
#else
  (void)xb;
#endif
  constexpr int W = R == 1 ? 4 : R == 2 ? 2 : 1;
  for (; o + W <= r1; o += W) bf16Rows<R, W>(xe, xo, x, w, in, o, out, y);
  for (; o < r1; o++) bf16Rows<R, 1>(xe, xo, x, w, in, o, out, y);
}

// fp32 rows [o0, o0 + W) of W with R rows of x (n < 16: BLAS's GEMM is slow for so few rows, and GEMV would read W once
// per row; one kernel for 1..31 rows also gives each row the same sums whatever the batch); accumulators as for bf16.
template <int R, int W>
void f32Rows(const float* const* x, const float* w, int64_t in, int64_t o0, int64_t out, float* y) {
  int64_t i = 0;
  float acc[W][R] = {};
#ifdef __AVX2__
  __m256 a[W][R], b[W][R];
  for (int u = 0; u < W; u++)
    for (int r = 0; r < R; r++) a[u][r] = b[u][r] = _mm256_setzero_ps();
  for (; i + 16 <= in; i += 16) {
    __m256 p[W], q[W];
    for (int u = 0; u < W; u++) {
      p[u] = _mm256_loadu_ps(w + (o0 + u) * in + i);
      q[u] = _mm256_loadu_ps(w + (o0 + u) * in + i + 8);
    }
    for (int r = 0; r < R; r++) {
      const __m256 x0 = _mm256_loadu_ps(x[r] + i), x1 = _mm256_loadu_ps(x[r] + i + 8);
      for (int u = 0; u < W; u++) {
        a[u][r] = _mm256_fmadd_ps(p[u], x0, a[u][r]);
        b[u][r] = _mm256_fmadd_ps(q[u], x1, b[u][r]);
      }
    }
  }
  for (int u = 0; u < W; u++)
    for (int r = 0; r < R; r++) acc[u][r] = hsum(_mm256_add_ps(a[u][r], b[u][r]));
#endif
  for (int u = 0; u < W; u++) {
    const float* row = w + (o0 + u) * in;
    for (int r = 0; r < R; r++) {
      float s = acc[u][r];
      for (int64_t j = i; j < in; j++) s += row[j] * x[r][j];
      y[r * out + o0 + u] = s;
    }
  }
}

#ifdef __AVX512F__
// fp32 rows [o0, o0 + 4) of W with R = 2..4 rows of x (f32Rows with R = 4 loads 10 vectors per 8 half-width FMAs).
template <int R>
void f32Rows4Wide(const float* const* x, const float* w, int64_t in, int64_t o0, int64_t out, float* y) {
  const int64_t steps = in / 16;
  const float* w0 = w + o0 * in;
  const auto loadW = [&](int u, int64_t k) { return _mm512_loadu_ps(w0 + u * in + 16 * k); };
  const auto xAt = [&](int r, int64_t k) { return x[r] + 16 * k; };
  const auto tail = [&](int u, int r, float t) {
    const float* row = w0 + u * in;
    for (int64_t j = 16 * steps; j < in; j++) t += row[j] * x[r][j];
    return t;
  };
  rows4Wide<R>(steps, loadW, xAt, tail, o0, out, y);
}
#endif

template <int R>
void f32Block(const float* const* x, const float* w, int64_t in, int64_t r0, int64_t r1, int64_t out, float* y) {
  int64_t o = r0;
#ifdef __AVX512F__
  if constexpr (R > 1)
    for (; o + 4 <= r1; o += 4) f32Rows4Wide<R>(x, w, in, o, out, y);
#endif
  constexpr int W = R == 1 ? 4 : R == 2 ? 2 : 1;
  for (; o + W <= r1; o += W) f32Rows<R, W>(x, w, in, o, out, y);
  for (; o < r1; o++) f32Rows<R, 1>(x, w, in, o, out, y);
}

// Output rows per task of the fp32 and bf16 register paths (taken dynamically by the threads).
constexpr int64_t kDenseTask = 16;
inline int64_t denseTasks(int64_t out) { return (out + kDenseTask - 1) / kDenseTask; }

// Task t of the fp32 register path: output rows [16t, 16t + 16) of y [n, out] for every row of x (blocks of 4 rows).
void f32Task(const float* const* xr, int64_t n, const float* w, int64_t out, int64_t in, int64_t t, float* y) {
  const int64_t r0 = t * kDenseTask, r1 = std::min(out, r0 + kDenseTask);
  for (int64_t b = 0; b < n; b += 4) {
    const int R = int(std::min<int64_t>(4, n - b));
    float* yb = y + b * out;
    switch (R) {
      case 1: f32Block<1>(xr + b, w, in, r0, r1, out, yb); break;
      case 2: f32Block<2>(xr + b, w, in, r0, r1, out, yb); break;
      case 3: f32Block<3>(xr + b, w, in, r0, r1, out, yb); break;
      default: f32Block<4>(xr + b, w, in, r0, r1, out, yb); break;
    }
  }
}

// The rows of x [n, in] split into their even and odd inputs (in/2 each) for the bf16 register kernels, and for 2+
// rows on AVX-512 (bf16Rows4Wide) also in blocks of 8 pairs as [8 even | 8 odd] (the pairs of whole blocks only).
struct EvenOdd {
  std::vector<float> split, blocked;
  std::vector<const float*> e, o, b, x;
  EvenOdd(const float* xs, int64_t n, int64_t in) : split(2 * n * (in / 2)), e(n), o(n), b(n), x(n) {
    const int64_t half = in / 2;
#ifdef __AVX512F__
    const int64_t whole = half / 8 * 8;
    if (n > 1) blocked.resize(n * 2 * whole);
#endif
    for (int64_t r = 0; r < n; r++) {
      float* er = split.data() + 2 * r * half;
      float* od = er + half;
      for (int64_t i = 0; i < half; i++) {
        er[i] = xs[r * in + 2 * i];
        od[i] = xs[r * in + 2 * i + 1];
      }
      e[r] = er;
      o[r] = od;
      x[r] = xs + r * in;
#ifdef __AVX512F__
      if (n > 1) {
        float* bl = blocked.data() + r * 2 * whole;
        for (int64_t i = 0; i < whole; i++) {
          bl[2 * (i / 8) * 8 + i % 8] = er[i];
          bl[2 * (i / 8) * 8 + 8 + i % 8] = od[i];
        }
        b[r] = bl;
      }
#endif
    }
  }
};

// Task t of the bf16 register path: output rows [16t, 16t + 16) of y [n, out] (blocks of 4 rows of x).
void bf16Task(const EvenOdd& xs, int64_t n, const uint16_t* w, int64_t out, int64_t in, int64_t t, float* y) {
  const int64_t r0 = t * kDenseTask, r1 = std::min(out, r0 + kDenseTask);
  for (int64_t b = 0; b < n; b += 4) {
    const int R = int(std::min<int64_t>(4, n - b));
    float* yb = y + b * out;
    const float* const* e = xs.e.data() + b;
    const float* const* o = xs.o.data() + b;
    const float* const* bl = xs.b.data() + b;
    const float* const* x = xs.x.data() + b;
    switch (R) {
      case 1: bf16Block<1>(e, o, bl, x, w, in, r0, r1, out, yb); break;
      case 2: bf16Block<2>(e, o, bl, x, w, in, r0, r1, out, yb); break;
      case 3: bf16Block<3>(e, o, bl, x, w, in, r0, r1, out, yb); break;
      default: bf16Block<4>(e, o, bl, x, w, in, r0, r1, out, yb); break;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// GPTQ

struct QuantRow {
  std::vector<int16_t> codes;  // [in]: int8-range codes for 4-bit weights, int16 for 8-bit
  std::vector<int32_t> pack;   // per packed row: 4-bit, the even and odd inputs' codes as 4 bytes each; 8-bit, see below
  std::vector<float> dx;       // per chunk
  std::vector<float> sx;       // per group: the sum of the dequantized activations
};

inline int64_t groupsOf(const Gptq& q) { return (q.in + q.group - 1) / q.group; }

// Inputs per activation chunk (one scale each): 4 packed rows of W for either width, 32 inputs of 4-bit weights and 16
// of 8-bit ones. A chunk's packed rows are read side by side, one stream each, at a stride of `out` words, which for
// the usual power-of-two widths maps them all to one L1 set; with the next chunk's rows prefetched, 4 rows keep 8 lines
// in that set (the L1's ways), where 8 rows of 8-bit weights (32 inputs) kept 16 and read W at 0.6–0.7 of memory
// speed on one thread (bench/README.md, "int8 and the L1 sets").
inline int64_t chunkInputs(const Gptq& q) { return q.bits == 4 ? 32 : 16; }

// Quantizes one row of activations (already permuted) in chunks of at most chunkInputs(q) inputs that do not cross a
// group.
void quantizeRow(const float* x, const Gptq& q, QuantRow& r) {
  const int64_t groups = groupsOf(q);
  const float top = q.bits == 4 ? 127.0f : 32767.0f;
  const int64_t size = chunkInputs(q);
  r.codes.resize(q.in);  // every code is written below
  r.dx.clear();
  r.sx.assign(groups, 0.0f);
  for (int64_t g = 0; g < groups; g++) {
    const int64_t k1 = std::min(q.in, (g + 1) * q.group);
    for (int64_t c0 = g * q.group; c0 < k1; c0 += size) {
      const int64_t c1 = std::min(k1, c0 + size);
#ifdef __AVX2__
      if (c1 - c0 == size) {
        // a full chunk (16 or 32 inputs) in vectors, the same values as the scalar loop below: max|x| (a NaN input
        // is skipped as std::max skips it), the codes rounded in the current mode (nearbyint), their exact int sum
        const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
        __m256 mv = _mm256_setzero_ps();
        for (int64_t k = c0; k < c1; k += 8) mv = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + k), absMask), mv);
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        const float m = _mm_cvtss_f32(h);
        const float dx = m / top;
        const __m256 inv = _mm256_set1_ps(m > 0 ? top / m : 0.0f);
        __m256i sum = _mm256_setzero_si256();
        for (int64_t k = c0; k < c1; k += 8) {
          const __m256i c = _mm256_cvtps_epi32(
              _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + k), inv), _MM_FROUND_CUR_DIRECTION));
          sum = _mm256_add_epi32(sum, c);
          const __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(c, c), 0x08);
          _mm_storeu_si128(reinterpret_cast<__m128i*>(&r.codes[k]), _mm256_castsi256_si128(p));
        }
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        r.dx.push_back(dx);
        r.sx[g] += dx * float(_mm_cvtsi128_si32(s4));
        continue;
      }
#endif
      float m = 0;
      for (int64_t k = c0; k < c1; k++) m = std::max(m, std::fabs(x[k]));
      const float dx = m / top;
      const float inv = m > 0 ? top / m : 0.0f;
      int32_t sum = 0;
      for (int64_t k = c0; k < c1; k++) {
        const int32_t c = int32_t(std::nearbyint(x[k] * inv));
        r.codes[k] = int16_t(c);
        sum += c;
      }
      r.dx.push_back(dx);
      r.sx[g] += dx * float(sum);
    }
  }
  if (q.bits == 4) {
    r.pack.assign(q.in / 4, 0);
    for (int64_t p = 0; p < q.in / 8; p++) {
      const int16_t* c = &r.codes[p * 8];
      uint32_t e = 0, o = 0;
      for (int b = 0; b < 4; b++) {
        e |= uint32_t(uint8_t(int8_t(c[2 * b]))) << (8 * b);
        o |= uint32_t(uint8_t(int8_t(c[2 * b + 1]))) << (8 * b);
      }
      r.pack[2 * p] = int32_t(e);
      r.pack[2 * p + 1] = int32_t(o);
    }
  } else {
    // per packed row of 4 inputs: inputs 0 and 2, and inputs 1 and 3, as two int16 pairs (the even and odd bytes of a
    // weight word widen to the same int16 lanes)
    r.pack.assign(q.in / 2, 0);
    for (int64_t p = 0; p < q.in / 4; p++) {
      const int16_t* c = &r.codes[p * 4];
      r.pack[2 * p] = int32_t(uint32_t(uint16_t(c[0])) | (uint32_t(uint16_t(c[2])) << 16));
      r.pack[2 * p + 1] = int32_t(uint32_t(uint16_t(c[1])) | (uint32_t(uint16_t(c[3])) << 16));
    }
  }
}

inline int32_t qAt(const Gptq& q, int64_t k, int64_t c) {
  const int per = 32 / q.bits;
  const uint32_t word = uint32_t(q.qweight[(k / per) * q.out + c]);
  return int32_t((word >> (q.bits * (k % per))) & ((1u << q.bits) - 1));
}

inline float zeroAt(const Gptq& q, int64_t g, int64_t c) {
  const int per = 32 / q.bits;
  const int64_t words = (q.out * q.bits + 31) / 32;
  const uint32_t word = uint32_t(q.qzeros[g * words + c / per]);
  return float(int32_t((word >> (q.bits * (c % per))) & ((1u << q.bits) - 1)) + q.zeroOffset);
}

// One output column of R rows, scalar (column tails, and CPUs without AVX2).
void gptqColumn(const Gptq& q, const QuantRow* xs, int R, int64_t c, float* y) {
  const int64_t groups = groupsOf(q), size = chunkInputs(q);
  for (int r = 0; r < R; r++) {
    int64_t chunk = 0;
    float total = 0;
    for (int64_t g = 0; g < groups; g++) {
      const int64_t k1 = std::min(q.in, (g + 1) * q.group);
      float acc = 0;
      for (int64_t c0 = g * q.group; c0 < k1; c0 += size, chunk++) {
        int32_t dot = 0;
        for (int64_t k = c0; k < std::min(k1, c0 + size); k++) dot += qAt(q, k, c) * xs[r].codes[k];
        acc += float(dot) * xs[r].dx[chunk];
      }
      total += half(q.scales[g * q.out + c]) * (acc - zeroAt(q, g, c) * xs[r].sx[g]);
    }
    y[r * q.out + c] = total;
  }
}

#ifdef __AVX2__
inline __m256 scales8(const Gptq& q, int64_t g, int64_t c0) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q.scales + g * q.out + c0)));
}

inline __m256 zeros8(const Gptq& q, int64_t g, int64_t c0) {
  const int64_t words = (q.out * q.bits + 31) / 32;
  __m256i z;
  if (q.bits == 4) {
    const __m256i w = _mm256_set1_epi32(q.qzeros[g * words + c0 / 8]);
    z = _mm256_and_si256(_mm256_srlv_epi32(w, _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)), _mm256_set1_epi32(15));
  } else {
    z = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q.qzeros + g * words + c0 / 4)));
  }
  return _mm256_cvtepi32_ps(_mm256_add_epi32(z, _mm256_set1_epi32(q.zeroOffset)));
}

// The register path streams W chunk by chunk: for a chunk of packed rows [p, pe) (at most 4, inside one group)
// it walks the task's columns left to right, so the few rows of a chunk are read as contiguous streams (not one column
// block down all rows, whose stride of `out` words defeats the prefetchers), and the next chunk's rows are prefetched.
// facc [R][width] holds each column's fp32 sum of the group's chunks; at the group's end it is folded into y with the
// scale and zero point. Per column the arithmetic is the same whatever the loop order, so results do not depend on it.

inline void prefetchRows(const int32_t* base, int64_t rows, int64_t stride) {
  for (int64_t j = 0; j < rows; j++) _mm_prefetch(reinterpret_cast<const char*>(base + j * stride), _MM_HINT_T0);
}

// One chunk of 4-bit packed rows [p, pe) (pe − p ≤ 4), columns [c0, c0 + 8·vectors): per packed row, the low nibbles
// (inputs 0, 2, 4, 6) and the high nibbles (1, 3, 5, 7) are multiplied with the matching int8 activation bytes
// (vpmaddubsw: u8 × s8, pairs summed to int16; at most 4 packed rows = 8 products of |15·127·2| per int16 lane).
template <int R>
void gptq4Chunk(const Gptq& q, const QuantRow* xs, int64_t p, int64_t pe, int64_t chunk, int64_t c0, int64_t vectors,
                int64_t next, float* facc, int64_t width) {
  const __m256i nib = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
  __m256 dx[R];
  for (int r = 0; r < R; r++) dx[r] = _mm256_set1_ps(xs[r].dx[chunk]);
  const int32_t* base = q.qweight + p * q.out + c0;
  for (int64_t v = 0; v < vectors; v++) {
    if ((v & 1) == 0 && next > 0) prefetchRows(base + (pe - p) * q.out + 8 * v, next, q.out);
    __m256i acc[R];
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_si256();
    for (int64_t j = p; j < pe; j++) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + (j - p) * q.out + 8 * v));
      const __m256i lo = _mm256_and_si256(w, nib);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi32(w, 4), nib);
      for (int r = 0; r < R; r++) {
#ifdef YNK_VNNI
        // the same integer sum per column, straight into int32 lanes (one instruction a product instead of two)
        acc[r] = _mm256_dpbusd_epi32(acc[r], lo, _mm256_set1_epi32(xs[r].pack[2 * j]));
        acc[r] = _mm256_dpbusd_epi32(acc[r], hi, _mm256_set1_epi32(xs[r].pack[2 * j + 1]));
#else
        const __m256i e = _mm256_maddubs_epi16(lo, _mm256_set1_epi32(xs[r].pack[2 * j]));
        const __m256i o = _mm256_maddubs_epi16(hi, _mm256_set1_epi32(xs[r].pack[2 * j + 1]));
        acc[r] = _mm256_add_epi16(acc[r], _mm256_add_epi16(e, o));
#endif
      }
    }
    for (int r = 0; r < R; r++) {
      float* f = facc + r * width + 8 * v;
#ifdef YNK_VNNI
      const __m256 d = _mm256_cvtepi32_ps(acc[r]);
      (void)ones;
#else
      const __m256 d = _mm256_cvtepi32_ps(_mm256_madd_epi16(acc[r], ones));
#endif
      _mm256_storeu_ps(f, _mm256_fmadd_ps(d, dx[r], _mm256_loadu_ps(f)));
    }
  }
}

// One chunk of 8-bit packed rows [p, pe) (pe − p ≤ 4): a weight word's bytes 0 and 2, and 1 and 3, masked into int16
// lanes and multiplied with the matching int16 activation pairs (vpmaddwd), so each 32-bit lane sums one column (no
// shuffles); |255·32767·2| per product pair, 4 rows stay far inside int32.
template <int R>
void gptq8Chunk(const Gptq& q, const QuantRow* xs, int64_t p, int64_t pe, int64_t chunk, int64_t c0, int64_t vectors,
                int64_t next, float* facc, int64_t width) {
  const __m256i bytes = _mm256_set1_epi32(0x00ff00ff);
  __m256 dx[R];
  for (int r = 0; r < R; r++) dx[r] = _mm256_set1_ps(xs[r].dx[chunk]);
  const int32_t* base = q.qweight + p * q.out + c0;
  for (int64_t v = 0; v < vectors; v++) {
    if ((v & 1) == 0 && next > 0) prefetchRows(base + (pe - p) * q.out + 8 * v, next, q.out);
    __m256i a[R];
    for (int r = 0; r < R; r++) a[r] = _mm256_setzero_si256();
    for (int64_t j = p; j < pe; j++) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + (j - p) * q.out + 8 * v));
      const __m256i even = _mm256_and_si256(w, bytes);
      const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(w, 8), bytes);
      for (int r = 0; r < R; r++) {
#ifdef YNK_VNNI
        a[r] = _mm256_dpwssd_epi32(a[r], even, _mm256_set1_epi32(xs[r].pack[2 * j]));
        a[r] = _mm256_dpwssd_epi32(a[r], odd, _mm256_set1_epi32(xs[r].pack[2 * j + 1]));
#else
        const __m256i e = _mm256_madd_epi16(even, _mm256_set1_epi32(xs[r].pack[2 * j]));
        const __m256i o = _mm256_madd_epi16(odd, _mm256_set1_epi32(xs[r].pack[2 * j + 1]));
        a[r] = _mm256_add_epi32(a[r], _mm256_add_epi32(e, o));
#endif
      }
    }
    for (int r = 0; r < R; r++) {
      float* f = facc + r * width + 8 * v;
      _mm256_storeu_ps(f, _mm256_fmadd_ps(_mm256_cvtepi32_ps(a[r]), dx[r], _mm256_loadu_ps(f)));
    }
  }
}

// The column loop of the one-row chunk kernels (gptq4Chunk1, gptq8Chunk1): facc[c] += dx · dot(c) for the 8·vectors
// columns, two column vectors per step (two independent chains) and one at the tail, prefetching the next chunk's
// `next` rows `out` apart from `rows` + 4·out.
template <class Dot>
inline void chunk1Stripe(const Dot& dot, const int32_t* rows, int64_t out, int64_t vectors, int64_t next, __m256 dx,
                         float* facc) {
  int64_t v = 0;
  for (; v + 2 <= vectors; v += 2) {
    if (next > 0) prefetchRows(rows + 4 * out + 8 * v, next, out);
    const __m256 d0 = dot(8 * v), d1 = dot(8 * v + 8);
    float* f = facc + 8 * v;
    _mm256_storeu_ps(f, _mm256_fmadd_ps(d0, dx, _mm256_loadu_ps(f)));
    _mm256_storeu_ps(f + 8, _mm256_fmadd_ps(d1, dx, _mm256_loadu_ps(f + 8)));
  }
  for (; v < vectors; v++) {
    if (next > 0) prefetchRows(rows + 4 * out + 8 * v, next, out);
    float* f = facc + 8 * v;
    _mm256_storeu_ps(f, _mm256_fmadd_ps(dot(8 * v), dx, _mm256_loadu_ps(f)));
  }
}

// One row, a full chunk of 4-bit packed rows (32 inputs: pe − p = 4): the arithmetic of gptq4Chunk<1> (the same int16
// sums, so the same fp32 result bit for bit), with the chunk's 8 activation words broadcast once into registers instead
// of once per column vector, the 4 rows unrolled and two column vectors per step (two independent int16 chains).
void gptq4Chunk1(const Gptq& q, const QuantRow& x, int64_t p, int64_t chunk, int64_t c0, int64_t vectors, int64_t next,
                 float* facc) {
  const __m256i nib = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
  const __m256 dx = _mm256_set1_ps(x.dx[chunk]);
  const int32_t* pk = x.pack.data() + 2 * p;
  const __m256i e0 = _mm256_set1_epi32(pk[0]), o0 = _mm256_set1_epi32(pk[1]);
  const __m256i e1 = _mm256_set1_epi32(pk[2]), o1 = _mm256_set1_epi32(pk[3]);
  const __m256i e2 = _mm256_set1_epi32(pk[4]), o2 = _mm256_set1_epi32(pk[5]);
  const __m256i e3 = _mm256_set1_epi32(pk[6]), o3 = _mm256_set1_epi32(pk[7]);
  const int64_t out = q.out;
  const int32_t* r0 = q.qweight + p * out + c0;
  const int32_t* r1 = r0 + out;
  const int32_t* r2 = r1 + out;
  const int32_t* r3 = r2 + out;
  auto dot = [&](int64_t off) {
    auto row = [&](const int32_t* r, __m256i e, __m256i o) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + off));
      return _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(w, nib), e),
                              _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi32(w, 4), nib), o));
    };
    const __m256i a = _mm256_add_epi16(_mm256_add_epi16(row(r0, e0, o0), row(r1, e1, o1)),
                                       _mm256_add_epi16(row(r2, e2, o2), row(r3, e3, o3)));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(a, ones));
  };
  chunk1Stripe(dot, r0, out, vectors, next, dx, facc);
}

#ifdef YNK_VNNI
// Two rows, a full chunk of packed rows (pe − p = 4: 32 inputs at 4 bits, 16 at 8): gptq4Chunk<2>'s / gptq8Chunk<2>'s
// VNNI arithmetic (the same int32 sums, so the same results), with both rows' 16 activation words broadcast once per
// chunk into registers instead of once per column vector. Each weight word is split as those kernels split it (low and
// high nibbles, `vpdpbusd`; bytes 0, 2 and 1, 3, `vpdpwssd`). `prefetch` is false for a second pair of rows over the
// same chunk (its columns are in L1).
template <int Bits>
void gptqChunk2(const Gptq& q, const QuantRow* xs, int64_t p, int64_t chunk, int64_t c0, int64_t vectors, int64_t next,
                float* facc, int64_t width, bool prefetch) {
  const __m256i mask = Bits == 4 ? _mm256_set1_epi8(15) : _mm256_set1_epi32(0x00ff00ff);
  const __m256 dx0 = _mm256_set1_ps(xs[0].dx[chunk]), dx1 = _mm256_set1_ps(xs[1].dx[chunk]);
  const int32_t* a = xs[0].pack.data() + 2 * p;
  const int32_t* b = xs[1].pack.data() + 2 * p;
  __m256i ea[4], oa[4], eb[4], ob[4];
  for (int j = 0; j < 4; j++) {
    ea[j] = _mm256_set1_epi32(a[2 * j]);
    oa[j] = _mm256_set1_epi32(a[2 * j + 1]);
    eb[j] = _mm256_set1_epi32(b[2 * j]);
    ob[j] = _mm256_set1_epi32(b[2 * j + 1]);
  }
  const auto dot = [](__m256i acc, __m256i w, __m256i x) {
    if constexpr (Bits == 4) return _mm256_dpbusd_epi32(acc, w, x);
    else return _mm256_dpwssd_epi32(acc, w, x);
  };
  const int64_t out = q.out;
  const int32_t* base = q.qweight + p * out + c0;
  for (int64_t v = 0; v < vectors; v++) {
    if (prefetch && (v & 1) == 0 && next > 0) prefetchRows(base + 4 * out + 8 * v, next, out);
    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + j * out + 8 * v));
      const __m256i even = _mm256_and_si256(w, mask);
      const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(w, Bits), mask);
      s0 = dot(dot(s0, even, ea[j]), odd, oa[j]);
      s1 = dot(dot(s1, even, eb[j]), odd, ob[j]);
    }
    float* f0 = facc + 8 * v;
    float* f1 = facc + width + 8 * v;
    _mm256_storeu_ps(f0, _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), dx0, _mm256_loadu_ps(f0)));
    _mm256_storeu_ps(f1, _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), dx1, _mm256_loadu_ps(f1)));
  }
}
#endif

// One row, a full chunk of 8-bit packed rows (16 inputs: pe − p = 4): gptq8Chunk<1>'s arithmetic (exact int32 sums, so
// the same result), the 8 activation words broadcast once per chunk, the rows unrolled.
void gptq8Chunk1(const Gptq& q, const QuantRow& x, int64_t p, int64_t chunk, int64_t c0, int64_t vectors, int64_t next,
                 float* facc) {
  const __m256i low = _mm256_set1_epi16(0x00ff);
  const __m256 dx = _mm256_set1_ps(x.dx[chunk]);
  const int32_t* pk = x.pack.data() + 2 * p;
  const int64_t out = q.out;
  const int32_t* base = q.qweight + p * out + c0;
  // bytes 0 and 2 of a word are its 16-bit lanes' low bytes (masked), bytes 1 and 3 their high bytes (shifted down)
  auto dot = [&](int64_t off) {
    __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + j * out + off));
      a = _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_and_si256(w, low), _mm256_set1_epi32(pk[2 * j])));
      b = _mm256_add_epi32(b, _mm256_madd_epi16(_mm256_srli_epi16(w, 8), _mm256_set1_epi32(pk[2 * j + 1])));
    }
    return _mm256_cvtepi32_ps(_mm256_add_epi32(a, b));
  };
  chunk1Stripe(dot, base, out, vectors, next, dx, facc);
}

// Columns [c0, c0 + 8·vectors) of R rows, all groups: y[r][c] = Σ_g s[g][c]·(facc_g[r][c] − z[g][c]·sx[r][g]).
template <int R>
void gptqStripe(const Gptq& q, const QuantRow* xs, int64_t c0, int64_t vectors, float* facc, float* y) {
  const int64_t groups = groupsOf(q);
  const int per = 32 / q.bits;
  const int64_t rowsPerChunk = chunkInputs(q) / per;  // 4
  const int64_t width = 8 * vectors;
  const int64_t packedRows = q.in / per;
  int64_t chunk = 0;
  for (int r = 0; r < R; r++) std::fill(y + r * q.out + c0, y + r * q.out + c0 + width, 0.0f);
  for (int64_t g = 0; g < groups; g++) {
    std::fill(facc, facc + R * width, 0.0f);
    const int64_t p0 = g * q.group / per, p1 = std::min(q.in, (g + 1) * q.group) / per;
    for (int64_t p = p0; p < p1; p += rowsPerChunk, chunk++) {
      const int64_t pe = std::min(p1, p + rowsPerChunk);
      const int64_t next = std::min(packedRows - pe, rowsPerChunk);
      if (R == 1 && pe - p == rowsPerChunk) {
        if (q.bits == 4) gptq4Chunk1(q, xs[0], p, chunk, c0, vectors, next, facc);
        else gptq8Chunk1(q, xs[0], p, chunk, c0, vectors, next, facc);
#ifdef YNK_VNNI
      } else if (R >= 2 && pe - p == rowsPerChunk) {
        // pairs of rows (a third row alone), the later ones over the chunk's columns while they are in L1
        for (int r = 0; r + 1 < R; r += 2) {
          if (q.bits == 4) gptqChunk2<4>(q, xs + r, p, chunk, c0, vectors, next, facc + r * width, width, r == 0);
          else gptqChunk2<8>(q, xs + r, p, chunk, c0, vectors, next, facc + r * width, width, r == 0);
        }
        if (R == 3 && q.bits == 4) gptq4Chunk1(q, xs[2], p, chunk, c0, vectors, 0, facc + 2 * width);
        if (R == 3 && q.bits == 8) gptq8Chunk1(q, xs[2], p, chunk, c0, vectors, 0, facc + 2 * width);
#endif
      } else if (q.bits == 4) {
        gptq4Chunk<R>(q, xs, p, pe, chunk, c0, vectors, next, facc, width);
      } else {
        gptq8Chunk<R>(q, xs, p, pe, chunk, c0, vectors, next, facc, width);
      }
    }
    for (int64_t v = 0; v < vectors; v++) {
      const int64_t c = c0 + 8 * v;
      const __m256 s = scales8(q, g, c), z = zeros8(q, g, c);
      for (int r = 0; r < R; r++) {
        float* yr = y + r * q.out + c;
        const __m256 t = _mm256_fnmadd_ps(z, _mm256_set1_ps(xs[r].sx[g]), _mm256_loadu_ps(facc + r * width + 8 * v));
        _mm256_storeu_ps(yr, _mm256_fmadd_ps(s, t, _mm256_loadu_ps(yr)));
      }
    }
  }
}
#endif

// Columns [c0, c1) of R rows (R ≤ 4); facc has room for R × (c1 − c0) floats.
void gptqColumns(const Gptq& q, const QuantRow* xs, int R, int64_t c0, int64_t c1, float* facc, float* y) {
  int64_t c = c0;
#ifdef __AVX2__
  const int64_t vectors = (c1 - c0) / 8;
  if (vectors > 0) {
    switch (R) {
      case 1: gptqStripe<1>(q, xs, c, vectors, facc, y); break;
      case 2: gptqStripe<2>(q, xs, c, vectors, facc, y); break;
      case 3: gptqStripe<3>(q, xs, c, vectors, facc, y); break;
      default: gptqStripe<4>(q, xs, c, vectors, facc, y); break;
    }
    c += 8 * vectors;
  }
#endif
  (void)facc;
  for (; c < c1; c++) gptqColumn(q, xs, R, c, y);
}

}  // namespace

void bf16ToF32(const uint16_t* src, float* dst, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) dst[i] = bf16(src[i]);
}

void f32ToBf16(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    uint32_t u;
    std::memcpy(&u, &src[i], 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu)) dst[i] = uint16_t((u >> 16) | 0x40);
    else dst[i] = uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
}

void linearF32(const float* x, int64_t n, const float* w, int64_t out, int64_t in, float* y, int threads) {
  threads = threadsFor(threads, n * out * in);
  if (n >= kTileRows) {
    // blocks of output rows on our threads, OpenBLAS single-threaded in each (its own pool would spin beside them)
    SingleThreadedBlas single(threads > 1);
    const int64_t rows = 256, blocks = (out + rows - 1) / rows;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t b = 0; b < blocks; b++) {
      const int64_t r0 = b * rows, m = std::min(rows, out - r0);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(m), int(in), 1.0f, x, int(in), w + r0 * in,
                  int(in), 0.0f, y + r0, int(out));
    }
    return;
  }
  std::vector<const float*> xr(n);
  for (int64_t r = 0; r < n; r++) xr[r] = x + r * in;
  parallelTasks(threads, denseTasks(out), [&](int64_t t) { f32Task(xr.data(), n, w, out, in, t, y); });
}

void linearBf16(const float* x, int64_t n, const uint16_t* w, int64_t out, int64_t in, float* y, int threads) {
  threads = threadsFor(threads, n * out * in);
  if (n >= kTileRows) {
    // blocks of 64 rows of W converted to fp32 and multiplied by BLAS (single-threaded) on our threads
    SingleThreadedBlas single(threads > 1);
    const int64_t rows = 64, blocks = (out + rows - 1) / rows;
#pragma omp parallel num_threads(threads)
    {
      std::vector<float> tile(rows * in);
#pragma omp for schedule(dynamic, 1)
      for (int64_t b = 0; b < blocks; b++) {
        const int64_t r0 = b * rows, m = std::min(rows, out - r0);
        bf16ToF32(w + r0 * in, tile.data(), m * in);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(m), int(in), 1.0f, x, int(in), tile.data(),
                    int(in), 0.0f, y + r0, int(out));
      }
    }
    return;
  }
  const EvenOdd xs(x, n, in);
  parallelTasks(threads, denseTasks(out), [&](int64_t t) { bf16Task(xs, n, w, out, in, t, y); });
}

namespace {

// Packed rows [p0, p1) and columns [c0, c1) of a GPTQ weight (inputs [p0·per, p1·per) in packed, i.e. group, order)
// dequantized into wt (row stride ld): wt[(k − p0·per)·ld + c − c0] = (q[k][c] − z[g][c])·s[g][c] in fp32 (exact: a
// code difference of at most 9 bits times an 11-bit fp16 scale). zf and sf [c1 − c0] hold the current group's zero
// points and scales (a packed row never crosses a group: group is a multiple of per); each packed word is loaded once
// for its `per` inputs, and rows are written left to right (contiguous reads of qweight).
void dequantGptqRows(const Gptq& q, int64_t p0, int64_t p1, int64_t c0, int64_t c1, float* wt, int64_t ld, float* zf,
                     float* sf) {
  const int per = 32 / q.bits;
  const uint32_t mask = (1u << q.bits) - 1;
  const int64_t width = c1 - c0;
  int64_t loaded = -1;
  for (int64_t p = p0; p < p1; p++) {
    const int64_t g = p * per / q.group;
    if (g != loaded) {
      for (int64_t c = c0; c < c1; c++) {
        zf[c - c0] = zeroAt(q, g, c);
        sf[c - c0] = half(q.scales[g * q.out + c]);
      }
      loaded = g;
    }
    const int32_t* row = q.qweight + p * q.out + c0;
    float* dst = wt + (p - p0) * per * ld;
    int64_t c = 0;
#ifdef __AVX2__
    const __m256i m = _mm256_set1_epi32(int(mask));
    for (; c + 8 <= width; c += 8) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + c));
      const __m256 z = _mm256_loadu_ps(zf + c), s = _mm256_loadu_ps(sf + c);
      for (int j = 0; j < per; j++) {
        const __m256i u = _mm256_and_si256(_mm256_srl_epi32(w, _mm_cvtsi32_si128(q.bits * j)), m);
        _mm256_storeu_ps(dst + j * ld + c, _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(u), z), s));
      }
    }
#endif
    for (; c < width; c++) {
      const uint32_t w = uint32_t(row[c]);
      for (int j = 0; j < per; j++) dst[j * ld + c] = (float(int32_t((w >> (q.bits * j)) & mask)) - zf[c]) * sf[c];
    }
  }
}

// Columns per tile of the prompt path of linearGptq: a multiple of 8 between 64 and 512, as many as fit 8 MB of fp32
// per thread (in × tile floats): 256 at in = 8192, 512 at in = 2048. At n = 512 tiles of 256 columns ran 1.1–1.2×
// faster per CPU-second than tiles of 64 (2048 × 8192 and 8192 × 2048, int8).
inline int64_t promptTile(int64_t in) {
  const int64_t fit = (int64_t(8) << 20) / (4 * in) / 8 * 8;
  return std::max<int64_t>(64, std::min<int64_t>(512, fit));
}

}  // namespace

void dequantGptq(const Gptq& q, int64_t c0, int64_t c1, float* wt) {
  std::vector<float> zf(c1 - c0), sf(c1 - c0);
  dequantGptqRows(q, 0, q.in / (32 / q.bits), c0, c1, wt, c1 - c0, zf.data(), sf.data());
}

namespace {

// Input-gradient tiles: inputs per tile of the GPTQ and bf16 kernels, a multiple of 8 (so of every `per`) between 64
// and 512, as many as fit 8 MB of fp32 per thread (tile × out floats): 256 at out = 8192, 512 at out = 2048, never all
// of W. Tiles of 256 and 512 inputs ran BLAS 1.2–1.3× faster per CPU-second than tiles of 64 (2048 × 8192, 512 rows).
inline int64_t gradTile(int64_t out) {
  const int64_t fit = (int64_t(8) << 20) / (4 * out) / 8 * 8;
  return std::max<int64_t>(64, std::min<int64_t>(512, fit));
}

}  // namespace

void linearGptqGradInput(const float* dy, int64_t n, const Gptq& q, float* dx, int threads) {
  threads = threadsFor(threads, n * q.out * q.in);
  const int per = 32 / q.bits;
  const int64_t tileIn = gradTile(q.out);
  const int64_t tiles = (q.in + tileIn - 1) / tileIn;
  SingleThreadedBlas single(threads > 1);
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> tile(tileIn * q.out), zf(q.out), sf(q.out);
    std::vector<float> part(q.perm ? n * tileIn : 0);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tiles; t++) {
      const int64_t k0 = t * tileIn, k1 = std::min(q.in, k0 + tileIn), m = k1 - k0;
      dequantGptqRows(q, k0 / per, k1 / per, 0, q.out, tile.data(), q.out, zf.data(), sf.data());
      // dx[:, k0:k1] (packed order) = dy [n, out] · tileᵀ; with act-order, into `part` and scattered to the inputs
      float* dst = q.perm ? part.data() : dx + k0;
      const int64_t ld = q.perm ? m : q.in;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(m), int(q.out), 1.0f, dy, int(q.out),
                  tile.data(), int(q.out), 0.0f, dst, int(ld));
      if (q.perm)
        for (int64_t r = 0; r < n; r++)
          for (int64_t j = 0; j < m; j++) dx[r * q.in + q.perm[k0 + j]] = part[r * m + j];
    }
  }
}

void linearBf16GradInput(const float* dy, int64_t n, const uint16_t* w, int64_t out, int64_t in, float* dx,
                         int threads) {
  threads = threadsFor(threads, n * out * in);
  const int64_t tileIn = gradTile(out);
  const int64_t tiles = (in + tileIn - 1) / tileIn;
  SingleThreadedBlas single(threads > 1);
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> tile(out * tileIn);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tiles; t++) {
      // columns [k0, k1) of W [out, in] widened to fp32 as tile [out, m]; dx[:, k0:k1] = dy [n, out] · tile
      const int64_t k0 = t * tileIn, m = std::min(in, k0 + tileIn) - k0;
      for (int64_t o = 0; o < out; o++) bf16ToF32(w + o * in + k0, tile.data() + o * m, m);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(m), int(out), 1.0f, dy, int(out), tile.data(),
                  int(m), 0.0f, dx + k0, int(in));
    }
  }
}

void linearF32GradInput(const float* dy, int64_t n, const float* w, int64_t out, int64_t in, float* dx, int threads) {
  threads = threadsFor(threads, n * out * in);
  // column blocks of dx on our threads, OpenBLAS single-threaded in each (as linearF32)
  const int64_t cols = 256, blocks = (in + cols - 1) / cols;
  SingleThreadedBlas single(threads > 1);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t b = 0; b < blocks; b++) {
    const int64_t k0 = b * cols, m = std::min(cols, in - k0);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(m), int(out), 1.0f, dy, int(out), w + k0,
                int(in), 0.0f, dx + k0, int(in));
  }
}

namespace {

// x's rows [n, in] in q's packed-row order: gathered by q.perm into `permuted` (act-order), else x itself.
const float* permutedRows(const float* x, int64_t n, const Gptq& q, std::vector<float>& permuted) {
  if (!q.perm) return x;
  permuted.resize(n * q.in);
  for (int64_t r = 0; r < n; r++)
    for (int64_t k = 0; k < q.in; k++) permuted[r * q.in + k] = x[r * q.in + q.perm[k]];
  return permuted.data();
}

// The activations of the GPTQ register path: x's rows (permuted by q.perm into `permuted` when it has one) quantized
// into xs[0..n) for q's bits and groups.
void quantizeRows(const float* x, int64_t n, const Gptq& q, std::vector<float>& permuted, std::vector<QuantRow>& xs) {
  x = permutedRows(x, n, q, permuted);
  if (int64_t(xs.size()) < n) xs.resize(n);
  for (int64_t r = 0; r < n; r++) quantizeRow(x + r * q.in, q, xs[r]);
}

// Whether two GPTQ weights quantize the same input to the same codes: the same bits, input width, groups and
// permutation (quantizeRow reads nothing else of q).
bool sameActivations(const Gptq& a, const Gptq& b) {
  if (a.bits != b.bits || a.in != b.in || a.group != b.group || !a.perm != !b.perm) return false;
  return a.perm == b.perm || std::memcmp(a.perm, b.perm, size_t(a.in) * sizeof(int32_t)) == 0;
}

// Column stripes of the register path (a multiple of 8 wide) of up to 4096 columns, a multiple of `threads` of them:
// each chunk row is read as a run of up to 16 KB (narrow stripes, whose runs are short, read at half the speed), taken
// dynamically. A column's result does not depend on the stripe it is in (only the last out mod 8 columns take the
// scalar path, whatever the width).
int64_t stripeWidth(const Gptq& q, int threads) {
  const int64_t per = int64_t(threads) * ((q.out + int64_t(threads) * 4096 - 1) / (int64_t(threads) * 4096));
  return std::max<int64_t>(8, (q.out + per - 1) / per + 7) / 8 * 8;
}

// Stripe t (columns [t·width, t·width + width)) of y [n, out] for every row (blocks of 4 rows); facc holds 4·width.
void gptqTask(const Gptq& q, const QuantRow* rows, int64_t n, int64_t width, int64_t t, float* facc, float* y) {
  const int64_t c0 = t * width, c1 = std::min(q.out, c0 + width);
  for (int64_t b = 0; b < n; b += 4) {
    const int R = int(std::min<int64_t>(4, n - b));
    gptqColumns(q, rows + b, R, c0, c1, facc, y + b * q.out);
  }
}

// The prompt path of linearGptq (n ≥ 32 rows): tiles of columns of W dequantized to fp32 and multiplied by BLAS
// (single-threaded) on our threads; x already permuted.
void gptqPrompt(const float* x, int64_t n, const Gptq& q, float* y, int threads) {
  SingleThreadedBlas single(threads > 1);
  const int64_t cols = promptTile(q.in), tiles = (q.out + cols - 1) / cols;
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> tile(q.in * cols), zf(cols), sf(cols);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tiles; t++) {
      const int64_t c0 = t * cols, c1 = std::min(q.out, c0 + cols);
      dequantGptqRows(q, 0, q.in / (32 / q.bits), c0, c1, tile.data(), c1 - c0, zf.data(), sf.data());
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(c1 - c0), int(q.in), 1.0f, x, int(q.in),
                  tile.data(), int(c1 - c0), 0.0f, y + c0, int(q.out));
    }
  }
}

// The quantized activations of the register path, kept between calls (decode calls the products of a token from one
// thread): no allocation per call. Two sets, for the two weights of a pair whose activations differ.
std::vector<QuantRow>& quantBuffer(int which) {
  static thread_local std::vector<QuantRow> xs[2];
  return xs[which];
}

}  // namespace

void linearGptq(const float* x, int64_t n, const Gptq& q, float* y, int threads) {
  threads = threadsFor(threads, n * q.out * q.in);
  std::vector<float> permuted;
  if (n >= kGptqTileRows) {
    gptqPrompt(permutedRows(x, n, q, permuted), n, q, y, threads);
    return;
  }
  std::vector<QuantRow>& xs = quantBuffer(0);
  quantizeRows(x, n, q, permuted, xs);
  // the workers reach this thread's rows through a pointer (`xs` inside the region would name each worker's own)
  const QuantRow* rows = xs.data();
  const int64_t width = stripeWidth(q, threads);
  parallelTasks(threads, (q.out + width - 1) / width,
                [&](int64_t t) { gptqTask(q, rows, n, width, t, taskScratch(4 * width), y); });
}

void linearF32Pair(const float* x, int64_t n, const float* wa, int64_t outA, const float* wb, int64_t outB, int64_t in,
                   float* ya, float* yb, int threads) {
  if (n >= kTileRows) {
    linearF32(x, n, wa, outA, in, ya, threads);
    linearF32(x, n, wb, outB, in, yb, threads);
    return;
  }
  threads = pairThreads(threads, n, outA, outB, in);
  std::vector<const float*> xr(n);
  for (int64_t r = 0; r < n; r++) xr[r] = x + r * in;
  const int64_t tasksA = denseTasks(outA), tasks = tasksA + denseTasks(outB);
  parallelTasks(threads, tasks, [&](int64_t t) {
    if (t < tasksA) f32Task(xr.data(), n, wa, outA, in, t, ya);
    else f32Task(xr.data(), n, wb, outB, in, t - tasksA, yb);
  });
}

void linearBf16Pair(const float* x, int64_t n, const uint16_t* wa, int64_t outA, const uint16_t* wb, int64_t outB,
                    int64_t in, float* ya, float* yb, int threads) {
  if (n >= kTileRows) {
    linearBf16(x, n, wa, outA, in, ya, threads);
    linearBf16(x, n, wb, outB, in, yb, threads);
    return;
  }
  threads = pairThreads(threads, n, outA, outB, in);
  const EvenOdd xs(x, n, in);
  const int64_t tasksA = denseTasks(outA), tasks = tasksA + denseTasks(outB);
  parallelTasks(threads, tasks, [&](int64_t t) {
    if (t < tasksA) bf16Task(xs, n, wa, outA, in, t, ya);
    else bf16Task(xs, n, wb, outB, in, t - tasksA, yb);
  });
}

void linearGptqPair(const float* x, int64_t n, const Gptq& a, const Gptq& b, float* ya, float* yb, int threads) {
  if (n >= kGptqTileRows) {
    linearGptq(x, n, a, ya, threads);
    linearGptq(x, n, b, yb, threads);
    return;
  }
  threads = pairThreads(threads, n, a.out, b.out, a.in);
  std::vector<float> permutedA, permutedB;
  std::vector<QuantRow>& xa = quantBuffer(0);
  quantizeRows(x, n, a, permutedA, xa);
  const bool shared = sameActivations(a, b);
  std::vector<QuantRow>& xb = shared ? xa : quantBuffer(1);
  if (!shared) quantizeRows(x, n, b, permutedB, xb);
  const QuantRow* rowsA = xa.data();
  const QuantRow* rowsB = xb.data();
  const int64_t widthA = stripeWidth(a, threads), widthB = stripeWidth(b, threads);
  const int64_t tasksA = (a.out + widthA - 1) / widthA, tasks = tasksA + (b.out + widthB - 1) / widthB;
  parallelTasks(threads, tasks, [&](int64_t t) {
    float* facc = taskScratch(4 * std::max(widthA, widthB));
    if (t < tasksA) gptqTask(a, rowsA, n, widthA, t, facc, ya);
    else gptqTask(b, rowsB, n, widthB, t - tasksA, facc, yb);
  });
}

}  // namespace ynk
