#ifndef MOESERVE_SERVER_SAMPLING_VEC_MATH_H_
#define MOESERVE_SERVER_SAMPLING_VEC_MATH_H_

// Whole-row float kernels for the sampler: SSE2 (the x86-64 baseline) where it matters, a scalar
// loop elsewhere, with identical results. Rows are a vocabulary long (up to ~256k entries).

#include <cstdint>

#include "absl/types/span.h"

namespace moeserve {

// Largest element; NaNs are skipped and reported through *has_nan. -inf for an empty row.
float MaxValue(absl::Span<const float> x, bool* has_nan);

// Index of the first element equal to the largest (ties go to the lowest index), ignoring NaNs;
// -1 when the row is empty or all NaN.
int32_t ArgMax(absl::Span<const float> x);

// out[i] = exp(x[i] - shift). REQUIRES: shift >= every x[i], finite; out.size() == x.size().
// Within 2 ulp of std::exp for results >= 2^-126; smaller results (and exp(-inf)) are 0.
void ExpShifted(absl::Span<const float> x, float shift, absl::Span<float> out);

// The scalar function behind ExpShifted, for tests. REQUIRES: v <= 0 or v small.
float ExpNonPositive(float v);

// Sum in double with a fixed association (eight interleaved partial sums, then pairwise).
double SumAsDouble(absl::Span<const float> x);

// x[i] /= divisor (IEEE division, not multiplication by the reciprocal).
void DivideInPlace(absl::Span<float> x, float divisor);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_SAMPLING_VEC_MATH_H_
