// Float32 CPU kernels of @yuan/tensor-native. All arrays are caller-owned; nothing here allocates tensors.
#pragma once
#include <cstdint>

namespace ynk {

// While alive (and `active`), OpenBLAS's pthreads build runs on one thread: for kernels that call BLAS from their own
// threads (a BLAS thread pool spinning beside them would take their cores). Nests across threads; see attention.cc.
class SingleThreadedBlas {
 public:
  explicit SingleThreadedBlas(bool active);
  ~SingleThreadedBlas();
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  bool active_;
};

enum BinaryOp { ADD = 0, SUB, MUL, DIV, MAXIMUM, MINIMUM, SQUARED_DIFF };
enum UnaryOp { NEG = 0, EXP, LOG, SQRT, RSQRT, SQUARE, SIGMOID, TANH, RELU, RECIPROCAL, ABS, COS, SIN };
enum CompareOp { EQUAL = 0, NOT_EQUAL, LESS, LESS_EQUAL, GREATER, GREATER_EQUAL };
enum ReduceOp { R_SUM = 0, R_MAX, R_MIN, R_MEAN };

// c[i] = op(a[aIdx[i]], b[bIdx[i]]) for each of `batch` matrices; row-major, transposes by BLAS flags.
void batchedGemm(const float* a, const float* b, float* c, const int32_t* aIdx, const int32_t* bIdx, int batch, int m,
                 int n, int k, bool transA, bool transB);
// out = op(a, b) with numpy broadcasting expressed as per-dimension element strides (0 on broadcast axes).
void binary(int op, const float* a, const float* b, float* out, int rank, const int32_t* shape, const int32_t* aStrides,
            const int32_t* bStrides);
// out = op(a, b) as 0/1 bytes, broadcasting as `binary`.
void compare(int op, const float* a, const float* b, uint8_t* out, int rank, const int32_t* shape, const int32_t* aStrides,
             const int32_t* bStrides);
void unary(int op, const float* x, float* out, int64_t n);
// Reduces the contiguous inner axis: x [outer, inner] -> out [outer].
void reduceInner(int op, const float* x, float* out, int64_t outer, int64_t inner);
// Reduces the leading axis: x [outer, inner] -> out [inner].
void reduceOuter(int op, const float* x, float* out, int64_t outer, int64_t inner);
// Softmax over the last axis of x [rows, cols].
void softmax(const float* x, float* out, int64_t rows, int64_t cols);
// out = transpose(x, perm) for x of `shape`.
void transpose(const float* x, float* out, int rank, const int32_t* shape, const int32_t* perm);
// Copies the box of extent `size` at srcBegin in src into dst at dstBegin (both row-major, rank <= 8).
void copyBox(const float* src, const int32_t* srcShape, const int32_t* srcBegin, float* dst, const int32_t* dstShape,
             const int32_t* dstBegin, const int32_t* size, int rank);
void fill(float* out, int64_t n, float value);
// x [outer, n, inner] gathered on axis 1 by idx [m] -> out [outer, m, inner]; false if an index is out of range.
bool gather(const float* x, const int32_t* idx, float* out, int64_t outer, int64_t n, int64_t m, int64_t inner);
// out [segments, inner] = sum of rows of x [n, inner] by segment id (ids outside 0..segments-1 are dropped).
void segmentSum(const float* x, const int32_t* seg, float* out, int64_t n, int64_t segments, int64_t inner);
// out = sum of `count` arrays of length n.
void addN(const float* const* xs, int count, float* out, int64_t n);

// RMSNorm over the last axis of x [rows, d] with weight w [d]: out = x·inv·w, inv [rows] = 1/sqrt(mean(x²) + eps).
void rmsNormForward(const float* x, const float* w, float eps, float* out, float* inv, int64_t rows, int64_t d);
// Its gradients from the saved inv: dx [rows, d] and dw [d].
void rmsNormBackward(const float* x, const float* w, const float* inv, const float* dy, float* dx, float* dw,
                     int64_t rows, int64_t d);

// SwiGLU activation of u [rows, 2f] = [a | g]: out [rows, f] = silu(a)·g; and du [rows, 2f] from dy [rows, f].
void swigluForward(const float* u, float* out, int64_t rows, int64_t f);
void swigluBackward(const float* u, const float* dy, float* du, int64_t rows, int64_t f);

// Rotary embedding into head-major layout (rotate-half form, RoFormer arXiv 2104.09864 eq. 34):
// out [B, H, T, d] = x ⊙ cos + rot(x) ⊙ sin with rot([x1 | x2]) = [−x2 | x1], for x [B, T, H, d] and cos, sin
// [cb, T, d] (cb = B, or 1 shared by every batch row); d even.
void ropeHeadsForward(const float* x, const float* cos, const float* sin, float* out, int64_t b, int64_t t, int64_t h,
                      int64_t d, int64_t cb);
// Its gradients from dy [B, H, T, d]: dx [B, T, H, d] = dy ⊙ cos + rotᵀ(dy ⊙ sin) with rotᵀ([z1 | z2]) = [z2 | −z1];
// dcos, dsin [cb, T, d] = Σ over heads (and over batch rows when cb = 1) of dy ⊙ x and dy ⊙ rot(x).
void ropeHeadsBackward(const float* x, const float* cos, const float* sin, const float* dy, float* dx, float* dcos,
                       float* dsin, int64_t b, int64_t t, int64_t h, int64_t d, int64_t cb);

// One AdamW step (decoupled weight decay) of parameter p with gradient g and moments m, v, into po, mo, vo:
// m' = β1·m + (1−β1)·g, v' = β2·v + (1−β2)·g², p' = p − lr·((m'/c1)/(√(v'/c2) + eps) + wd·p), c = bias corrections.
struct AdamWParams {
  float lr, beta1, beta2, eps, weightDecay, c1, c2;
};
void adamw(const float* p, const float* g, const float* m, const float* v, float* po, float* mo, float* vo, int64_t n,
           const AdamWParams& h);

// Causal attention over bh = B·A heads: q [bh, sq, d], k and v [bh, sk, d], sq <= sk; query row r sits at position
// sk − sq + r and sees keys 0..that position. `bias` [B, sk] (or null) is added to the scaled scores of every head of a
// batch row (heads = A). Tiled FlashAttention-2 (attention.cc); nothing of size sq x sk is allocated.
struct AttentionShape {
  int64_t bh, heads, sq, sk, d;
  float scale;
};
// o [bh, sq, d] and the log-sum-exp of each row's scaled scores, lse [bh, sq].
void attentionForward(const float* q, const float* k, const float* v, const float* bias, float* o, float* lse,
                      const AttentionShape& shape, int threads);
// dq, dk, dv from dout [bh, sq, d] and the forward's o and lse (scores recomputed tile by tile); dbias [bh, sk]
// (per head; the caller sums over heads) when bias and dbias are given.
void attentionBackward(const float* q, const float* k, const float* v, const float* bias, const float* o,
                       const float* lse, const float* dout, float* dq, float* dk, float* dv, float* dbias,
                       const AttentionShape& shape, int threads);

// Thread counts: `blas` for OpenBLAS's products (and the kernels that split work the way they do: attention), `kernels`
// for the memory-bound elementwise, layout and reduction kernels (their OpenMP loops say num_threads(kernelThreads())).
// The OpenMP default (omp_set_num_threads) is set to `blas`, because OpenBLAS's OpenMP build takes its thread count
// from it at each call; its pthreads build keeps its own count, set here too.
void setThreads(int blas, int kernels);
int threads();
int kernelThreads();
// Which BLAS the addon runs on: OpenBLAS's build string and its threading ("pthreads", "openmp" or "serial").
const char* blasName();

}  // namespace ynk
