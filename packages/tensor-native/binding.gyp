{
  "targets": [
    {
      "target_name": "yuan_native",
      "sources": ["csrc/addon.cc", "csrc/matmul.cc", "csrc/elementwise.cc", "csrc/reduce.cc", "csrc/layout.cc", "csrc/fused.cc", "csrc/wformat.cc", "csrc/decode.cc", "csrc/addon_weights.cc", "csrc/attention.cc", "csrc/linalg.cc", "csrc/pool.cc"],
      "cflags_cc": ["-O3", "-march=<!(node -p \"process.env.YUAN_NATIVE_MARCH || 'native'\")", "-fno-math-errno", "-fno-trapping-math", "-fopenmp", "-std=c++17"],
      "cflags_cc!": ["-fno-exceptions"],
      "include_dirs": ["<!(node -p \"process.env.YUAN_CBLAS_INCLUDE || '/usr/include/x86_64-linux-gnu'\")"],
      "libraries": ["<!@(node -p \"process.env.YUAN_BLAS_LINK || '-lopenblas'\")", "-fopenmp"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
