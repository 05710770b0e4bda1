// A vectorizable expf for the kernels' inner loops (glibc's expf is a scalar call of about 15 ns here).
#pragma once
#include <cmath>
#include <cstdint>

namespace ynk {

// exp on Cephes' polynomial (within 2 ulp of expf); GCC vectorizes it with -fno-math-errno -fno-trapping-math.
// Below -87 it returns 0 (the true value is under 1.7e-38); NaN stays NaN.
inline float vexp(float x) {
  float c = x < -87.0f ? -87.0f : x;
  c = c > 88.0f ? 88.0f : c;
  const float n = std::floor(c * 1.44269504088896341f + 0.5f);
  const float r = c - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const float e = y * __builtin_bit_cast(float, (int32_t(n) + 127) << 23);
  return x < -87.0f ? 0.0f : (x > 88.0f ? INFINITY : (x != x ? x : e));
}

}  // namespace ynk
