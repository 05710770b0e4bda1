// Products with weights kept in their storage format (fp32, bf16, GPTQ-packed int8/int4), and the decode helpers that
// run between them (RoPE, attention over a K/V cache, random weights). Every array is caller-owned.
#pragma once
#include <cstdint>

namespace ynk {

// A GPTQ-layout weight of logical shape [out, in] (Hugging Face's layout of AutoGPTQ checkpoints):
//   qweight [in·bits/32, out] int32: 32/bits consecutive input rows of one output column per word, lowest bits first;
//   qzeros [groups, ceil(out·bits/32)] int32: zero points packed along the output dim the same way;
//   scales [groups, out] fp16; group g covers input rows [g·group, (g+1)·group) (rows already in group order: a
//   checkpoint with act-order is permuted at load, and `perm` then says which input feeds row k: x'[k] = x[perm[k]]).
// w[k][c] = (q[k][c] − (z[g][c] + zeroOffset)) · s[g][c] (zeroOffset 1 for AutoGPTQ's "gptq" checkpoint format, 0 for v2).
struct Gptq {
  const int32_t* qweight;
  const int32_t* qzeros;
  const uint16_t* scales;
  const int32_t* perm;  // nullptr: identity
  int bits;             // 4 or 8
  int64_t group;        // rows per group (>= 1; −1 resolved by the caller to `in`)
  int64_t in, out;
  int zeroOffset;
};

// y[n, out] = x[n, in] · Wᵀ for W [out, in] in fp32 / bf16 (raw bfloat16 bits) row-major, fp32 accumulation. Below 32
// rows W is read once per 4 rows by a register kernel (a row's result does not depend on the other rows); from 32 on,
// BLAS GEMM. Products under 2^18 multiply-adds run on one thread.
void linearF32(const float* x, int64_t n, const float* w, int64_t out, int64_t in, float* y, int threads);
void linearBf16(const float* x, int64_t n, const uint16_t* w, int64_t out, int64_t in, float* y, int threads);
// y[n, out] = x[n, in] · W for a GPTQ weight. For n < 32 the activations are quantized per row in chunks inside one
// group, of at most 32 inputs with int8 codes for 4-bit weights and at most 16 inputs with int16 codes for 8-bit
// weights (4 packed rows of W either way; scale = max|x|/127 or /32767, round to nearest even), and multiplied with
// integer dot products; the chunks are summed in fp32. W is read
// once per 4 rows, and a row's result is bit for bit its result alone (n = 1). From 32 rows on, tiles of W are
// dequantized to fp32 and multiplied by BLAS (exact fp32 activations).
void linearGptq(const float* x, int64_t n, const Gptq& q, float* y, int threads);
// Two products of one input: ya [n, outA] = x · Waᵀ and yb [n, outB] = x · Wbᵀ (W [out, in], both of the same format
// and input width), each bit for bit its result alone. Below 32 rows (the register paths) one parallel region runs both
// products' column tasks (A's, then B's, taken dynamically), on the threads the larger product alone would take, and the
// activations are prepared once: bf16's even/odd split, GPTQ's quantized rows (once when both weights have the same
// bits, groups and permutation, else once per weight). From 32 rows on, the two single products in turn.
void linearF32Pair(const float* x, int64_t n, const float* wa, int64_t outA, const float* wb, int64_t outB, int64_t in,
                   float* ya, float* yb, int threads);
void linearBf16Pair(const float* x, int64_t n, const uint16_t* wa, int64_t outA, const uint16_t* wb, int64_t outB,
                    int64_t in, float* ya, float* yb, int threads);
void linearGptqPair(const float* x, int64_t n, const Gptq& a, const Gptq& b, float* ya, float* yb, int threads);
// Input gradients of those products: dx[n, in] = dy[n, out] · W, W [out, in] as above. The weight is widened or
// dequantized to fp32 in tiles of 64–512 inputs, 8 MB per thread at most (GPTQ: packed rows × out, the same values as
// `dequantGptq`; bf16: columns × out), each multiplied by BLAS on one of `threads` threads, so no fp32 copy of all of W
// is made; act-order
// GPTQ results are scattered to the inputs (dx[:, perm[k]] gets packed row k's). fp32: column blocks of BLAS GEMM.
void linearF32GradInput(const float* dy, int64_t n, const float* w, int64_t out, int64_t in, float* dx, int threads);
void linearBf16GradInput(const float* dy, int64_t n, const uint16_t* w, int64_t out, int64_t in, float* dx,
                         int threads);
void linearGptqGradInput(const float* dy, int64_t n, const Gptq& q, float* dx, int threads);
// W's fp32 values for columns [c0, c1), written as wt[k][c − c0] ([in, c1 − c0], row stride c1 − c0).
void dequantGptq(const Gptq& q, int64_t c0, int64_t c1, float* wt);
// bf16 bits → fp32, and fp32 → bf16 bits (round to nearest even, NaN kept quiet).
void bf16ToF32(const uint16_t* src, float* dst, int64_t n);
void f32ToBf16(const float* src, uint16_t* dst, int64_t n);

// Rotary embedding in place on x [n, heads, d] (rows of `stride` floats, heads·d of them used), rotate-half layout:
// for i < d/2, angle = pos[row]·base^(−2i/d): (x_i, x_{i+d/2}) → (x_i·cos − x_{i+d/2}·sin, x_{i+d/2}·cos + x_i·sin).
void rope(float* x, int64_t n, int64_t stride, int64_t heads, int64_t d, const int32_t* pos, float base);
// Causal attention of n queries q [n, qStride] (head h at h·d) at positions start..start+n−1 over cached keys and
// values k, v [len, kvStride] (len = start + n, head h at h·d): out [n, heads·d] = softmax(q·kᵀ/√d) · v per head.
void attend(const float* q, int64_t n, int64_t qStride, const float* k, const float* v, int64_t kvStride, int64_t start,
            int64_t heads, int64_t d, float* out, int threads);
// Attention of n rows, each over its own cache (rows of several sequences in one call): row i's query (q + i·qStride,
// head h at h·d) attends positions [0, seen[i]) of cache c = cache[i], keys k[c] and values v[c] [len, kvStride] (head h
// at h·d): out [n, heads·d] = softmax(q·kᵀ/√d) · v per head, each (row, head) the arithmetic of `attend` (so a row's
// result is bit for bit what `attend` gives it). One region over rows × heads; one thread below 2^21 multiply-adds.
void attendRows(const float* q, int64_t n, int64_t qStride, const float* const* k, const float* const* v,
                const int32_t* cache, const int32_t* seen, int64_t kvStride, int64_t heads, int64_t d, float* out,
                int threads);
// Fills out[i] = table[h(seed, i) & 0xffff] (a counter-based hash: the value depends on seed and i only).
void randomTable(float* out, int64_t n, uint64_t seed, const float* table, int threads);
void randomTableBf16(uint16_t* out, int64_t n, uint64_t seed, const float* table, int threads);
// Fills out with hashed random 32-bit words (any seed and index give the same word on every machine).
void randomWords(uint32_t* out, int64_t n, uint64_t seed, int threads);

// Float64 linear algebra for quantizers (linalg.cc), row-major n×n, blocked over CBLAS level-3 routines.
// In place: the lower Cholesky factor L of a symmetric positive definite a (A = L·Lᵀ; only the lower triangle is
// read; the strict upper triangle is set to 0). False (a partly overwritten) when a is not positive definite.
bool choleskyLower(double* a, int64_t n);
// In place: the inverse of a lower triangular a with a nonzero diagonal (lower triangular).
void invertLower(double* a, int64_t n);
// In place: the upper Cholesky factor U of H⁻¹ (H⁻¹ = Uᵀ·U) of a symmetric positive definite h, as J·L'⁻¹·J with
// J·H·J = L'·L'ᵀ (J the reversal); n³/3 + n³/3 multiply-adds. False when h is not positive definite.
bool inverseUpperCholesky(double* h, int64_t n);
// c [m, n] (row stride ldc) −= op(a) · b: op(a) [m, k] is a [m, k] (row stride lda) or, transposed, a [k, m]; b [k, n].
void gemmSub64(bool transA, int64_t m, int64_t n, int64_t k, const double* a, int64_t lda, const double* b, int64_t ldb,
               double* c, int64_t ldc);

}  // namespace ynk
