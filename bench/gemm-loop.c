// GEMM throughput of a train step's shapes from C: OpenBLAS's cblas_sgemm against oneDNN's dnnl_sgemm (issue 22).
// For each linear [in, out] of a preset, the three products of one training step at M = batch·seq rows:
//   fwd  y[M,out]  = x[M,in] · W[in,out]        (NN)
//   dX   dx[M,in]  = dy[M,out] · W[in,out]ᵀ     (NT)
//   dW   dW[in,out] = x[M,in]ᵀ · dy[M,out]       (TN, K = M)
// each timed for about --ms milliseconds after a warm-up, reporting GFLOP/s (2·M·N·K per product). With --mixed, every
// product is followed by an OpenMP elementwise pass over C on the same thread count (the step's pattern: a BLAS call, then
// one of our OpenMP kernels), so that a BLAS thread pool that fights libgomp's shows up as lost throughput.
// Which libopenblas is used is the dynamic loader's choice: LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp
// picks Debian's OpenMP build, the default is the pthread build.
// Build: cc -O2 -fopenmp bench/gemm-loop.c -o /tmp/gemm-loop -lopenblas -ldnnl   (add -DNO_DNNL and drop -ldnnl without it)
// Usage: /tmp/gemm-loop [--threads 1,2] [--m 1024] [--shapes 128x128,128x512,512x128] [--lib openblas,dnnl] [--ms 300] [--mixed]
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifndef NO_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}
static double cpuNow(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

// C = op(A)·op(B) row-major through the library named by lib (0 OpenBLAS, 1 oneDNN).
static void gemm(int lib, int ta, int tb, int m, int n, int k, const float* a, const float* b, float* c) {
  const int lda = ta ? m : k, ldb = tb ? k : n;
  if (lib == 0) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda, b,
                ldb, 0.0f, c, n);
  } else {
#ifndef NO_DNNL
    if (dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, n) != dnnl_success) {
      fprintf(stderr, "dnnl_sgemm failed at %dx%dx%d\n", m, n, k);
      exit(1);
    }
#endif
  }
}

static void elementwise(float* c, long n, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (long i = 0; i < n; i++) c[i] = c[i] * 0.5f + 1.0f;
}

int main(int argc, char** argv) {
  const char* threadList = "1,2";
  const char* shapeList = "128x128,128x512,512x128,128x264";
  const char* libList = "openblas,dnnl";
  int M = 1024, mixed = 0;
  double ms = 300;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) threadList = argv[++i];
    else if (!strcmp(argv[i], "--shapes") && i + 1 < argc) shapeList = argv[++i];
    else if (!strcmp(argv[i], "--lib") && i + 1 < argc) libList = argv[++i];
    else if (!strcmp(argv[i], "--m") && i + 1 < argc) M = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--ms") && i + 1 < argc) ms = atof(argv[++i]);
    else if (!strcmp(argv[i], "--mixed")) mixed = 1;
    else {
      fprintf(stderr, "gemm-loop: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  const long maxDim = 4096;
  float* a = malloc(sizeof(float) * M * maxDim);
  float* b = malloc(sizeof(float) * M * maxDim);
  float* c = malloc(sizeof(float) * M * maxDim);
  for (long i = 0; i < M * maxDim; i++) a[i] = b[i] = (float)((i % 17) - 8) / 8.0f, c[i] = 0;
  printf("openblas config: %s (parallel %d)\n", openblas_get_config(), openblas_get_parallel());

  char tl[256];
  strncpy(tl, threadList, sizeof tl - 1);
  for (char* ts = strtok(tl, ","); ts; ts = strtok(NULL, ",")) {
    const int threads = atoi(ts);
    openblas_set_num_threads(threads);
    omp_set_num_threads(threads);
    char sl[512];
    strncpy(sl, shapeList, sizeof sl - 1);
    char* sSave;
    for (char* s = strtok_r(sl, ",", &sSave); s; s = strtok_r(NULL, ",", &sSave)) {
      int in = 0, out = 0;
      if (sscanf(s, "%dx%d", &in, &out) != 2 || in > maxDim || out > maxDim) {
        fprintf(stderr, "gemm-loop: bad shape %s (want INxOUT, each at most %ld)\n", s, maxDim);
        return 2;
      }
      // form: {name, transA, transB, m, n, k}
      const struct {
        const char* name;
        int ta, tb, m, n, k;
      } forms[3] = {{"fwd NN", 0, 0, M, out, in}, {"dX  NT", 0, 1, M, in, out}, {"dW  TN", 1, 0, in, out, M}};
      for (int f = 0; f < 3; f++) {
        printf("t=%d %4dx%-4d %s m=%4d n=%4d k=%4d:", threads, in, out, forms[f].name, forms[f].m, forms[f].n,
               forms[f].k);
        char ll[64];
        strncpy(ll, libList, sizeof ll - 1);
        char* lSave;
        for (char* l = strtok_r(ll, ",", &lSave); l; l = strtok_r(NULL, ",", &lSave)) {
          const int lib = !strcmp(l, "dnnl") ? 1 : 0;
          const double flop = 2.0 * forms[f].m * forms[f].n * forms[f].k;
          for (int w = 0; w < 3; w++) gemm(lib, forms[f].ta, forms[f].tb, forms[f].m, forms[f].n, forms[f].k, a, b, c);
          int reps = 0;
          const double t0 = now(), c0 = cpuNow();
          while ((now() - t0) * 1000 < ms) {
            gemm(lib, forms[f].ta, forms[f].tb, forms[f].m, forms[f].n, forms[f].k, a, b, c);
            if (mixed) elementwise(c, (long)forms[f].m * forms[f].n, threads);
            reps++;
          }
          const double wall = now() - t0, cpu = cpuNow() - c0;
          printf("  %s %6.1f GFLOP/s wall %6.1f per CPU-s (%.3f ms)", l, flop * reps / wall * 1e-9, flop * reps / cpu * 1e-9,
                 wall / reps * 1e3);
        }
        printf("\n");
        fflush(stdout);
      }
    }
  }
  free(a), free(b), free(c);
  return 0;
}
