// Fused causal attention, forward and backward, after FlashAttention-2 (Dao 2023, arXiv 2307.08691, Algorithms 1
// and 2): queries and keys are processed in tiles; the forward keeps a running row max and row sum (online softmax)
// and saves only the output and the log-sum-exp of each row; the backward recomputes each tile's probabilities from
// that log-sum-exp. Nothing of size [Sq, Sk] is ever allocated: besides the outputs, a worker thread holds one
// kTileQ x kTileKF tile in the forward, and two kTileQ x kTileK tiles and a row vector D [Sq] in the backward (and,
// when heads are split between threads, a private dQ [Sq, d]).
//
// Tile products run on OpenBLAS's cblas_sgemm, called single-threaded from each worker: the workers (OpenMP) split
// the heads (and query tiles, or key tiles) between them.
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <cmath>
#include <mutex>
#include <vector>

#include "kernels.h"
#include "vexp.h"

namespace ynk {

// OpenBLAS runs single-threaded inside kernels that split the work over their own threads (attention's workers, the
// weight formats' BLAS tiles). Its OpenMP build does that by itself inside a parallel region; its pthreads build is set
// to one thread while any such call runs (several Node worker threads may run one at once) and gets its thread count
// back after the last.
namespace {
std::mutex blasMutex;
int blasUsers = 0;
int blasSaved = 0;
}  // namespace

SingleThreadedBlas::SingleThreadedBlas(bool active) : active_(active && openblas_get_parallel() == 1) {
  if (!active_) return;
  std::lock_guard<std::mutex> lock(blasMutex);
  if (blasUsers++ == 0) {
    blasSaved = openblas_get_num_threads();
    if (blasSaved > 1) openblas_set_num_threads(1);
  }
}

SingleThreadedBlas::~SingleThreadedBlas() {
  if (!active_) return;
  std::lock_guard<std::mutex> lock(blasMutex);
  if (--blasUsers == 0 && blasSaved > 1) openblas_set_num_threads(blasSaved);
}

namespace {

constexpr int64_t kTileQ = 128;   // query rows per tile
constexpr int64_t kTileK = 128;   // keys per tile in the backward
constexpr int64_t kTileKF = 256;  // keys per tile in the forward (measured ~6% faster than 128 there)
constexpr float kNegInf = -INFINITY;


// The scores of query rows [r0, r0+nr) against keys [c0, c0+nk), scaled, plus the key bias, with the keys a row may
// not see (key > offset + row) set to -inf. s is [nr, ldS].
void scoreTile(const float* q, const float* k, const float* bias, float* s, int64_t ldS, int64_t r0, int64_t nr,
               int64_t c0, int64_t nk, int64_t d, int64_t offset, float scale) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(nr), int(nk), int(d), scale, q + r0 * d, int(d), k + c0 * d,
              int(d), 0.0f, s, int(ldS));
  for (int64_t r = 0; r < nr; r++) {
    float* row = s + r * ldS;
    if (bias) {
      const float* b = bias + c0;
#pragma omp simd
      for (int64_t c = 0; c < nk; c++) row[c] += b[c];
    }
    // keys c0 + c with c0 + c > offset + r0 + r are in the future of this row
    const int64_t first = std::max<int64_t>(0, offset + r0 + r + 1 - c0);
    for (int64_t c = first; c < nk; c++) row[c] = kNegInf;
  }
}

// The largest of x[0..n), -inf for n = 0 (eight running maxima, so that the compiler vectorizes it).
float rowMax(const float* x, int64_t n) {
  float m[8] = {kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) {
    for (int j = 0; j < 8; j++) m[j] = x[c + j] > m[j] ? x[c + j] : m[j];
  }
  for (; c < n; c++) m[0] = x[c] > m[0] ? x[c] : m[0];
  float r = m[0];
  for (int j = 1; j < 8; j++) r = m[j] > r ? m[j] : r;
  return r;
}

int workers(int64_t items, int threads) { return int(std::max<int64_t>(1, std::min<int64_t>(items, threads))); }

}  // namespace

void attentionForward(const float* q, const float* k, const float* v, const float* bias, float* o, float* lse,
                      const AttentionShape& sh, int threads) {
  const int64_t sq = sh.sq, sk = sh.sk, d = sh.d, offset = sh.sk - sh.sq;
  const int64_t tileQ = std::min(kTileQ, sq);
  const int64_t tiles = (sq + tileQ - 1) / tileQ;
  const int64_t items = sh.bh * tiles;
  const int nw = workers(items, threads);
  SingleThreadedBlas single(nw > 1);
#pragma omp parallel num_threads(nw)
  {
    std::vector<float> s(static_cast<size_t>(tileQ * kTileKF));
    std::vector<float> m(static_cast<size_t>(tileQ)), l(static_cast<size_t>(tileQ));
    // the later query tiles see more keys: hand them out first
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; item++) {
      const int64_t h = item % sh.bh;
      const int64_t r0 = (tiles - 1 - item / sh.bh) * tileQ;
      const int64_t nr = std::min(tileQ, sq - r0);
      const float* qh = q + h * sq * d;
      const float* kh = k + h * sk * d;
      const float* vh = v + h * sk * d;
      const float* bh = bias ? bias + (h / sh.heads) * sk : nullptr;
      float* out = o + (h * sq + r0) * d;
      std::fill(out, out + nr * d, 0.0f);
      std::fill(m.begin(), m.end(), kNegInf);
      std::fill(l.begin(), l.end(), 0.0f);
      const int64_t keys = std::min(sk, offset + r0 + nr);  // keys the last row of the tile sees
      for (int64_t c0 = 0; c0 < keys; c0 += kTileKF) {
        const int64_t nk = std::min(kTileKF, keys - c0);
        scoreTile(qh, kh, bh, s.data(), nk, r0, nr, c0, nk, d, offset, sh.scale);
        for (int64_t r = 0; r < nr; r++) {
          float* row = s.data() + r * nk;
          const float mx = rowMax(row, nk);
          const float mNew = std::max(m[r], mx);
          if (mNew == kNegInf) continue;  // every key of this tile masked by the bias: nothing to add yet
          float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
          for (int64_t c = 0; c < nk; c++) {
            const float p = vexp(row[c] - mNew);
            row[c] = p;
            sum += p;
          }
          const float alpha = vexp(m[r] - mNew);  // 0 on the first tile (m = -inf)
          l[r] = l[r] * alpha + sum;
          m[r] = mNew;
          if (alpha != 1.0f) {
            float* acc = out + r * d;
#pragma omp simd
            for (int64_t i = 0; i < d; i++) acc[i] *= alpha;
          }
        }
        // rows whose max stayed -inf kept -inf scores: make their probabilities 0 before the product
        for (int64_t r = 0; r < nr; r++) {
          if (m[r] != kNegInf) continue;
          std::fill(s.data() + r * nk, s.data() + (r + 1) * nk, 0.0f);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(nr), int(d), int(nk), 1.0f, s.data(), int(nk),
                    vh + c0 * d, int(d), 1.0f, out, int(d));
      }
      for (int64_t r = 0; r < nr; r++) {
        const float inv = 1.0f / l[r];
        float* acc = out + r * d;
#pragma omp simd
        for (int64_t i = 0; i < d; i++) acc[i] *= inv;
        lse[h * sq + r0 + r] = m[r] + std::log(l[r]);
      }
    }
  }
}

void attentionBackward(const float* q, const float* k, const float* v, const float* bias, const float* o,
                       const float* lse, const float* dout, float* dq, float* dk, float* dv, float* dbias,
                       const AttentionShape& sh, int threads) {
  const int64_t sq = sh.sq, sk = sh.sk, d = sh.d, offset = sh.sk - sh.sq;
  const int64_t tileQ = std::min(kTileQ, sq);
  const int64_t keyTiles = (sk + kTileK - 1) / kTileK;
  // Work items: (head, set of key tiles). A head is split between threads only when there are fewer heads than
  // threads; then each part accumulates dQ privately and adds it to the output under a lock.
  const int64_t parts = sh.bh >= threads ? 1 : std::min<int64_t>(keyTiles, (threads + sh.bh - 1) / sh.bh);
  const int64_t items = sh.bh * parts;
  const int nw = workers(items, threads);
  SingleThreadedBlas single(nw > 1);
  std::fill(dq, dq + sh.bh * sq * d, 0.0f);
  if (dbias) std::fill(dbias, dbias + sh.bh * sk, 0.0f);
#pragma omp parallel num_threads(nw)
  {
    std::vector<float> p(static_cast<size_t>(tileQ * kTileK)), ds(static_cast<size_t>(tileQ * kTileK));
    std::vector<float> delta(static_cast<size_t>(sq));
    std::vector<float> privateDq(parts > 1 ? size_t(sq * d) : 0);
    int64_t deltaHead = -1;
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; item++) {
      const int64_t h = item / parts, part = item % parts;
      const float* qh = q + h * sq * d;
      const float* kh = k + h * sk * d;
      const float* vh = v + h * sk * d;
      const float* oh = o + h * sq * d;
      const float* gh = dout + h * sq * d;
      const float* lh = lse + h * sq;
      const float* bh = bias ? bias + (h / sh.heads) * sk : nullptr;
      float* dbh = dbias ? dbias + h * sk : nullptr;
      float* dqh = parts > 1 ? privateDq.data() : dq + h * sq * d;
      if (parts > 1) std::fill(privateDq.begin(), privateDq.end(), 0.0f);
      if (deltaHead != h) {
        // D_r = dO_r · O_r (= rowsum(dP ∘ P)): the softmax backward's row term
        for (int64_t r = 0; r < sq; r++) {
          float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
          for (int64_t i = 0; i < d; i++) acc += gh[r * d + i] * oh[r * d + i];
          delta[r] = acc;
        }
        deltaHead = h;
      }
      // key tiles part, part + parts, ...: interleaved, so that the parts get similar causal work
      for (int64_t tile = part; tile < keyTiles; tile += parts) {
        const int64_t c0 = tile * kTileK;
        const int64_t nk = std::min(kTileK, sk - c0);
        float* dkj = dk + (h * sk + c0) * d;
        float* dvj = dv + (h * sk + c0) * d;
        std::fill(dkj, dkj + nk * d, 0.0f);
        std::fill(dvj, dvj + nk * d, 0.0f);
        // the first query row that sees key c0 is c0 - offset
        const int64_t firstRow = std::max<int64_t>(0, c0 - offset);
        for (int64_t r0 = (firstRow / tileQ) * tileQ; r0 < sq; r0 += tileQ) {
          const int64_t nr = std::min(tileQ, sq - r0);
          scoreTile(qh, kh, bh, p.data(), nk, r0, nr, c0, nk, d, offset, sh.scale);
          for (int64_t r = 0; r < nr; r++) {
            float* row = p.data() + r * nk;
            const float m = lh[r0 + r];
#pragma omp simd
            for (int64_t c = 0; c < nk; c++) row[c] = vexp(row[c] - m);
          }
          // dV_j += Pᵀ dO_i
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(nk), int(d), int(nr), 1.0f, p.data(), int(nk),
                      gh + r0 * d, int(d), 1.0f, dvj, int(d));
          // dP = dO_i V_jᵀ, then dS = P ∘ (dP − D)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(nr), int(nk), int(d), 1.0f, gh + r0 * d, int(d),
                      vh + c0 * d, int(d), 0.0f, ds.data(), int(nk));
          for (int64_t r = 0; r < nr; r++) {
            const float* pr = p.data() + r * nk;
            float* dr = ds.data() + r * nk;
            const float dl = delta[r0 + r];
#pragma omp simd
            for (int64_t c = 0; c < nk; c++) dr[c] = pr[c] * (dr[c] - dl);
            if (dbh) {
#pragma omp simd
              for (int64_t c = 0; c < nk; c++) dbh[c0 + c] += dr[c];
            }
          }
          // dQ_i += scale · dS K_j;  dK_j += scale · dSᵀ Q_i
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(nr), int(d), int(nk), sh.scale, ds.data(), int(nk),
                      kh + c0 * d, int(d), 1.0f, dqh + r0 * d, int(d));
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(nk), int(d), int(nr), sh.scale, ds.data(), int(nk),
                      qh + r0 * d, int(d), 1.0f, dkj, int(d));
        }
      }
      if (parts > 1) {
        float* target = dq + h * sq * d;
#pragma omp critical(ynk_attention_dq)
        {
#pragma omp simd
          for (int64_t i = 0; i < sq * d; i++) target[i] += privateDq[size_t(i)];
        }
      }
    }
  }
}

}  // namespace ynk
