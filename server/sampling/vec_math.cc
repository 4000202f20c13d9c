#include "server/sampling/vec_math.h"

#include <bit>
#include <cmath>
#include <cstddef>
#include <limits>

namespace moeserve {

float MaxValue(absl::Span<const float> x, bool* has_nan) {
  // Eight lanes of running maxima; `v > m` is false for NaN, which is counted separately.
  constexpr int kLanes = 8;
  float m[kLanes];
  int nan_count[kLanes] = {};
  for (float& v : m) v = -std::numeric_limits<float>::infinity();
  const size_t n = x.size(), main = n - n % kLanes;
  for (size_t i = 0; i < main; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const float v = x[i + l];
      m[l] = v > m[l] ? v : m[l];
      nan_count[l] += v != v;
    }
  }
  float best = -std::numeric_limits<float>::infinity();
  int nans = 0;
  for (size_t i = main; i < n; ++i) {
    best = x[i] > best ? x[i] : best;
    nans += x[i] != x[i];
  }
  for (int l = 0; l < kLanes; ++l) {
    best = m[l] > best ? m[l] : best;
    nans += nan_count[l];
  }
  *has_nan = nans > 0;
  return best;
}

int32_t ArgMax(absl::Span<const float> x) {
  bool has_nan = false;
  const float best = MaxValue(x, &has_nan);
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] == best) return static_cast<int32_t>(i);
  }
  return -1;
}

// exp(v) = 2^n * exp(r), n = round(v / ln 2), |r| <= ln2 / 2; exp(r) by its degree-7 Taylor
// polynomial (truncation error < 5e-9 relative). Branch-free so the loop vectorizes.
float ExpNonPositive(float v) {
  constexpr float kMinArg = -87.33654f;  // ln(2^-126): below it the result would be denormal
  const bool underflow = !(v >= kMinArg);  // also true for -inf
  v = underflow ? kMinArg : v;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (v * 1.44269504088896341f + kRound) - kRound;
  float r = v - n * 0.693145751953125f;  // ln 2, high part (exact product for |n| < 2^9)
  r = r - n * 1.428606765330187045e-06f;  // ln 2, low part
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t exponent = static_cast<int32_t>(n) + 127;
  const float scale = std::bit_cast<float>(static_cast<uint32_t>(exponent) << 23);
  const float result = p * scale;
  return underflow ? 0.0f : result;
}

void ExpShifted(absl::Span<const float> x, float shift, absl::Span<float> out) {
  const float* in = x.data();
  float* o = out.data();
  const size_t n = x.size();
  for (size_t i = 0; i < n; ++i) o[i] = ExpNonPositive(in[i] - shift);
}

double SumAsDouble(absl::Span<const float> x) {
  constexpr int kLanes = 8;
  double s[kLanes] = {};
  const size_t n = x.size(), main = n - n % kLanes;
  for (size_t i = 0; i < main; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) s[l] += x[i + l];
  }
  for (size_t i = main; i < n; ++i) s[i - main] += x[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

void DivideInPlace(absl::Span<float> x, float divisor) {
  float* p = x.data();
  const size_t n = x.size();
  for (size_t i = 0; i < n; ++i) p[i] = p[i] / divisor;
}

}  // namespace moeserve
