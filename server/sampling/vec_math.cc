#include "server/sampling/vec_math.h"

#include <bit>
#include <cmath>
#include <cstddef>
#include <limits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace moeserve {

float MaxValue(absl::Span<const float> x, bool* has_nan) {
  const float* p = x.data();
  const size_t n = x.size();
  size_t i = 0;
  float best = -std::numeric_limits<float>::infinity();
  bool nan = false;
#if defined(__SSE2__)
  // maxps(v, m) returns m when v is NaN; NaNs are collected by an unordered compare.
  __m128 m = _mm_set1_ps(best), m2 = m;
  __m128 unordered = _mm_setzero_ps();
  for (; i + 8 <= n; i += 8) {
    const __m128 v = _mm_loadu_ps(p + i), v2 = _mm_loadu_ps(p + i + 4);
    m = _mm_max_ps(v, m);
    m2 = _mm_max_ps(v2, m2);
    unordered = _mm_or_ps(unordered, _mm_or_ps(_mm_cmpunord_ps(v, v), _mm_cmpunord_ps(v2, v2)));
  }
  m = _mm_max_ps(m, m2);
  float lanes[4];
  _mm_storeu_ps(lanes, m);
  for (float v : lanes) best = v > best ? v : best;
  nan = _mm_movemask_ps(unordered) != 0;
#endif
  for (; i < n; ++i) {
    best = p[i] > best ? p[i] : best;
    nan |= p[i] != p[i];
  }
  *has_nan = nan;
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
// polynomial (truncation error < 5e-9 relative). No FMA: ISO C++ mode keeps a*b+c as two roundings.
namespace {
constexpr float kExpMinArg = -87.33654f;  // ln(2^-126): below it the result would be denormal
constexpr float kExpRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693145751953125f;  // exact product with |n| < 2^9
constexpr float kLn2Lo = 1.428606765330187045e-06f;
constexpr float kExpC7 = 1.0f / 5040.0f, kExpC6 = 1.0f / 720.0f, kExpC5 = 1.0f / 120.0f;
constexpr float kExpC4 = 1.0f / 24.0f, kExpC3 = 1.0f / 6.0f;

inline float ExpImpl(float v) {
  const bool underflow = !(v >= kExpMinArg);  // also true for -inf
  v = underflow ? kExpMinArg : v;
  const float n = (v * kLog2e + kExpRound) - kExpRound;
  float r = v - n * kLn2Hi;
  r = r - n * kLn2Lo;
  float p = kExpC7;
  p = p * r + kExpC6;
  p = p * r + kExpC5;
  p = p * r + kExpC4;
  p = p * r + kExpC3;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t exponent = static_cast<int32_t>(n) + 127;
  const float scale = std::bit_cast<float>(static_cast<uint32_t>(exponent) << 23);
  const float result = p * scale;
  return underflow ? 0.0f : result;
}

}  // namespace

// The scalar reference; ExpShifted runs the same operations four lanes at a time.
float ExpNonPositive(float v) { return ExpImpl(v); }

void ExpShifted(absl::Span<const float> x, float shift, absl::Span<float> out) {
  const float* in = x.data();
  float* o = out.data();
  const size_t n = x.size();
  size_t i = 0;
#if defined(__SSE2__)
  // ExpImpl four lanes at a time, the same operations in the same order (bit-identical).
  const __m128 vshift = _mm_set1_ps(shift), vmin = _mm_set1_ps(kExpMinArg);
  const __m128 vround = _mm_set1_ps(kExpRound), vlog2e = _mm_set1_ps(kLog2e);
  const __m128 vln2hi = _mm_set1_ps(kLn2Hi), vln2lo = _mm_set1_ps(kLn2Lo);
  const __m128 one = _mm_set1_ps(1.0f);
  const __m128i bias = _mm_set1_epi32(127);
  for (; i + 4 <= n; i += 4) {
    __m128 v = _mm_sub_ps(_mm_loadu_ps(in + i), vshift);
    const __m128 underflow = _mm_cmpnge_ps(v, vmin);
    v = _mm_or_ps(_mm_and_ps(underflow, vmin), _mm_andnot_ps(underflow, v));
    const __m128 k = _mm_sub_ps(_mm_add_ps(_mm_mul_ps(v, vlog2e), vround), vround);
    __m128 r = _mm_sub_ps(v, _mm_mul_ps(k, vln2hi));
    r = _mm_sub_ps(r, _mm_mul_ps(k, vln2lo));
    __m128 p = _mm_set1_ps(kExpC7);
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(kExpC6));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(kExpC5));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(kExpC4));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(kExpC3));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(0.5f));
    p = _mm_add_ps(_mm_mul_ps(p, r), one);
    p = _mm_add_ps(_mm_mul_ps(p, r), one);
    const __m128i e = _mm_slli_epi32(_mm_add_epi32(_mm_cvttps_epi32(k), bias), 23);
    const __m128 result = _mm_mul_ps(p, _mm_castsi128_ps(e));
    _mm_storeu_ps(o + i, _mm_andnot_ps(underflow, result));
  }
#endif
  for (; i < n; ++i) o[i] = ExpImpl(in[i] - shift);
}

double SumAsDouble(absl::Span<const float> x) {
  // Eight partial sums: lane l takes the elements i with i % 8 == l, combined pairwise at the end.
  const float* p = x.data();
  const size_t n = x.size(), main = n - n % 8;
  double s[8] = {};
#if defined(__SSE2__)
  __m128d acc[4] = {_mm_setzero_pd(), _mm_setzero_pd(), _mm_setzero_pd(), _mm_setzero_pd()};
  for (size_t i = 0; i < main; i += 8) {
    const __m128 lo = _mm_loadu_ps(p + i), hi = _mm_loadu_ps(p + i + 4);
    acc[0] = _mm_add_pd(acc[0], _mm_cvtps_pd(lo));                     // lanes 0, 1
    acc[1] = _mm_add_pd(acc[1], _mm_cvtps_pd(_mm_movehl_ps(lo, lo)));  // lanes 2, 3
    acc[2] = _mm_add_pd(acc[2], _mm_cvtps_pd(hi));                     // lanes 4, 5
    acc[3] = _mm_add_pd(acc[3], _mm_cvtps_pd(_mm_movehl_ps(hi, hi)));  // lanes 6, 7
  }
  for (int k = 0; k < 4; ++k) _mm_storeu_pd(s + 2 * k, acc[k]);
#else
  for (size_t i = 0; i < main; i += 8) {
    for (int l = 0; l < 8; ++l) s[l] += p[i + l];
  }
#endif
  for (size_t i = main; i < n; ++i) s[i - main] += p[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

void DivideInPlace(absl::Span<float> x, float divisor) {
  float* p = x.data();
  const size_t n = x.size();
  for (size_t i = 0; i < n; ++i) p[i] = p[i] / divisor;
}

}  // namespace moeserve
