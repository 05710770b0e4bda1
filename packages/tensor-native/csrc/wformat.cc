// Linear layers over weights in their storage format. Decode (a few rows) reads every weight once and converts it in
// registers; prefill (many rows) converts tiles of the weight to fp32 and hands them to BLAS.
#include "wformat.h"

#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace ynk {

namespace {

constexpr int64_t kTileRows = 16;  // rows of x from which the BLAS path pays off

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

// Dot products of W rows [o0, o0 + 2) (or 1) with R rows of x, given x split into even and odd inputs (xe, xo of
// length in/2 per row; a 32-bit word of W holds one even and one odd bf16: even = word << 16, odd = word & 0xffff0000).
template <int R, int W>
void bf16Rows(const float* const* xe, const float* const* xo, const float* const* x, const uint16_t* w, int64_t in,
              int64_t o0, int64_t out, float* y) {
  const int64_t pairs = in / 2;
  int64_t i = 0;
  float acc[W][R] = {};
#ifdef __AVX2__
  __m256 a[W][R];
  for (int u = 0; u < W; u++)
    for (int r = 0; r < R; r++) a[u][r] = _mm256_setzero_ps();
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
      for (int u = 0; u < W; u++) a[u][r] = _mm256_fmadd_ps(o[u], xo8, _mm256_fmadd_ps(e[u], xe8, a[u][r]));
    }
  }
  for (int u = 0; u < W; u++)
    for (int r = 0; r < R; r++) acc[u][r] = hsum(a[u][r]);
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

template <int R>
void bf16Block(const float* const* xe, const float* const* xo, const float* const* x, const uint16_t* w, int64_t in,
               int64_t r0, int64_t r1, int64_t out, float* y) {
  int64_t o = r0;
  for (; o + 2 <= r1; o += 2) bf16Rows<R, 2>(xe, xo, x, w, in, o, out, y);
  for (; o < r1; o++) bf16Rows<R, 1>(xe, xo, x, w, in, o, out, y);
}

// ---------------------------------------------------------------------------------------------------------------
// GPTQ

struct QuantRow {
  std::vector<int16_t> codes;  // [in]: int8-range codes for 4-bit weights, int16 for 8-bit
  std::vector<int32_t> pack;   // 4-bit: per packed row, the even and the odd inputs' codes as 4 bytes each
  std::vector<float> dx;       // per chunk
  std::vector<float> sx;       // per group: the sum of the dequantized activations
};

inline int64_t groupsOf(const Gptq& q) { return (q.in + q.group - 1) / q.group; }

// Quantizes one row of activations (already permuted) in chunks of at most 32 inputs that do not cross a group.
void quantizeRow(const float* x, const Gptq& q, QuantRow& r) {
  const int64_t groups = groupsOf(q);
  const float top = q.bits == 4 ? 127.0f : 32767.0f;
  r.codes.assign(q.in, 0);
  r.dx.clear();
  r.sx.assign(groups, 0.0f);
  for (int64_t g = 0; g < groups; g++) {
    const int64_t k1 = std::min(q.in, (g + 1) * q.group);
    for (int64_t c0 = g * q.group; c0 < k1; c0 += 32) {
      const int64_t c1 = std::min(k1, c0 + 32);
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
  const int64_t groups = groupsOf(q);
  for (int r = 0; r < R; r++) {
    int64_t chunk = 0;
    float total = 0;
    for (int64_t g = 0; g < groups; g++) {
      const int64_t k1 = std::min(q.in, (g + 1) * q.group);
      float acc = 0;
      for (int64_t c0 = g * q.group; c0 < k1; c0 += 32, chunk++) {
        int32_t dot = 0;
        for (int64_t k = c0; k < std::min(k1, c0 + 32); k++) dot += qAt(q, k, c) * xs[r].codes[k];
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

// Eight output columns [c0, c0 + 8) of R rows of 4-bit weights: per packed row, the low nibbles (inputs 0, 2, 4, 6)
// and the high nibbles (1, 3, 5, 7) are multiplied with the matching int8 activation bytes (vpmaddubsw: u8 × s8, pairs
// summed to int16; at most 4 packed rows = 8 products of |15·127·2| per int16 lane before widening).
template <int R>
void gptq4Block(const Gptq& q, const QuantRow* xs, int64_t c0, float* y) {
  const int64_t groups = groupsOf(q);
  const __m256i nib = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
  int64_t chunk = 0;
  for (int64_t g = 0; g < groups; g++) {
    const int64_t p0 = g * q.group / 8, p1 = std::min(q.in, (g + 1) * q.group) / 8;
    __m256 facc[R];
    for (int r = 0; r < R; r++) facc[r] = _mm256_setzero_ps();
    for (int64_t p = p0; p < p1; p += 4, chunk++) {
      const int64_t pe = std::min(p1, p + 4);
      __m256i acc[R];
      for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_si256();
      for (int64_t j = p; j < pe; j++) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q.qweight + j * q.out + c0));
        const __m256i lo = _mm256_and_si256(v, nib);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi32(v, 4), nib);
        for (int r = 0; r < R; r++) {
          const __m256i e = _mm256_maddubs_epi16(lo, _mm256_set1_epi32(xs[r].pack[2 * j]));
          const __m256i o = _mm256_maddubs_epi16(hi, _mm256_set1_epi32(xs[r].pack[2 * j + 1]));
          acc[r] = _mm256_add_epi16(acc[r], _mm256_add_epi16(e, o));
        }
      }
      for (int r = 0; r < R; r++) {
        const __m256 d = _mm256_cvtepi32_ps(_mm256_madd_epi16(acc[r], ones));
        facc[r] = _mm256_fmadd_ps(d, _mm256_set1_ps(xs[r].dx[chunk]), facc[r]);
      }
    }
    const __m256 s = scales8(q, g, c0), z = zeros8(q, g, c0);
    for (int r = 0; r < R; r++) {
      float* yr = y + r * q.out + c0;
      const __m256 t = _mm256_fnmadd_ps(z, _mm256_set1_ps(xs[r].sx[g]), facc[r]);
      _mm256_storeu_ps(yr, _mm256_fmadd_ps(s, t, _mm256_loadu_ps(yr)));
    }
  }
}

// Eight output columns of R rows of 8-bit weights: bytes widened to int16 and multiplied with int16 activation codes
// (vpmaddwd); columns 0-3 and 4-7 accumulate separately and are folded per chunk of at most 8 packed rows.
template <int R>
void gptq8Block(const Gptq& q, const QuantRow* xs, int64_t c0, float* y) {
  const int64_t groups = groupsOf(q);
  int64_t chunk = 0;
  for (int64_t g = 0; g < groups; g++) {
    const int64_t p0 = g * q.group / 4, p1 = std::min(q.in, (g + 1) * q.group) / 4;
    __m256 facc[R];
    for (int r = 0; r < R; r++) facc[r] = _mm256_setzero_ps();
    for (int64_t p = p0; p < p1; p += 8, chunk++) {
      const int64_t pe = std::min(p1, p + 8);
      __m256i a[R], b[R];
      for (int r = 0; r < R; r++) a[r] = b[r] = _mm256_setzero_si256();
      for (int64_t j = p; j < pe; j++) {
        const int32_t* src = q.qweight + j * q.out + c0;
        const __m256i v0 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src)));
        const __m256i v1 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 4)));
        for (int r = 0; r < R; r++) {
          int64_t x4;
          std::memcpy(&x4, &xs[r].codes[4 * j], 8);
          const __m256i xb = _mm256_set1_epi64x(x4);
          a[r] = _mm256_add_epi32(a[r], _mm256_madd_epi16(v0, xb));
          b[r] = _mm256_add_epi32(b[r], _mm256_madd_epi16(v1, xb));
        }
      }
      for (int r = 0; r < R; r++) {
        const __m256i h = _mm256_permute4x64_epi64(_mm256_hadd_epi32(a[r], b[r]), 0xD8);
        facc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(h), _mm256_set1_ps(xs[r].dx[chunk]), facc[r]);
      }
    }
    const __m256 s = scales8(q, g, c0), z = zeros8(q, g, c0);
    for (int r = 0; r < R; r++) {
      float* yr = y + r * q.out + c0;
      const __m256 t = _mm256_fnmadd_ps(z, _mm256_set1_ps(xs[r].sx[g]), facc[r]);
      _mm256_storeu_ps(yr, _mm256_fmadd_ps(s, t, _mm256_loadu_ps(yr)));
    }
  }
}

template <int R>
void gptqBlock(const Gptq& q, const QuantRow* xs, int64_t c0, float* y) {
  if (q.bits == 4) gptq4Block<R>(q, xs, c0, y);
  else gptq8Block<R>(q, xs, c0, y);
}
#endif

void gptqColumns(const Gptq& q, const QuantRow* xs, int R, int64_t c0, int64_t c1, float* y) {
  int64_t c = c0;
#ifdef __AVX2__
  for (; c + 8 <= c1; c += 8) {
    for (int r = 0; r < R; r++) std::fill(y + r * q.out + c, y + r * q.out + c + 8, 0.0f);
    switch (R) {
      case 1: gptqBlock<1>(q, xs, c, y); break;
      case 2: gptqBlock<2>(q, xs, c, y); break;
      case 3: gptqBlock<3>(q, xs, c, y); break;
      default: gptqBlock<4>(q, xs, c, y); break;
    }
  }
#endif
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
  (void)threads;  // OpenBLAS threads
  if (n == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, int(out), int(in), 1.0f, w, int(in), x, 1, 0.0f, y, 1);
  else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(out), int(in), 1.0f, x, int(in), w, int(in), 0.0f, y, int(out));
}

void linearBf16(const float* x, int64_t n, const uint16_t* w, int64_t out, int64_t in, float* y, int threads) {
  if (n >= kTileRows) {
    const int64_t rows = 64;
    std::vector<float> tile(rows * in);
    for (int64_t r0 = 0; r0 < out; r0 += rows) {
      const int64_t m = std::min(rows, out - r0);
#pragma omp parallel for num_threads(threads) schedule(static)
      for (int64_t r = 0; r < m; r++) bf16ToF32(w + (r0 + r) * in, tile.data() + r * in, in);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(m), int(in), 1.0f, x, int(in), tile.data(), int(in),
                  0.0f, y + r0, int(out));
    }
    return;
  }
  const int64_t half = in / 2;
  std::vector<float> split(2 * n * half);
  std::vector<const float*> xe(n), xo(n), xr(n);
  for (int64_t r = 0; r < n; r++) {
    float* e = split.data() + 2 * r * half;
    float* o = e + half;
    for (int64_t i = 0; i < half; i++) {
      e[i] = x[r * in + 2 * i];
      o[i] = x[r * in + 2 * i + 1];
    }
    xe[r] = e;
    xo[r] = o;
    xr[r] = x + r * in;
  }
  const int64_t chunk = 16;
  const int64_t tasks = (out + chunk - 1) / chunk;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t t = 0; t < tasks; t++) {
    const int64_t r0 = t * chunk, r1 = std::min(out, r0 + chunk);
    for (int64_t b = 0; b < n; b += 4) {
      const int R = int(std::min<int64_t>(4, n - b));
      float* yb = y + b * out;
      switch (R) {
        case 1: bf16Block<1>(&xe[b], &xo[b], &xr[b], w, in, r0, r1, out, yb); break;
        case 2: bf16Block<2>(&xe[b], &xo[b], &xr[b], w, in, r0, r1, out, yb); break;
        case 3: bf16Block<3>(&xe[b], &xo[b], &xr[b], w, in, r0, r1, out, yb); break;
        default: bf16Block<4>(&xe[b], &xo[b], &xr[b], w, in, r0, r1, out, yb); break;
      }
    }
  }
}

void dequantGptq(const Gptq& q, int64_t c0, int64_t c1, float* wt) {
  const int64_t width = c1 - c0;
  for (int64_t k = 0; k < q.in; k++) {
    const int64_t g = k / q.group;
    float* row = wt + k * width;
    for (int64_t c = c0; c < c1; c++) row[c - c0] = (float(qAt(q, k, c)) - zeroAt(q, g, c)) * half(q.scales[g * q.out + c]);
  }
}

void linearGptq(const float* x, int64_t n, const Gptq& q, float* y, int threads) {
  std::vector<float> permuted;
  if (q.perm) {
    permuted.resize(n * q.in);
    for (int64_t r = 0; r < n; r++)
      for (int64_t k = 0; k < q.in; k++) permuted[r * q.in + k] = x[r * q.in + q.perm[k]];
    x = permuted.data();
  }
  if (n >= kTileRows) {
    const int64_t cols = 64;
    std::vector<float> tile(q.in * cols);
    for (int64_t c0 = 0; c0 < q.out; c0 += cols) {
      const int64_t c1 = std::min(q.out, c0 + cols);
      const int64_t width = c1 - c0;
      const int64_t parts = 8, step = (q.in + parts - 1) / parts;
#pragma omp parallel for num_threads(threads) schedule(static)
      for (int64_t part = 0; part < parts; part++) {
        const int64_t k0 = part * step, k1 = std::min(q.in, k0 + step);
        for (int64_t k = k0; k < k1; k++) {
          const int64_t g = k / q.group;
          for (int64_t c = c0; c < c1; c++) tile[k * width + c - c0] = (float(qAt(q, k, c)) - zeroAt(q, g, c)) * half(q.scales[g * q.out + c]);
        }
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(width), int(q.in), 1.0f, x, int(q.in), tile.data(),
                  int(width), 0.0f, y + c0, int(q.out));
    }
    return;
  }
  std::vector<QuantRow> xs(n);
  for (int64_t r = 0; r < n; r++) quantizeRow(x + r * q.in, q, xs[r]);
  const int64_t chunk = 128;
  const int64_t tasks = (q.out + chunk - 1) / chunk;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t t = 0; t < tasks; t++) {
    const int64_t c0 = t * chunk, c1 = std::min(q.out, c0 + chunk);
    for (int64_t b = 0; b < n; b += 4) {
      const int R = int(std::min<int64_t>(4, n - b));
      gptqColumns(q, &xs[b], R, c0, c1, y + b * q.out);
    }
  }
}

}  // namespace ynk
