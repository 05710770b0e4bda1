// Batched matrix products on OpenBLAS's cblas_sgemm, and the thread counts of BLAS and of the other kernels.
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <string>

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

namespace {
int blasThreads = 1;
int kernelThreadCount = 1;
}  // namespace

void setThreads(int blas, int kernels) {
  blasThreads = std::max(1, blas);
  kernelThreadCount = std::max(1, kernels);
  openblas_set_num_threads(blasThreads);
#ifdef _OPENMP
  // After openblas_set_num_threads: OpenBLAS's OpenMP build sets the OpenMP default itself there, and reads it back at
  // each product (a product from a thread whose default is 1 runs on one thread).
  omp_set_num_threads(blasThreads);
#endif
}
int threads() { return blasThreads; }
int kernelThreads() { return kernelThreadCount; }

const char* blasName() {
  static std::string name;
  if (name.empty()) {
    const int parallel = openblas_get_parallel();
    name = std::string(openblas_get_config()) + " (" +
           (parallel == 2 ? "openmp" : parallel == 1 ? "pthreads" : "serial") + ")";
  }
  return name.c_str();
}

}  // namespace ynk
