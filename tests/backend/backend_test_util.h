#ifndef MOESERVE_TESTS_BACKEND_BACKEND_TEST_UTIL_H_
#define MOESERVE_TESTS_BACKEND_BACKEND_TEST_UTIL_H_

// Small helpers for backend tests: host <-> tensor copies, random data, error measures.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "server/backend/backend.h"

namespace moeserve::testing {

inline Tensor MakeF32(Backend& b, Shape shape, const std::vector<float>& v) {
  auto t = b.Allocate(DType::kF32, shape);
  EXPECT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(static_cast<int64_t>(v.size()), shape.numel());
  EXPECT_TRUE(b.CopyFromHost({reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4}, *t).ok());
  return *t;
}

inline Tensor MakeI32(Backend& b, Shape shape, const std::vector<int32_t>& v) {
  auto t = b.Allocate(DType::kI32, shape);
  EXPECT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(static_cast<int64_t>(v.size()), shape.numel());
  EXPECT_TRUE(b.CopyFromHost({reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4}, *t).ok());
  return *t;
}

inline Tensor Empty(Backend& b, DType dtype, Shape shape) {
  auto t = b.Allocate(dtype, shape);
  EXPECT_TRUE(t.ok()) << t.status();
  return *t;
}

inline std::vector<float> ReadF32(Backend& b, const Tensor& t) {
  std::vector<float> v(t.numel());
  EXPECT_TRUE(b.CopyToHostF32(t, absl::MakeSpan(v)).ok());
  return v;
}

inline std::vector<int32_t> ReadI32(Backend& b, const Tensor& t) {
  std::vector<int32_t> v(t.numel());
  EXPECT_TRUE(b.CopyToHost(t, {reinterpret_cast<uint8_t*>(v.data()), v.size() * 4}).ok());
  return v;
}

inline std::vector<float> Random(std::mt19937& rng, int64_t n, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Normwise relative error: max |got - ref| / max |ref|.
inline double RelErr(const std::vector<float>& got, const std::vector<double>& ref) {
  EXPECT_EQ(got.size(), ref.size());
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < std::min(got.size(), ref.size()); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num = std::max(num, std::abs(got[i] - ref[i]));
    den = std::max(den, std::abs(ref[i]));
  }
  return den == 0.0 ? num : num / den;
}

constexpr double kTol = 1e-5;

}  // namespace moeserve::testing

#endif  // MOESERVE_TESTS_BACKEND_BACKEND_TEST_UTIL_H_
