// N-API bindings of the weight-format kernels (wformat.h): typed arrays in, results written into caller arrays.
#include <fcntl.h>
#include <node_api.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "vexp.h"
#include "wformat.h"
#include "pool.h"

namespace {

// read by every decode kernel call, set by setDecodeThreads, possibly from another JavaScript thread
std::atomic<int> decodeThreads{int(std::thread::hardware_concurrency() ? std::thread::hardware_concurrency() : 1)};

struct In {
  napi_env env;
  size_t argc = 24;
  napi_value argv[24];
  bool ok = true;
  const char* fn;

  In(napi_env e, napi_callback_info info, const char* name) : env(e), fn(name) {
    if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) ok = false;
  }
  void fail(const std::string& what) {
    if (ok) napi_throw_type_error(env, nullptr, (std::string(fn) + ": " + what).c_str());
    ok = false;
  }
  bool isNull(size_t i) {
    napi_valuetype t;
    return i >= argc || napi_typeof(env, argv[i], &t) != napi_ok || t == napi_null || t == napi_undefined;
  }
  template <typename T>
  T* arr(size_t i, napi_typedarray_type want, const char* name, size_t* length) {
    napi_typedarray_type type;
    size_t len = 0;
    void* data = nullptr;
    if (!ok) return nullptr;
    if (i >= argc || napi_get_typedarray_info(env, argv[i], &type, &len, &data, nullptr, nullptr) != napi_ok || type != want) {
      fail(std::string(name) + " has the wrong array type");
      return nullptr;
    }
    *length = len;
    return static_cast<T*>(data);
  }
  int64_t num(size_t i, const char* name) {
    int64_t v = 0;
    if (ok && (i >= argc || napi_get_value_int64(env, argv[i], &v) != napi_ok)) fail(std::string(name) + " must be a number");
    return v;
  }
  double real(size_t i, const char* name) {
    double v = 0;
    if (ok && (i >= argc || napi_get_value_double(env, argv[i], &v) != napi_ok)) fail(std::string(name) + " must be a number");
    return v;
  }
  void need(bool cond, const std::string& what) {
    if (ok && !cond) fail(what);
  }
};

// linearF32 / linearBf16(x, n, w, out, in, y)
napi_value LinearDense(napi_env env, napi_callback_info info, bool bf16) {
  In a(env, info, bf16 ? "linearBf16" : "linearF32");
  size_t nx = 0, nw = 0, ny = 0;
  const float* x = a.arr<float>(0, napi_float32_array, "x", &nx);
  const int64_t n = a.num(1, "n");
  const void* w = bf16 ? static_cast<const void*>(a.arr<uint16_t>(2, napi_uint16_array, "w", &nw))
                       : static_cast<const void*>(a.arr<float>(2, napi_float32_array, "w", &nw));
  const int64_t out = a.num(3, "out"), in = a.num(4, "in");
  float* y = a.arr<float>(5, napi_float32_array, "y", &ny);
  a.need(n > 0 && out > 0 && in > 0, "n, out and in must be positive");
  a.need(nx == size_t(n * in) && nw == size_t(out * in) && ny == size_t(n * out), "x [n, in], w [out, in] and y [n, out] do not match");
  if (!a.ok) return nullptr;
  if (bf16) ynk::linearBf16(x, n, static_cast<const uint16_t*>(w), out, in, y, decodeThreads);
  else ynk::linearF32(x, n, static_cast<const float*>(w), out, in, y, decodeThreads);
  return nullptr;
}
napi_value LinearF32(napi_env env, napi_callback_info info) { return LinearDense(env, info, false); }
napi_value LinearBf16(napi_env env, napi_callback_info info) { return LinearDense(env, info, true); }

// The GPTQ arguments at argv[i..i+8): qweight, qzeros, scales, perm|null, bits, group, in, out, zeroOffset.
bool gptqArgs(In& a, size_t i, ynk::Gptq& q) {
  size_t nq = 0, nz = 0, ns = 0, np = 0;
  q.qweight = a.arr<int32_t>(i, napi_int32_array, "qweight", &nq);
  q.qzeros = a.arr<int32_t>(i + 1, napi_int32_array, "qzeros", &nz);
  q.scales = a.arr<uint16_t>(i + 2, napi_uint16_array, "scales", &ns);
  q.perm = a.isNull(i + 3) ? nullptr : a.arr<int32_t>(i + 3, napi_int32_array, "perm", &np);
  q.bits = int(a.num(i + 4, "bits"));
  q.group = a.num(i + 5, "group");
  q.in = a.num(i + 6, "in");
  q.out = a.num(i + 7, "out");
  q.zeroOffset = int(a.num(i + 8, "zeroOffset"));
  if (!a.ok) return false;
  a.need(q.bits == 4 || q.bits == 8, "bits must be 4 or 8");
  a.need(q.in > 0 && q.out > 0 && q.group > 0, "in, out and group must be positive");
  const int per = 32 / q.bits;
  a.need(q.in % per == 0 && q.group % per == 0, "in and group must be multiples of 32/bits");
  if (!a.ok) return false;
  const int64_t groups = (q.in + q.group - 1) / q.group;
  a.need(nq == size_t(q.in / per * q.out), "qweight must be [in·bits/32, out]");
  a.need(nz == size_t(groups * ((q.out * q.bits + 31) / 32)), "qzeros must be [groups, ceil(out·bits/32)]");
  a.need(ns == size_t(groups * q.out), "scales must be [groups, out]");
  a.need(!q.perm || np == size_t(q.in), "perm must have in entries");
  if (q.perm && a.ok) {
    for (int64_t k = 0; k < q.in; k++) {
      if (q.perm[k] < 0 || q.perm[k] >= q.in) {
        a.fail("perm has an index outside 0..in-1");
        break;
      }
    }
  }
  return a.ok;
}

// linearGptq(x, n, qweight, qzeros, scales, perm, bits, group, in, out, zeroOffset, y)
napi_value LinearGptq(napi_env env, napi_callback_info info) {
  In a(env, info, "linearGptq");
  size_t nx = 0, ny = 0;
  const float* x = a.arr<float>(0, napi_float32_array, "x", &nx);
  const int64_t n = a.num(1, "n");
  ynk::Gptq q{};
  if (!gptqArgs(a, 2, q)) return nullptr;
  float* y = a.arr<float>(11, napi_float32_array, "y", &ny);
  a.need(n > 0 && nx == size_t(n * q.in) && ny == size_t(n * q.out), "x [n, in] and y [n, out] do not match");
  if (!a.ok) return nullptr;
  ynk::linearGptq(x, n, q, y, decodeThreads);
  return nullptr;
}

// linearF32Pair / linearBf16Pair(x, n, wa, outA, wb, outB, in, ya, yb): two products of one input in one call.
napi_value LinearDensePair(napi_env env, napi_callback_info info, bool bf16) {
  In a(env, info, bf16 ? "linearBf16Pair" : "linearF32Pair");
  size_t nx = 0, na = 0, nb = 0, nya = 0, nyb = 0;
  const float* x = a.arr<float>(0, napi_float32_array, "x", &nx);
  const int64_t n = a.num(1, "n");
  auto weight = [&](size_t i, const char* name, size_t* len) {
    return bf16 ? static_cast<const void*>(a.arr<uint16_t>(i, napi_uint16_array, name, len))
                : static_cast<const void*>(a.arr<float>(i, napi_float32_array, name, len));
  };
  const void* wa = weight(2, "wa", &na);
  const int64_t outA = a.num(3, "outA");
  const void* wb = weight(4, "wb", &nb);
  const int64_t outB = a.num(5, "outB"), in = a.num(6, "in");
  float* ya = a.arr<float>(7, napi_float32_array, "ya", &nya);
  float* yb = a.arr<float>(8, napi_float32_array, "yb", &nyb);
  a.need(n > 0 && outA > 0 && outB > 0 && in > 0, "n, outA, outB and in must be positive");
  a.need(nx == size_t(n * in) && na == size_t(outA * in) && nb == size_t(outB * in),
         "x [n, in], wa [outA, in] and wb [outB, in] do not match");
  a.need(nya == size_t(n * outA) && nyb == size_t(n * outB), "ya [n, outA] and yb [n, outB] do not match");
  if (!a.ok) return nullptr;
  if (bf16)
    ynk::linearBf16Pair(x, n, static_cast<const uint16_t*>(wa), outA, static_cast<const uint16_t*>(wb), outB, in, ya, yb,
                        decodeThreads);
  else
    ynk::linearF32Pair(x, n, static_cast<const float*>(wa), outA, static_cast<const float*>(wb), outB, in, ya, yb,
                       decodeThreads);
  return nullptr;
}
napi_value LinearF32Pair(napi_env env, napi_callback_info info) { return LinearDensePair(env, info, false); }
napi_value LinearBf16Pair(napi_env env, napi_callback_info info) { return LinearDensePair(env, info, true); }

// linearGptqPair(x, n, <9 GPTQ arguments of a>, <9 of b>, ya, yb): two products of one input in one call.
napi_value LinearGptqPair(napi_env env, napi_callback_info info) {
  In a(env, info, "linearGptqPair");
  size_t nx = 0, nya = 0, nyb = 0;
  const float* x = a.arr<float>(0, napi_float32_array, "x", &nx);
  const int64_t n = a.num(1, "n");
  ynk::Gptq qa{}, qb{};
  if (!gptqArgs(a, 2, qa) || !gptqArgs(a, 11, qb)) return nullptr;
  float* ya = a.arr<float>(20, napi_float32_array, "ya", &nya);
  float* yb = a.arr<float>(21, napi_float32_array, "yb", &nyb);
  a.need(qa.in == qb.in, "the two weights differ in input width");
  a.need(n > 0 && nx == size_t(n * qa.in), "x [n, in] does not match the weights");
  a.need(nya == size_t(n * qa.out) && nyb == size_t(n * qb.out), "ya [n, outA] and yb [n, outB] do not match");
  if (!a.ok) return nullptr;
  ynk::linearGptqPair(x, n, qa, qb, ya, yb, decodeThreads);
  return nullptr;
}

// linearF32GradInput / linearBf16GradInput(dy, n, w, out, in, dx)
napi_value DenseGradInput(napi_env env, napi_callback_info info, bool bf16) {
  In a(env, info, bf16 ? "linearBf16GradInput" : "linearF32GradInput");
  size_t ndy = 0, nw = 0, ndx = 0;
  const float* dy = a.arr<float>(0, napi_float32_array, "dy", &ndy);
  const int64_t n = a.num(1, "n");
  const void* w = bf16 ? static_cast<const void*>(a.arr<uint16_t>(2, napi_uint16_array, "w", &nw))
                       : static_cast<const void*>(a.arr<float>(2, napi_float32_array, "w", &nw));
  const int64_t out = a.num(3, "out"), in = a.num(4, "in");
  float* dx = a.arr<float>(5, napi_float32_array, "dx", &ndx);
  a.need(n > 0 && out > 0 && in > 0, "n, out and in must be positive");
  a.need(ndy == size_t(n * out) && nw == size_t(out * in) && ndx == size_t(n * in),
         "dy [n, out], w [out, in] and dx [n, in] do not match");
  if (!a.ok) return nullptr;
  if (bf16) ynk::linearBf16GradInput(dy, n, static_cast<const uint16_t*>(w), out, in, dx, decodeThreads);
  else ynk::linearF32GradInput(dy, n, static_cast<const float*>(w), out, in, dx, decodeThreads);
  return nullptr;
}
napi_value LinearF32GradInput(napi_env env, napi_callback_info info) { return DenseGradInput(env, info, false); }
napi_value LinearBf16GradInput(napi_env env, napi_callback_info info) { return DenseGradInput(env, info, true); }

// linearGptqGradInput(dy, n, qweight, qzeros, scales, perm, bits, group, in, out, zeroOffset, dx)
napi_value LinearGptqGradInput(napi_env env, napi_callback_info info) {
  In a(env, info, "linearGptqGradInput");
  size_t ndy = 0, ndx = 0;
  const float* dy = a.arr<float>(0, napi_float32_array, "dy", &ndy);
  const int64_t n = a.num(1, "n");
  ynk::Gptq q{};
  if (!gptqArgs(a, 2, q)) return nullptr;
  float* dx = a.arr<float>(11, napi_float32_array, "dx", &ndx);
  a.need(n > 0 && ndy == size_t(n * q.out) && ndx == size_t(n * q.in), "dy [n, out] and dx [n, in] do not match");
  if (!a.ok) return nullptr;
  ynk::linearGptqGradInput(dy, n, q, dx, decodeThreads);
  return nullptr;
}

// dequantGptq(qweight, qzeros, scales, null, bits, group, in, out, zeroOffset, c0, c1, wt [in, c1-c0])
napi_value DequantGptq(napi_env env, napi_callback_info info) {
  In a(env, info, "dequantGptq");
  ynk::Gptq q{};
  if (!gptqArgs(a, 0, q)) return nullptr;
  const int64_t c0 = a.num(9, "c0"), c1 = a.num(10, "c1");
  size_t nw = 0;
  float* wt = a.arr<float>(11, napi_float32_array, "wt", &nw);
  a.need(c0 >= 0 && c1 <= q.out && c0 < c1 && nw == size_t(q.in * (c1 - c0)), "wt must be [in, c1 - c0] for 0 <= c0 < c1 <= out");
  if (!a.ok) return nullptr;
  ynk::dequantGptq(q, c0, c1, wt);
  return nullptr;
}

napi_value Bf16ToF32(napi_env env, napi_callback_info info) {
  In a(env, info, "bf16ToF32");
  size_t ns = 0, nd = 0;
  const uint16_t* s = a.arr<uint16_t>(0, napi_uint16_array, "src", &ns);
  float* d = a.arr<float>(1, napi_float32_array, "dst", &nd);
  a.need(ns == nd, "src and dst differ in length");
  if (a.ok) ynk::bf16ToF32(s, d, int64_t(ns));
  return nullptr;
}

napi_value F32ToBf16(napi_env env, napi_callback_info info) {
  In a(env, info, "f32ToBf16");
  size_t ns = 0, nd = 0;
  const float* s = a.arr<float>(0, napi_float32_array, "src", &ns);
  uint16_t* d = a.arr<uint16_t>(1, napi_uint16_array, "dst", &nd);
  a.need(ns == nd, "src and dst differ in length");
  if (a.ok) ynk::f32ToBf16(s, d, int64_t(ns));
  return nullptr;
}

// rope(x, n, stride, heads, d, pos, base)
napi_value Rope(napi_env env, napi_callback_info info) {
  In a(env, info, "rope");
  size_t nx = 0, np = 0;
  float* x = a.arr<float>(0, napi_float32_array, "x", &nx);
  const int64_t n = a.num(1, "n"), stride = a.num(2, "stride"), heads = a.num(3, "heads"), d = a.num(4, "d");
  const int32_t* pos = a.arr<int32_t>(5, napi_int32_array, "pos", &np);
  const double base = a.real(6, "base");
  a.need(n > 0 && d > 0 && d % 2 == 0 && heads > 0 && stride >= heads * d, "needs n > 0, even d and stride >= heads·d");
  a.need(np == size_t(n) && nx >= size_t((n - 1) * stride + heads * d), "x [n, stride] and pos [n] do not match");
  if (a.ok) ynk::rope(x, n, stride, heads, d, pos, float(base));
  return nullptr;
}

// attend(q, n, qStride, k, v, kvStride, start, heads, d, out)
napi_value Attend(napi_env env, napi_callback_info info) {
  In a(env, info, "attend");
  size_t nq = 0, nk = 0, nv = 0, no = 0;
  const float* q = a.arr<float>(0, napi_float32_array, "q", &nq);
  const int64_t n = a.num(1, "n"), qs = a.num(2, "qStride");
  const float* k = a.arr<float>(3, napi_float32_array, "k", &nk);
  const float* v = a.arr<float>(4, napi_float32_array, "v", &nv);
  const int64_t kvs = a.num(5, "kvStride"), start = a.num(6, "start"), heads = a.num(7, "heads"), d = a.num(8, "d");
  float* out = a.arr<float>(9, napi_float32_array, "out", &no);
  a.need(n > 0 && start >= 0 && heads > 0 && d > 0 && qs >= heads * d && kvs >= heads * d, "bad sizes");
  const size_t len = size_t(start + n);
  a.need(nq >= size_t((n - 1) * qs + heads * d), "q is shorter than [n, qStride]");
  a.need(nk >= (len - 1) * kvs + heads * d && nv >= (len - 1) * kvs + heads * d, "k and v hold fewer than start + n positions");
  a.need(no == size_t(n * heads * d), "out must be [n, heads·d]");
  if (a.ok) ynk::attend(q, n, qs, k, v, kvs, start, heads, d, out, decodeThreads);
  return nullptr;
}

// attendRows(q, n, qStride, ks: Float32Array[], vs: Float32Array[], cache: Int32Array [n], seen: Int32Array [n],
//            kvStride, heads, d, out): row i attends positions [0, seen[i]) of cache cache[i].
napi_value AttendRows(napi_env env, napi_callback_info info) {
  In a(env, info, "attendRows");
  size_t nq = 0, nc = 0, ns = 0, no = 0;
  const float* q = a.arr<float>(0, napi_float32_array, "q", &nq);
  const int64_t n = a.num(1, "n"), qs = a.num(2, "qStride");
  const int32_t* cache = a.arr<int32_t>(5, napi_int32_array, "cache", &nc);
  const int32_t* seen = a.arr<int32_t>(6, napi_int32_array, "seen", &ns);
  const int64_t kvs = a.num(7, "kvStride"), heads = a.num(8, "heads"), d = a.num(9, "d");
  float* out = a.arr<float>(10, napi_float32_array, "out", &no);
  if (!a.ok) return nullptr;
  a.need(n > 0 && heads > 0 && d > 0 && qs >= heads * d && kvs >= heads * d, "bad sizes");
  a.need(nq >= size_t((n - 1) * qs + heads * d), "q is shorter than [n, qStride]");
  a.need(nc == size_t(n) && ns == size_t(n), "cache and seen must have n entries");
  a.need(no == size_t(n * heads * d), "out must be [n, heads·d]");
  uint32_t caches = 0, vCaches = 0;
  bool isArray = false, vIsArray = false;
  napi_is_array(env, a.argv[3], &isArray);
  napi_is_array(env, a.argv[4], &vIsArray);
  a.need(a.argc > 4 && isArray && vIsArray, "ks and vs must be arrays of Float32Arrays");
  if (!a.ok) return nullptr;
  napi_get_array_length(env, a.argv[3], &caches);
  napi_get_array_length(env, a.argv[4], &vCaches);
  a.need(caches == vCaches, "ks and vs differ in length");
  std::vector<const float*> ks(caches), vs(caches);
  std::vector<size_t> lengths(caches);
  for (uint32_t c = 0; c < caches && a.ok; c++) {
    napi_value kc, vc;
    napi_typedarray_type tk, tv;
    size_t lk = 0, lv = 0;
    void *dk = nullptr, *dv = nullptr;
    if (napi_get_element(env, a.argv[3], c, &kc) != napi_ok || napi_get_element(env, a.argv[4], c, &vc) != napi_ok ||
        napi_get_typedarray_info(env, kc, &tk, &lk, &dk, nullptr, nullptr) != napi_ok ||
        napi_get_typedarray_info(env, vc, &tv, &lv, &dv, nullptr, nullptr) != napi_ok || tk != napi_float32_array ||
        tv != napi_float32_array) {
      a.fail("ks and vs must be arrays of Float32Arrays");
      break;
    }
    ks[c] = static_cast<const float*>(dk);
    vs[c] = static_cast<const float*>(dv);
    lengths[c] = std::min(lk, lv);
  }
  for (int64_t i = 0; i < n && a.ok; i++) {
    if (cache[i] < 0 || uint32_t(cache[i]) >= caches) a.fail("cache has an index outside 0..ks.length-1");
    else if (seen[i] < 1 || lengths[cache[i]] < size_t((seen[i] - 1) * kvs + heads * d))
      a.fail("seen has an entry below 1 or beyond its cache's positions");
  }
  if (a.ok) ynk::attendRows(q, n, qs, ks.data(), vs.data(), cache, seen, kvs, heads, d, out, decodeThreads);
  return nullptr;
}

uint64_t seedOf(In& a, size_t i) {
  const double s = a.real(i, "seed");
  a.need(s >= 0 && s <= 9007199254740991.0 && s == double(uint64_t(s)), "seed must be a non-negative safe integer");
  return uint64_t(s);
}

// randomTable(out Float32Array | Uint16Array (bf16), seed, table Float32Array[65536])
napi_value RandomTable(napi_env env, napi_callback_info info) {
  In a(env, info, "randomTable");
  napi_typedarray_type type;
  size_t n = 0, nt = 0;
  void* data = nullptr;
  if (a.argc < 3 || napi_get_typedarray_info(env, a.argv[0], &type, &n, &data, nullptr, nullptr) != napi_ok ||
      (type != napi_float32_array && type != napi_uint16_array)) {
    a.fail("out must be a Float32Array or a Uint16Array (bf16)");
    return nullptr;
  }
  const uint64_t seed = seedOf(a, 1);
  const float* table = a.arr<float>(2, napi_float32_array, "table", &nt);
  a.need(nt == 65536, "table must hold 65536 values");
  if (!a.ok) return nullptr;
  if (type == napi_float32_array) ynk::randomTable(static_cast<float*>(data), int64_t(n), seed, table, decodeThreads);
  else ynk::randomTableBf16(static_cast<uint16_t*>(data), int64_t(n), seed, table, decodeThreads);
  return nullptr;
}

// randomWords(out Int32Array | Uint32Array, seed)
napi_value RandomWords(napi_env env, napi_callback_info info) {
  In a(env, info, "randomWords");
  napi_typedarray_type type;
  size_t n = 0;
  void* data = nullptr;
  if (a.argc < 2 || napi_get_typedarray_info(env, a.argv[0], &type, &n, &data, nullptr, nullptr) != napi_ok ||
      (type != napi_int32_array && type != napi_uint32_array)) {
    a.fail("out must be an Int32Array or a Uint32Array");
    return nullptr;
  }
  const uint64_t seed = seedOf(a, 1);
  if (a.ok) ynk::randomWords(static_cast<uint32_t*>(data), int64_t(n), seed, decodeThreads);
  return nullptr;
}

struct Mapping {
  void* base;
  size_t size;
};

void unmap(napi_env, void*, void* hint) {
  Mapping* m = static_cast<Mapping*>(hint);
  munmap(m->base, m->size);
  delete m;
}

// mapFile(path) → ArrayBuffer over a private, copy-on-write mapping of the whole file (unmapped when collected).
napi_value MapFile(napi_env env, napi_callback_info info) {
  In a(env, info, "mapFile");
  size_t len = 0;
  char path[4096];
  if (a.argc < 1 || napi_get_value_string_utf8(env, a.argv[0], path, sizeof(path), &len) != napi_ok) {
    a.fail("expected a path");
    return nullptr;
  }
  const int fd = open(path, O_RDONLY);
  if (fd < 0) {
    napi_throw_error(env, nullptr, (std::string("mapFile: cannot open ") + path + ": " + std::strerror(errno)).c_str());
    return nullptr;
  }
  struct stat st;
  fstat(fd, &st);
  const size_t size = size_t(st.st_size);
  void* base = size ? mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0) : nullptr;
  close(fd);
  if (size && base == MAP_FAILED) {
    napi_throw_error(env, nullptr, (std::string("mapFile: cannot map ") + path + ": " + std::strerror(errno)).c_str());
    return nullptr;
  }
  napi_value result;
  Mapping* m = new Mapping{base, size};
  if (napi_create_external_arraybuffer(env, base, size, unmap, m, &result) != napi_ok) {
    unmap(env, nullptr, m);
    napi_throw_error(env, nullptr, "mapFile: external array buffers are not supported by this Node");
    return nullptr;
  }
  return result;
}

// swigluSplit(a, g, out): out = silu(a)·g elementwise (the SwiGLU activation with its halves in separate arrays).
napi_value SwigluSplit(napi_env env, napi_callback_info info) {
  In a(env, info, "swigluSplit");
  size_t na = 0, ng = 0, no = 0;
  const float* x = a.arr<float>(0, napi_float32_array, "a", &na);
  const float* g = a.arr<float>(1, napi_float32_array, "g", &ng);
  float* out = a.arr<float>(2, napi_float32_array, "out", &no);
  a.need(na == ng && na == no, "a, g and out differ in length");
  if (!a.ok) return nullptr;
#pragma omp simd
  for (size_t i = 0; i < na; i++) out[i] = x[i] / (1.0f + ynk::vexp(-x[i])) * g[i];
  return nullptr;
}

// readAll(x): the sum of x, read with every decode thread (a STREAM-like read of memory, to measure bandwidth).
napi_value ReadAll(napi_env env, napi_callback_info info) {
  In a(env, info, "readAll");
  size_t n = 0;
  const float* x = a.arr<float>(0, napi_float32_array, "x", &n);
  if (!a.ok) return nullptr;
  // one contiguous range of 16 KB blocks per decode thread, on the decode kernels' threads (pool.h)
  const int threads = decodeThreads;
  const int64_t blocks = int64_t(n / 4096), parts = threads;
  std::vector<double> partial(size_t(parts), 0.0);
  ynk::parallelTasks(threads, parts, [&](int64_t t) {
    double sum = 0;
    for (int64_t b = blocks * t / parts; b < blocks * (t + 1) / parts; b++) {
      float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      const float* p = x + b * 4096;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
      for (int i = 0; i < 1024; i++) {
        s0 += p[i];
        s1 += p[i + 1024];
        s2 += p[i + 2048];
        s3 += p[i + 3072];
      }
      sum += double(s0) + s1 + s2 + s3;
    }
    partial[size_t(t)] = sum;
  });
  double total = 0;
  for (double v : partial) total += v;
  napi_value r;
  napi_create_double(env, total, &r);
  return r;
}

napi_value SetDecodeThreads(napi_env env, napi_callback_info info) {
  In a(env, info, "setDecodeThreads");
  const int64_t n = a.num(0, "threads");
  a.need(n >= 1 && n <= 1024, "threads must be in 1..1024");
  if (a.ok) decodeThreads = int(n);
  napi_value r;
  napi_create_int32(env, decodeThreads, &r);
  return r;
}

// setDecodeSpin(micros): how long an idle decode worker spins before it sleeps (pool.h); returns the value in force.
// A negative argument leaves it unchanged (a query).
napi_value SetDecodeSpin(napi_env env, napi_callback_info info) {
  In a(env, info, "setDecodeSpin");
  const int64_t us = a.num(0, "micros");
  a.need(us <= 10'000'000, "micros must be at most 10000000 (10 s)");
  napi_value r;
  if (!a.ok) return nullptr;
  napi_create_int64(env, us < 0 ? ynk::decodeSpinMicros() : ynk::setDecodeSpinMicros(us), &r);
  return r;
}

// inverseUpperCholesky(h, n): in place, U with H⁻¹ = Uᵀ·U; returns false when h is not positive definite.
napi_value InverseUpperCholesky(napi_env env, napi_callback_info info) {
  In a(env, info, "inverseUpperCholesky");
  size_t nh = 0;
  double* h = a.arr<double>(0, napi_float64_array, "h", &nh);
  const int64_t n = a.num(1, "n");
  a.need(n > 0 && nh == size_t(n * n), "h must hold n·n values");
  if (!a.ok) return nullptr;
  napi_value r;
  napi_get_boolean(env, ynk::inverseUpperCholesky(h, n), &r);
  return r;
}

// gemmSub64(transA, m, n, k, a, lda, b, ldb, c, ldc): c −= op(a)·b in Float64 (cblas_dgemm).
napi_value GemmSub64(napi_env env, napi_callback_info info) {
  In a(env, info, "gemmSub64");
  bool trans = false;
  if (a.argc < 1 || napi_get_value_bool(env, a.argv[0], &trans) != napi_ok) a.fail("transA must be a boolean");
  const int64_t m = a.num(1, "m"), n = a.num(2, "n"), k = a.num(3, "k");
  size_t na = 0, nb = 0, nc = 0;
  const double* x = a.arr<double>(4, napi_float64_array, "a", &na);
  const int64_t lda = a.num(5, "lda");
  const double* y = a.arr<double>(6, napi_float64_array, "b", &nb);
  const int64_t ldb = a.num(7, "ldb");
  double* z = a.arr<double>(8, napi_float64_array, "c", &nc);
  const int64_t ldc = a.num(9, "ldc");
  a.need(m > 0 && n > 0 && k > 0, "m, n and k must be positive");
  const int64_t aRows = trans ? k : m, aCols = trans ? m : k;
  a.need(lda >= aCols && ldb >= n && ldc >= n, "a leading dimension is below its matrix's width");
  a.need(na >= size_t((aRows - 1) * lda + aCols), "a is shorter than its matrix");
  a.need(nb >= size_t((k - 1) * ldb + n), "b is shorter than its matrix");
  a.need(nc >= size_t((m - 1) * ldc + n), "c is shorter than its matrix");
  if (!a.ok) return nullptr;
  ynk::gemmSub64(trans, m, n, k, x, lda, y, ldb, z, ldc);
  return nullptr;
}

}  // namespace

// Adds the weight-format functions to the addon's exports (called from Init in addon.cc).
bool registerWeightFunctions(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"linearF32", nullptr, LinearF32, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"linearBf16", nullptr, LinearBf16, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"linearGptq", nullptr, LinearGptq, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"linearF32Pair", nullptr, LinearF32Pair, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"linearBf16Pair", nullptr, LinearBf16Pair, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"linearGptqPair", nullptr, LinearGptqPair, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"linearF32GradInput", nullptr, LinearF32GradInput, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"linearBf16GradInput", nullptr, LinearBf16GradInput, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"linearGptqGradInput", nullptr, LinearGptqGradInput, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"dequantGptq", nullptr, DequantGptq, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"bf16ToF32", nullptr, Bf16ToF32, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"f32ToBf16", nullptr, F32ToBf16, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"rope", nullptr, Rope, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attend", nullptr, Attend, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attendRows", nullptr, AttendRows, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"randomTable", nullptr, RandomTable, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"randomWords", nullptr, RandomWords, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"mapFile", nullptr, MapFile, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"swigluSplit", nullptr, SwigluSplit, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"readAll", nullptr, ReadAll, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setDecodeThreads", nullptr, SetDecodeThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setDecodeSpin", nullptr, SetDecodeSpin, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"inverseUpperCholesky", nullptr, InverseUpperCholesky, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"gemmSub64", nullptr, GemmSub64, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  return napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) == napi_ok;
}
