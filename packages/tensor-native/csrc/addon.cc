// N-API bindings: each function takes the Float32Array/Int32Array views of tensors that live in JS and writes its
// result into a caller-allocated output array, so no tensor data is copied on the way in or out.
#include <node_api.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <vector>

#include "kernels.h"

bool registerWeightFunctions(napi_env env, napi_value exports);

namespace {

#define NAPI_OK(call)                                           \
  do {                                                          \
    if ((call) != napi_ok) {                                    \
      napi_throw_error(env, nullptr, "tensor-native: " #call);  \
      return nullptr;                                           \
    }                                                           \
  } while (0)

struct Args {
  napi_env env;
  size_t argc = 24;
  napi_value argv[24];
  bool ok = true;

  Args(napi_env e, napi_callback_info info) : env(e) {
    if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) ok = false;
  }
  template <typename T>
  T* array(size_t i, napi_typedarray_type want, size_t* length = nullptr) {
    napi_typedarray_type type;
    size_t len = 0;
    void* data = nullptr;
    if (!ok || i >= argc || napi_get_typedarray_info(env, argv[i], &type, &len, &data, nullptr, nullptr) != napi_ok ||
        type != want) {
      fail(want == napi_float32_array ? "expected a Float32Array argument"
            : want == napi_int32_array ? "expected an Int32Array argument"
                                       : "expected a Uint8Array argument");
      return nullptr;
    }
    if (length) *length = len;
    return static_cast<T*>(data);
  }
  float* f32(size_t i, size_t* length = nullptr) { return array<float>(i, napi_float32_array, length); }
  // A Float32Array, or null for null/undefined (optional inputs).
  float* optF32(size_t i, size_t* length = nullptr) {
    napi_valuetype t = napi_undefined;
    if (ok && i < argc && napi_typeof(env, argv[i], &t) != napi_ok) t = napi_undefined;
    if (ok && (i >= argc || t == napi_null || t == napi_undefined)) {
      if (length) *length = 0;
      return nullptr;
    }
    return f32(i, length);
  }
  double real(size_t i) {
    double v = 0;
    if (!ok || i >= argc || napi_get_value_double(env, argv[i], &v) != napi_ok) fail("expected a number argument");
    return v;
  }
  int32_t* i32(size_t i, size_t* length = nullptr) { return array<int32_t>(i, napi_int32_array, length); }
  int64_t num(size_t i) {
    int64_t v = 0;
    if (!ok || i >= argc || napi_get_value_int64(env, argv[i], &v) != napi_ok) fail("expected a number argument");
    return v;
  }
  bool flag(size_t i) {
    bool v = false;
    if (!ok || i >= argc || napi_get_value_bool(env, argv[i], &v) != napi_ok) fail("expected a boolean argument");
    return v;
  }
  void fail(const char* message) {
    if (ok) napi_throw_type_error(env, nullptr, message);
    ok = false;
  }
};

napi_value Gemm(napi_env env, napi_callback_info info) {
  Args a(env, info);
  const float* x = a.f32(0);
  const float* y = a.f32(1);
  float* out = a.f32(2);
  size_t batch = 0, batchB = 0;
  const int32_t* ai = a.i32(3, &batch);
  const int32_t* bi = a.i32(4, &batchB);
  const int64_t m = a.num(5), n = a.num(6), k = a.num(7);
  const bool ta = a.flag(8), tb = a.flag(9);
  if (!a.ok) return nullptr;
  if (batch != batchB) {
    a.fail("gemm: batch index arrays differ in length");
    return nullptr;
  }
  ynk::batchedGemm(x, y, out, ai, bi, int(batch), int(m), int(n), int(k), ta, tb);
  return nullptr;
}

napi_value Binary(napi_env env, napi_callback_info info) {
  Args a(env, info);
  const int op = int(a.num(0));
  const float* x = a.f32(1);
  const float* y = a.f32(2);
  float* out = a.f32(3);
  size_t rank = 0;
  const int32_t* shape = a.i32(4, &rank);
  const int32_t* xs = a.i32(5);
  const int32_t* ys = a.i32(6);
  if (!a.ok) return nullptr;
  ynk::binary(op, x, y, out, int(rank), shape, xs, ys);
  return nullptr;
}

napi_value Compare(napi_env env, napi_callback_info info) {
  Args a(env, info);
  const int op = int(a.num(0));
  const float* x = a.f32(1);
  const float* y = a.f32(2);
  uint8_t* out = a.array<uint8_t>(3, napi_uint8_array);
  size_t rank = 0;
  const int32_t* shape = a.i32(4, &rank);
  const int32_t* xs = a.i32(5);
  const int32_t* ys = a.i32(6);
  if (!a.ok) return nullptr;
  ynk::compare(op, x, y, out, int(rank), shape, xs, ys);
  return nullptr;
}

napi_value Unary(napi_env env, napi_callback_info info) {
  Args a(env, info);
  const int op = int(a.num(0));
  size_t n = 0;
  const float* x = a.f32(1, &n);
  float* out = a.f32(2);
  if (!a.ok) return nullptr;
  ynk::unary(op, x, out, int64_t(n));
  return nullptr;
}

napi_value Reduce(napi_env env, napi_callback_info info) {
  Args a(env, info);
  const int op = int(a.num(0));
  const float* x = a.f32(1);
  float* out = a.f32(2);
  const int64_t outer = a.num(3), inner = a.num(4);
  const bool leading = a.argc > 5 && a.flag(5);
  if (!a.ok) return nullptr;
  if (leading) ynk::reduceOuter(op, x, out, outer, inner);
  else ynk::reduceInner(op, x, out, outer, inner);
  return nullptr;
}

napi_value Softmax(napi_env env, napi_callback_info info) {
  Args a(env, info);
  const float* x = a.f32(0);
  float* out = a.f32(1);
  const int64_t rows = a.num(2), cols = a.num(3);
  if (!a.ok) return nullptr;
  ynk::softmax(x, out, rows, cols);
  return nullptr;
}

napi_value Transpose(napi_env env, napi_callback_info info) {
  Args a(env, info);
  const float* x = a.f32(0);
  float* out = a.f32(1);
  size_t rank = 0;
  const int32_t* shape = a.i32(2, &rank);
  const int32_t* perm = a.i32(3);
  if (!a.ok) return nullptr;
  ynk::transpose(x, out, int(rank), shape, perm);
  return nullptr;
}

napi_value CopyBox(napi_env env, napi_callback_info info) {
  Args a(env, info);
  const float* src = a.f32(0);
  size_t rank = 0;
  const int32_t* srcShape = a.i32(1, &rank);
  const int32_t* srcBegin = a.i32(2);
  float* dst = a.f32(3);
  const int32_t* dstShape = a.i32(4);
  const int32_t* dstBegin = a.i32(5);
  const int32_t* size = a.i32(6);
  if (!a.ok) return nullptr;
  ynk::copyBox(src, srcShape, srcBegin, dst, dstShape, dstBegin, size, int(rank));
  return nullptr;
}

napi_value Fill(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t n = 0;
  float* out = a.f32(0, &n);
  napi_value v = a.argc > 1 ? a.argv[1] : nullptr;
  double value = 0;
  if (!a.ok || !v || napi_get_value_double(env, v, &value) != napi_ok) {
    a.fail("fill: expected (Float32Array, number)");
    return nullptr;
  }
  ynk::fill(out, int64_t(n), float(value));
  return nullptr;
}

napi_value Gather(napi_env env, napi_callback_info info) {
  Args a(env, info);
  const float* x = a.f32(0);
  size_t m = 0;
  const int32_t* idx = a.i32(1, &m);
  float* out = a.f32(2);
  const int64_t outer = a.num(3), n = a.num(4), inner = a.num(5);
  if (!a.ok) return nullptr;
  napi_value result;
  NAPI_OK(napi_get_boolean(env, ynk::gather(x, idx, out, outer, n, int64_t(m), inner), &result));
  return result;
}

napi_value SegmentSum(napi_env env, napi_callback_info info) {
  Args a(env, info);
  const float* x = a.f32(0);
  size_t n = 0;
  const int32_t* seg = a.i32(1, &n);
  float* out = a.f32(2);
  const int64_t segments = a.num(3), inner = a.num(4);
  if (!a.ok) return nullptr;
  ynk::segmentSum(x, seg, out, int64_t(n), segments, inner);
  return nullptr;
}

napi_value AddN(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  uint32_t count = 0;
  NAPI_OK(napi_get_array_length(env, argv[0], &count));
  std::vector<const float*> xs(count);
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    napi_typedarray_type type;
    size_t len;
    void* data;
    NAPI_OK(napi_get_element(env, argv[0], i, &item));
    NAPI_OK(napi_get_typedarray_info(env, item, &type, &len, &data, nullptr, nullptr));
    xs[i] = static_cast<const float*>(data);
  }
  napi_typedarray_type type;
  size_t n;
  void* out;
  NAPI_OK(napi_get_typedarray_info(env, argv[1], &type, &n, &out, nullptr, nullptr));
  ynk::addN(xs.data(), int(count), static_cast<float*>(out), int64_t(n));
  return nullptr;
}

napi_value RmsNorm(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t n = 0, d = 0, rows = 0;
  const float* x = a.f32(0, &n);
  const float* w = a.f32(1, &d);
  double eps = 0;
  if (a.ok && (a.argc < 3 || napi_get_value_double(env, a.argv[2], &eps) != napi_ok)) a.fail("rmsNorm: expected eps");
  float* out = a.f32(3);
  float* inv = a.f32(4, &rows);
  if (!a.ok) return nullptr;
  if (d == 0 || n != rows * d) {
    a.fail("rmsNorm: x must be [rows, d] with weight [d] and inv [rows]");
    return nullptr;
  }
  ynk::rmsNormForward(x, w, float(eps), out, inv, int64_t(rows), int64_t(d));
  return nullptr;
}

napi_value RmsNormGrad(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t n = 0, d = 0, rows = 0;
  const float* x = a.f32(0, &n);
  const float* w = a.f32(1, &d);
  const float* inv = a.f32(2, &rows);
  const float* dy = a.f32(3);
  float* dx = a.f32(4);
  float* dw = a.f32(5);
  if (!a.ok) return nullptr;
  if (d == 0 || n != rows * d) {
    a.fail("rmsNormGrad: x must be [rows, d] with weight [d] and inv [rows]");
    return nullptr;
  }
  ynk::rmsNormBackward(x, w, inv, dy, dx, dw, int64_t(rows), int64_t(d));
  return nullptr;
}

napi_value Swiglu(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t n = 0, m = 0;
  const float* u = a.f32(0, &n);
  float* out = a.f32(1, &m);
  if (!a.ok) return nullptr;
  if (m == 0 || n != 2 * m || a.argc < 3) {
    a.fail("swiglu: u [rows, 2f] and out [rows, f]");
    return nullptr;
  }
  const int64_t f = a.num(2);
  if (!a.ok || f <= 0 || int64_t(m) % f != 0) {
    a.fail("swiglu: f must divide the output size");
    return nullptr;
  }
  ynk::swigluForward(u, out, int64_t(m) / f, f);
  return nullptr;
}

napi_value SwigluGrad(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t n = 0, m = 0, k = 0;
  const float* u = a.f32(0, &n);
  const float* dy = a.f32(1, &m);
  float* du = a.f32(2, &k);
  const int64_t f = a.num(3);
  if (!a.ok) return nullptr;
  if (m == 0 || n != 2 * m || k != n || f <= 0 || int64_t(m) % f != 0) {
    a.fail("swigluGrad: u [rows, 2f], dy [rows, f], du [rows, 2f]");
    return nullptr;
  }
  ynk::swigluBackward(u, dy, du, int64_t(m) / f, f);
  return nullptr;
}

// ropeHeads(x [B, T, H, d], cos, sin [cb, T, d], out [B, H, T, d], b, t, h, d): see ynk::ropeHeadsForward.
napi_value RopeHeads(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t nx = 0, nc = 0, ns = 0, no = 0;
  const float* x = a.f32(0, &nx);
  const float* cs = a.f32(1, &nc);
  const float* sn = a.f32(2, &ns);
  float* out = a.f32(3, &no);
  const int64_t b = a.num(4), t = a.num(5), h = a.num(6), d = a.num(7);
  if (!a.ok) return nullptr;
  const int64_t rows = t * d;
  if (b <= 0 || t <= 0 || h <= 0 || d <= 0 || d % 2 != 0 || int64_t(nx) != b * t * h * d || no != nx || nc != ns ||
      (int64_t(nc) != rows && int64_t(nc) != b * rows)) {
    a.fail("ropeHeads: x and out [B, T, H, d] with d even, cos and sin [1 or B, T, d]");
    return nullptr;
  }
  ynk::ropeHeadsForward(x, cs, sn, out, b, t, h, d, int64_t(nc) / rows);
  return nullptr;
}

// ropeHeadsGrad(x, cos, sin, dy [B, H, T, d], dx [B, T, H, d], dcos, dsin [cb, T, d], b, t, h, d).
napi_value RopeHeadsGrad(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t nx = 0, nc = 0, ns = 0, ng = 0, ndx = 0, ndc = 0, nds = 0;
  const float* x = a.f32(0, &nx);
  const float* cs = a.f32(1, &nc);
  const float* sn = a.f32(2, &ns);
  const float* dy = a.f32(3, &ng);
  float* dx = a.f32(4, &ndx);
  float* dc = a.f32(5, &ndc);
  float* ds = a.f32(6, &nds);
  const int64_t b = a.num(7), t = a.num(8), h = a.num(9), d = a.num(10);
  if (!a.ok) return nullptr;
  const int64_t rows = t * d;
  if (b <= 0 || t <= 0 || h <= 0 || d <= 0 || d % 2 != 0 || int64_t(nx) != b * t * h * d || ng != nx || ndx != nx ||
      nc != ns || ndc != nc || nds != nc || (int64_t(nc) != rows && int64_t(nc) != b * rows)) {
    a.fail("ropeHeadsGrad: x, dy, dx [B, T, H, d] with d even, cos, sin, dcos, dsin [1 or B, T, d]");
    return nullptr;
  }
  ynk::ropeHeadsBackward(x, cs, sn, dy, dx, dc, ds, b, t, h, d, int64_t(nc) / rows);
  return nullptr;
}

napi_value AdamW(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t n = 0, n1 = 0, n2 = 0, n3 = 0, n4 = 0, n5 = 0, n6 = 0;
  const float* p = a.f32(0, &n);
  const float* g = a.f32(1, &n1);
  const float* m = a.f32(2, &n2);
  const float* v = a.f32(3, &n3);
  float* po = a.f32(4, &n4);
  float* mo = a.f32(5, &n5);
  float* vo = a.f32(6, &n6);
  float h[7];
  for (int i = 0; i < 7; i++) {
    double x = 0;
    if (a.ok && (size_t(7 + i) >= a.argc || napi_get_value_double(env, a.argv[7 + i], &x) != napi_ok)) a.fail("adamw: expected 7 numbers");
    h[i] = float(x);
  }
  if (!a.ok) return nullptr;
  if (n1 != n || n2 != n || n3 != n || n4 != n || n5 != n || n6 != n) {
    a.fail("adamw: all arrays must have the parameter's length");
    return nullptr;
  }
  ynk::adamw(p, g, m, v, po, mo, vo, int64_t(n), ynk::AdamWParams{h[0], h[1], h[2], h[3], h[4], h[5], h[6]});
  return nullptr;
}

// The attention shape from arguments first..first+5 (bh, heads, sq, sk, d, scale), checked against the array lengths.
bool attentionShape(Args& a, size_t first, size_t qLen, size_t kLen, size_t vLen, size_t biasLen, bool hasBias,
                    ynk::AttentionShape* sh) {
  sh->bh = a.num(first);
  sh->heads = a.num(first + 1);
  sh->sq = a.num(first + 2);
  sh->sk = a.num(first + 3);
  sh->d = a.num(first + 4);
  sh->scale = float(a.real(first + 5));
  if (!a.ok) return false;
  if (sh->bh < 1 || sh->heads < 1 || sh->bh % sh->heads != 0 || sh->sq < 1 || sh->sq > sh->sk || sh->d < 1) {
    a.fail("attention: expected bh >= 1 divisible by heads, 1 <= sq <= sk, d >= 1");
    return false;
  }
  if (qLen != size_t(sh->bh * sh->sq * sh->d) || kLen != size_t(sh->bh * sh->sk * sh->d) || vLen != kLen ||
      (hasBias && biasLen != size_t(sh->bh / sh->heads * sh->sk))) {
    a.fail("attention: q [bh, sq, d], k and v [bh, sk, d], bias [bh / heads, sk] do not match the shape arguments");
    return false;
  }
  return true;
}

napi_value AttentionForward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t nq = 0, nk = 0, nv = 0, nb = 0, no = 0, nl = 0;
  const float* q = a.f32(0, &nq);
  const float* k = a.f32(1, &nk);
  const float* v = a.f32(2, &nv);
  const float* bias = a.optF32(3, &nb);
  float* o = a.f32(4, &no);
  float* lse = a.f32(5, &nl);
  ynk::AttentionShape sh{};
  if (!a.ok || !attentionShape(a, 6, nq, nk, nv, nb, bias != nullptr, &sh)) return nullptr;
  if (no != nq || nl != size_t(sh.bh * sh.sq)) {
    a.fail("attention: o must be [bh, sq, d] and lse [bh, sq]");
    return nullptr;
  }
  ynk::attentionForward(q, k, v, bias, o, lse, sh, ynk::threads());
  return nullptr;
}

napi_value AttentionBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  size_t nq = 0, nk = 0, nv = 0, nb = 0, no = 0, nl = 0, ng = 0, ndq = 0, ndk = 0, ndv = 0, ndb = 0;
  const float* q = a.f32(0, &nq);
  const float* k = a.f32(1, &nk);
  const float* v = a.f32(2, &nv);
  const float* bias = a.optF32(3, &nb);
  const float* o = a.f32(4, &no);
  const float* lse = a.f32(5, &nl);
  const float* dout = a.f32(6, &ng);
  float* dq = a.f32(7, &ndq);
  float* dk = a.f32(8, &ndk);
  float* dv = a.f32(9, &ndv);
  float* dbias = a.optF32(10, &ndb);
  ynk::AttentionShape sh{};
  if (!a.ok || !attentionShape(a, 11, nq, nk, nv, nb, bias != nullptr, &sh)) return nullptr;
  if (no != nq || ng != nq || ndq != nq || ndk != nk || ndv != nk || nl != size_t(sh.bh * sh.sq) ||
      (dbias && (!bias || ndb != size_t(sh.bh * sh.sk)))) {
    a.fail("attentionGrad: o, dout and dq must be [bh, sq, d], dk and dv [bh, sk, d], lse [bh, sq], dbias [bh, sk] with a bias");
    return nullptr;
  }
  ynk::attentionBackward(q, k, v, bias, o, lse, dout, dq, dk, dv, dbias, sh, ynk::threads());
  return nullptr;
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  Args a(env, info);
  const int64_t blas = a.num(0), kernels = a.num(1);
  if (!a.ok) return nullptr;
  ynk::setThreads(int(blas), int(kernels));
  return nullptr;
}

napi_value Blas(napi_env env, napi_callback_info) {
  napi_value result;
  NAPI_OK(napi_create_string_utf8(env, ynk::blasName(), NAPI_AUTO_LENGTH, &result));
  return result;
}

napi_value Threads(napi_env env, napi_callback_info) {
  napi_value result;
  NAPI_OK(napi_create_int32(env, ynk::threads(), &result));
  return result;
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"gemm", nullptr, Gemm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"blas", nullptr, Blas, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"binary", nullptr, Binary, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"compare", nullptr, Compare, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"unary", nullptr, Unary, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"reduce", nullptr, Reduce, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"softmax", nullptr, Softmax, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"transpose", nullptr, Transpose, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"copyBox", nullptr, CopyBox, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"fill", nullptr, Fill, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"gather", nullptr, Gather, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"segmentSum", nullptr, SegmentSum, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"addN", nullptr, AddN, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"rmsNorm", nullptr, RmsNorm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"rmsNormGrad", nullptr, RmsNormGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"swiglu", nullptr, Swiglu, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"swigluGrad", nullptr, SwigluGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"ropeHeads", nullptr, RopeHeads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"ropeHeadsGrad", nullptr, RopeHeadsGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adamw", nullptr, AdamW, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attention", nullptr, AttentionForward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attentionGrad", nullptr, AttentionBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"threads", nullptr, Threads, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) return nullptr;
  if (!registerWeightFunctions(env, exports)) return nullptr;
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
