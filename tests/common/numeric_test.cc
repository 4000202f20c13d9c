#include "server/common/numeric.h"

#include <cmath>
#include <cstring>

#include "gtest/gtest.h"

namespace moeserve {
namespace {

TEST(NumericTest, Bf16RoundTripsRepresentableValues) {
  // Every one of the 65536 bf16 values: it is the float with the same top 16 bits, and converts
  // back to itself (zeros, subnormals, infinities and both signs included); NaNs stay NaN.
  int mismatches = 0;
  for (uint32_t b = 0; b <= 0xffff; ++b) {
    const uint16_t bits = static_cast<uint16_t>(b);
    const float f = Bf16ToFloat(bits);
    uint32_t f_bits;
    std::memcpy(&f_bits, &f, sizeof(f));
    const bool nan = (b & 0x7f80) == 0x7f80 && (b & 0x007f) != 0;
    const bool ok = f_bits == b << 16 && (nan ? std::isnan(Bf16ToFloat(FloatToBf16(f))) : FloatToBf16(f) == bits);
    if (!ok && mismatches++ < 10) ADD_FAILURE() << "bf16 0x" << std::hex << b;
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(1.0f)), 1.0f);
}

TEST(NumericTest, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 lies exactly between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.0f + std::ldexp(1.0f, -6));
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(NAN))));
}

TEST(NumericTest, Fp16MatchesIeeeHalf) {
  EXPECT_EQ(Fp16ToFloat(0x3c00), 1.0f);
  EXPECT_EQ(Fp16ToFloat(0xc000), -2.0f);
  EXPECT_EQ(Fp16ToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(Fp16ToFloat(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_TRUE(std::isinf(Fp16ToFloat(0x7c00)));
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = Fp16ToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToFp16(f), h) << "half bits " << h;
  }
  EXPECT_EQ(FloatToFp16(65520.0f), 0x7c00);  // rounds up to infinity
}

TEST(NumericTest, Fp8E4M3DecodesEveryCode) {
  EXPECT_EQ(Fp8E4M3ToFloat(0x00), 0.0f);
  EXPECT_EQ(Fp8E4M3ToFloat(0x38), 1.0f);
  EXPECT_EQ(Fp8E4M3ToFloat(0x7e), 448.0f);
  EXPECT_EQ(Fp8E4M3ToFloat(0xfe), -448.0f);
  EXPECT_EQ(Fp8E4M3ToFloat(0x01), std::ldexp(1.0f, -9));
  EXPECT_TRUE(std::isnan(Fp8E4M3ToFloat(0x7f)));
  for (int b = 0; b < 256; ++b) {
    const float f = Fp8E4M3ToFloat(static_cast<uint8_t>(b));
    if (std::isnan(f) || (f == 0.0f && b == 0x80)) continue;
    ASSERT_EQ(FloatToFp8E4M3(f), b) << "fp8 bits " << b;
  }
  EXPECT_EQ(FloatToFp8E4M3(1000.0f), 0x7e);  // saturates
}

}  // namespace
}  // namespace moeserve
