// The host side of device sampling: BuildSamplingBatch packs each row's parameters, sparse edits
// and structured-output mask (rows without a mask get none), and DeviceSamplingSupports sends
// min_tokens rows and out-of-vocabulary ids to the host.

#include "server/sampling/device_sampling.h"

#include <vector>

#include "gtest/gtest.h"

namespace moeserve {
namespace {

TEST(DeviceSamplingTest, BatchCarriesMasksOfMaskedRowsOnly) {
  SamplingParams p;
  p.temperature = 0.5f;
  p.logit_bias = {{4, 1.5f}};
  const std::vector<int32_t> prompt = {1, 2}, output = {3};
  const std::vector<uint32_t> mask_a = {0x1u, 0x80000000u}, mask_b = {0xFFu, 0x0u};
  const std::vector<SamplingRow> rows = {
      {.params = &p,
       .prompt_token_ids = prompt,
       .output_token_ids = output,
       .seed = 9,
       .allowed_tokens = mask_a.data()},
      {.params = &p, .prompt_token_ids = prompt, .output_token_ids = output, .seed = 10},
      {.params = &p,
       .prompt_token_ids = prompt,
       .output_token_ids = output,
       .seed = 11,
       .allowed_tokens = mask_b.data()}};
  const SamplingBatch batch = BuildSamplingBatch(rows, /*vocab_size=*/64);
  ASSERT_EQ(batch.rows.size(), 3u);
  EXPECT_EQ(batch.mask_words, 2);
  EXPECT_EQ(batch.masks, (std::vector<uint32_t>{0x1u, 0x80000000u, 0xFFu, 0x0u}));
  EXPECT_EQ(batch.rows[0].mask_row, 0);
  EXPECT_EQ(batch.rows[1].mask_row, -1);
  EXPECT_EQ(batch.rows[2].mask_row, 1);
  EXPECT_EQ(batch.rows[2].logits_row, 2);
  EXPECT_EQ(batch.rows[2].seed, 11u);
  EXPECT_EQ(batch.rows[2].step, 1u);
  ASSERT_EQ(batch.rows[1].edit_end - batch.rows[1].edit_begin, 1);
  EXPECT_EQ(batch.edits[batch.rows[1].edit_begin].id, 4);

  const SamplingBatch unmasked = BuildSamplingBatch(absl::MakeConstSpan(rows).subspan(1, 1), 64);
  EXPECT_EQ(unmasked.mask_words, 0);
  EXPECT_TRUE(unmasked.masks.empty());
}

TEST(DeviceSamplingTest, MinTokensAndOutOfVocabularyIdsGoToTheHost) {
  SamplingParams p;
  const std::vector<int32_t> prompt = {1, 2}, output = {3}, bad = {70};
  EXPECT_TRUE(DeviceSamplingSupports({.params = &p, .prompt_token_ids = prompt, .output_token_ids = output}, 64));
  EXPECT_FALSE(DeviceSamplingSupports({.params = &p, .prompt_token_ids = bad, .output_token_ids = output}, 64));
  p.min_tokens = 2;
  EXPECT_FALSE(DeviceSamplingSupports({.params = &p, .prompt_token_ids = prompt, .output_token_ids = output}, 64));
  // A masked row's min_tokens is in its mask: nothing for the device to suppress.
  const std::vector<uint32_t> mask = {~0u, ~0u};
  EXPECT_TRUE(DeviceSamplingSupports(
      {.params = &p, .prompt_token_ids = prompt, .output_token_ids = output, .allowed_tokens = mask.data()}, 64));
  EXPECT_FALSE(DeviceSamplingSupports({.prompt_token_ids = prompt}, 64));  // no params
}

}  // namespace
}  // namespace moeserve
