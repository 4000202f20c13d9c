#include "server/sampling/philox.h"

#include <cmath>

#include "gtest/gtest.h"

namespace moeserve {
namespace {

// Known-answer vectors of Philox4x32-10 from the Random123 distribution (kat_vectors).
TEST(PhiloxTest, KnownAnswers) {
  EXPECT_EQ(Philox4x32_10({0, 0, 0, 0}, 0, 0), (Philox4x32{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(Philox4x32_10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, 0xffffffffu, 0xffffffffu),
            (Philox4x32{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(Philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, 0xa4093822u, 0x299f31d0u),
            (Philox4x32{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(PhiloxTest, UniformIsBuiltFromTheFirstTwoWords) {
  const uint64_t seed = 0x0123456789abcdefull, step = 0x100000002ull;
  const Philox4x32 r = Philox4x32_10({2u, 1u, 0u, 0u}, 0x89abcdefu, 0x01234567u);
  const double expected = static_cast<double>((uint64_t{r[1]} << 32 | r[0]) >> 11) * 0x1.0p-53;
  EXPECT_EQ(SamplingUniform(seed, step), expected);
}

TEST(PhiloxTest, UniformMoments) {
  constexpr int kN = 200000;
  double sum = 0.0, sum_sq = 0.0;
  for (int i = 0; i < kN; ++i) {
    const double u = SamplingUniform(42, i);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    sum_sq += u * u;
  }
  EXPECT_NEAR(sum / kN, 0.5, 0.005);
  EXPECT_NEAR(sum_sq / kN - (sum / kN) * (sum / kN), 1.0 / 12.0, 0.002);
  EXPECT_NE(SamplingUniform(1, 0), SamplingUniform(2, 0));
  EXPECT_NE(SamplingUniform(1, 0), SamplingUniform(1, 1));
}

}  // namespace
}  // namespace moeserve
