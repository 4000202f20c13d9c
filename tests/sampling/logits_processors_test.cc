#include "server/sampling/logits_processors.h"

#include <bit>
#include <iterator>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace moeserve {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(LogitsProcessorsTest, LogitBiasAddsPerToken) {
  std::vector<float> l = {1.0f, 2.0f, 3.0f, 4.0f};
  ApplyLogitBias({{0, 0.5f}, {3, -100.0f}, {9, 5.0f}}, absl::MakeSpan(l));
  EXPECT_EQ(l, (std::vector<float>{1.5f, 2.0f, 3.0f, -96.0f}));
}

TEST(LogitsProcessorsTest, SuppressTokensSetsMinusInfinity) {
  std::vector<float> l = {1.0f, 2.0f, 3.0f};
  SuppressTokens(std::vector<int32_t>{2, 0, 2, -1, 7}, absl::MakeSpan(l));
  EXPECT_EQ(l, (std::vector<float>{-kInf, 2.0f, -kInf}));
}

// Every kind of mask word (all clear, all set, mixed, each 4-bit group value) and a partial last
// word, against the definition bit by bit; allowed values keep their bits (NaN and -0 included).
TEST(LogitsProcessorsTest, CopyAllowedLogitsKeepsSetBitsOnly) {
  for (const size_t n : {size_t{1}, size_t{31}, size_t{32}, size_t{100}, size_t{200}, size_t{1000}}) {
    std::vector<float> src(n);
    for (size_t i = 0; i < n; ++i) src[i] = static_cast<float>(i) * 0.5f - 7.0f;
    src[0] = std::numeric_limits<float>::quiet_NaN();
    if (n > 5) src[5] = -0.0f;
    std::vector<uint32_t> mask((n + 31) / 32);
    const uint32_t patterns[] = {0u, ~0u, 0x76543210u, 0xFEDCBA98u, 0x80000001u, 0x0F0F0F0Fu, 0xA5A5A5A5u};
    for (size_t w = 0; w < mask.size(); ++w) mask[w] = patterns[w % std::size(patterns)] ^ (w / 7 == 0 ? 0u : 0x11u);
    std::vector<float> dst(n, 123.0f);
    CopyAllowedLogits(src, mask.data(), absl::MakeSpan(dst));
    for (size_t i = 0; i < n; ++i) {
      const bool allowed = ((mask[i / 32] >> (i % 32)) & 1u) != 0;
      const float want = allowed ? src[i] : -kInf;
      EXPECT_EQ(std::bit_cast<uint32_t>(dst[i]), std::bit_cast<uint32_t>(want)) << "n " << n << " id " << i;
    }
  }
}

TEST(LogitsProcessorsTest, RepetitionPenaltyDividesPositiveMultipliesNegative) {
  Penalties pen(6);
  std::vector<float> l = {2.0f, -2.0f, 0.0f, 4.0f, -1.0f, 3.0f};
  // Prompt {0, 1, 0}, output {2, 3, 3}: ids 0..3 once each, whatever their multiplicity.
  ASSERT_TRUE(
      pen.Apply(2.0f, 0.0f, 0.0f, std::vector<int32_t>{0, 1, 0}, std::vector<int32_t>{2, 3, 3}, absl::MakeSpan(l))
          .ok());
  EXPECT_EQ(l, (std::vector<float>{1.0f, -4.0f, 0.0f, 2.0f, -1.0f, 3.0f}));
}

TEST(LogitsProcessorsTest, FrequencyAndPresenceOverOutputOnly) {
  Penalties pen(5);
  std::vector<float> l = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  // Output counts: id 1 x3, id 2 x1; prompt id 0 is not penalized.
  ASSERT_TRUE(
      pen.Apply(1.0f, 0.25f, 0.5f, std::vector<int32_t>{0, 0}, std::vector<int32_t>{1, 2, 1, 1}, absl::MakeSpan(l))
          .ok());
  EXPECT_EQ(l, (std::vector<float>{1.0f, 1.0f - 1.5f - 0.25f, 1.0f - 0.5f - 0.25f, 1.0f, 1.0f}));
  // Negative values reward repetition.
  Penalties pen2(2);
  std::vector<float> m = {0.0f, 0.0f};
  ASSERT_TRUE(pen2.Apply(1.0f, -1.0f, -0.5f, {}, std::vector<int32_t>{1, 1}, absl::MakeSpan(m)).ok());
  EXPECT_EQ(m, (std::vector<float>{0.0f, 2.0f}));
}

TEST(LogitsProcessorsTest, RepetitionThenAdditive) {
  Penalties pen(2);
  std::vector<float> l = {3.0f, -3.0f};
  ASSERT_TRUE(pen.Apply(1.5f, 1.0f, 1.0f, {}, std::vector<int32_t>{0, 1}, absl::MakeSpan(l)).ok());
  EXPECT_EQ(l, (std::vector<float>{3.0f / 1.5f - 2.0f, -3.0f * 1.5f - 2.0f}));
}

TEST(LogitsProcessorsTest, ScratchIsClearedBetweenCalls) {
  Penalties pen(3);
  std::vector<float> l = {1.0f, 1.0f, 1.0f};
  ASSERT_TRUE(pen.Apply(2.0f, 1.0f, 1.0f, std::vector<int32_t>{0}, std::vector<int32_t>{1, 1}, absl::MakeSpan(l)).ok());
  std::vector<float> again = {1.0f, 1.0f, 1.0f};
  ASSERT_TRUE(pen.Apply(2.0f, 1.0f, 1.0f, {}, std::vector<int32_t>{2}, absl::MakeSpan(again)).ok());
  EXPECT_EQ(again, (std::vector<float>{1.0f, 1.0f, 0.5f - 2.0f}));
}

TEST(LogitsProcessorsTest, NeutralValuesChangeNothing) {
  Penalties pen(3);
  std::vector<float> l = {1.0f, -2.0f, 3.0f};
  ASSERT_TRUE(pen.Apply(1.0f, 0.0f, 0.0f, std::vector<int32_t>{0, 1}, std::vector<int32_t>{2}, absl::MakeSpan(l)).ok());
  EXPECT_EQ(l, (std::vector<float>{1.0f, -2.0f, 3.0f}));
}

TEST(LogitsProcessorsTest, RejectsTokenOutsideVocabulary) {
  Penalties pen(3);
  std::vector<float> l = {1.0f, 1.0f, 1.0f};
  const absl::Status st = pen.Apply(2.0f, 0.0f, 0.0f, std::vector<int32_t>{0, 3}, {}, absl::MakeSpan(l));
  EXPECT_EQ(st.message(), "token id 3 in the sequence is outside the vocabulary [0, 3)");
  EXPECT_EQ(l, (std::vector<float>{1.0f, 1.0f, 1.0f}));
}

}  // namespace
}  // namespace moeserve
