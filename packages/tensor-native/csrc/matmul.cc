// Batched matrix products on OpenBLAS's cblas_sgemm.
#include <cblas.h>

#include "kernels.h"

namespace ynk {

void batchedGemm(const float* a, const float* b, float* c, const int32_t* aIdx, const int32_t* bIdx, int batch, int m,
                 int n, int k, bool transA, bool transB) {
  const int lda = transA ? m : k;
  const int ldb = transB ? k : n;
  const CBLAS_TRANSPOSE ta = transA ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = transB ? CblasTrans : CblasNoTrans;
  const int64_t aSize = int64_t(m) * k, bSize = int64_t(k) * n, cSize = int64_t(m) * n;
  // One shared right operand and consecutive untransposed left operands: a single [batch*m, k] product.
  bool fold = !transA && batch > 1;
  for (int i = 0; fold && i < batch; i++) fold = aIdx[i] == i && bIdx[i] == bIdx[0];
  if (fold) {
    cblas_sgemm(CblasRowMajor, ta, tb, batch * m, n, k, 1.0f, a, lda, b + bIdx[0] * bSize, ldb, 0.0f, c, n);
    return;
  }
  for (int i = 0; i < batch; i++) {
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.0f, a + aIdx[i] * aSize, lda, b + bIdx[i] * bSize, ldb, 0.0f,
                c + i * cSize, n);
  }
}

void setThreads(int n) { openblas_set_num_threads(n); }
int threads() { return openblas_get_num_threads(); }

}  // namespace ynk
