#include "server/sampling/vec_math.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace moeserve {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(VecMathTest, ExpIsWithinTwoUlp) {
  for (float v = -87.3f; v <= 0.5f; v += 0.000731f) {
    const double want = std::exp(static_cast<double>(v));
    const float got = ExpNonPositive(v);
    const double ulp = std::ldexp(1.0, std::ilogb(static_cast<float>(want)) - 23);
    ASSERT_LE(std::abs(got - want), 2 * ulp) << "v=" << v;
  }
  EXPECT_EQ(ExpNonPositive(0.0f), 1.0f);
  EXPECT_EQ(ExpNonPositive(-kInf), 0.0f);
  EXPECT_EQ(ExpNonPositive(-100.0f), 0.0f);
}

TEST(VecMathTest, ExpShiftedMatchesScalar) {
  std::vector<float> x = {1.0f, -3.0f, 2.5f, -kInf, 0.0f, 2.5f, -200.0f};
  std::vector<float> out(x.size());
  ExpShifted(x, 2.5f, absl::MakeSpan(out));
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(out[i], ExpNonPositive(x[i] - 2.5f)) << i;
  EXPECT_EQ(out[2], 1.0f);
  EXPECT_EQ(out[3], 0.0f);
}

TEST(VecMathTest, MaxAndArgMax) {
  bool has_nan = true;
  std::vector<float> x = {1.0f, 7.0f, -2.0f, 7.0f, 3.0f, 0.0f, 0.0f, 0.0f, 0.0f, 6.9f};
  EXPECT_EQ(MaxValue(x, &has_nan), 7.0f);
  EXPECT_FALSE(has_nan);
  EXPECT_EQ(ArgMax(x), 1);  // first of the tied maxima
  x[4] = std::nanf("");
  EXPECT_EQ(MaxValue(x, &has_nan), 7.0f);
  EXPECT_TRUE(has_nan);
  std::vector<float> all_low(13, -kInf);
  EXPECT_EQ(MaxValue(all_low, &has_nan), -kInf);
  EXPECT_EQ(ArgMax(all_low), 0);
}

TEST(VecMathTest, SumAndDivide) {
  std::vector<float> x(1001);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i);
  EXPECT_EQ(SumAsDouble(x), 1000.0 * 1001.0 / 2.0);
  DivideInPlace(absl::MakeSpan(x), 3.0f);
  EXPECT_EQ(x[10], 10.0f / 3.0f);
}

}  // namespace
}  // namespace moeserve
