// The host half of CUDA-graph decode: which batches replay a graph, the (bucket, width) shape they
// replay and the padded inputs, including a batch that outgrows its block-table width.

#include "server/runner/decode_graph_inputs.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/backend/cuda/graph_buckets.h"

namespace moeserve {
namespace {

DecodeGraphLimits Limits(int32_t max_batch = 64, int32_t max_width = 256) {
  return {.buckets = cuda_graphs::DecodeBuckets(max_batch), .block_size = 16, .min_width = 16, .max_width = max_width};
}

// n decoding sequences; sequence s has context len[s] after the step and blocks 100*s + 1, ...
ForwardBatch Decode(const std::vector<int32_t>& lens) {
  ForwardBatch b;
  b.block_size = 16;
  for (int32_t len : lens) b.max_blocks_per_seq = std::max(b.max_blocks_per_seq, (len + 15) / 16);
  for (size_t s = 0; s < lens.size(); ++s) {
    std::vector<int32_t> table;
    for (int32_t i = 0; i < (lens[s] + 15) / 16; ++i) table.push_back(100 * static_cast<int32_t>(s) + 1 + i);
    const int32_t token = 7 + static_cast<int32_t>(s);
    b.AddSequence(absl::MakeConstSpan(&token, 1), lens[s] - 1, table, true);
  }
  return b;
}

TEST(DecodeGraphWidthTest, PowersOfTwoFromTheMinimumCappedAtTheMaximum) {
  EXPECT_EQ(DecodeGraphWidth(1, 16, 256), 16);
  EXPECT_EQ(DecodeGraphWidth(16, 16, 256), 16);
  EXPECT_EQ(DecodeGraphWidth(17, 16, 256), 32);
  EXPECT_EQ(DecodeGraphWidth(129, 16, 256), 256);
  EXPECT_EQ(DecodeGraphWidth(200, 16, 200), 200);  // the cap need not be a power of two
  EXPECT_EQ(DecodeGraphWidth(201, 16, 200), -1);   // longer than the model: eager
}

TEST(ChooseDecodeGraphTest, PicksBucketAndWidth) {
  DecodeGraphShape shape;
  std::string why;
  ASSERT_TRUE(ChooseDecodeGraph(Decode({5, 40, 17}), Limits(), &shape, &why)) << why;
  EXPECT_EQ(shape, (DecodeGraphShape{.bucket = 4, .width = 16}));
  ASSERT_TRUE(ChooseDecodeGraph(Decode(std::vector<int32_t>(9, 3)), Limits(), &shape, &why)) << why;
  EXPECT_EQ(shape.bucket, 16);
  ASSERT_TRUE(ChooseDecodeGraph(Decode(std::vector<int32_t>(64, 3)), Limits(), &shape, &why)) << why;
  EXPECT_EQ(shape.bucket, 64);  // at the edge
}

// A batch whose longest sequence crosses the width it replayed with moves to the next width class
// (a new graph, recorded on first use), never replays a narrower table.
TEST(ChooseDecodeGraphTest, OutgrowingTheWidthMovesToTheNextClass) {
  DecodeGraphShape shape;
  std::string why;
  ASSERT_TRUE(ChooseDecodeGraph(Decode({256, 3}), Limits(), &shape, &why));  // 16 blocks exactly
  EXPECT_EQ(shape, (DecodeGraphShape{.bucket = 2, .width = 16}));
  ASSERT_TRUE(ChooseDecodeGraph(Decode({257, 3}), Limits(), &shape, &why));  // 17 blocks
  EXPECT_EQ(shape, (DecodeGraphShape{.bucket = 2, .width = 32}));
  EXPECT_FALSE(ChooseDecodeGraph(Decode({256 * 16 + 1}), Limits(), &shape, &why));
  EXPECT_NE(why.find("blocks"), std::string::npos) << why;
}

// Why ChooseDecodeGraph refuses `batch` ("" when it accepts it: a test failure).
std::string Refusal(const ForwardBatch& batch) {
  DecodeGraphShape shape;
  std::string why;
  EXPECT_FALSE(ChooseDecodeGraph(batch, Limits(), &shape, &why));
  return why;
}

TEST(ChooseDecodeGraphTest, EligibilityRules) {
  EXPECT_EQ(Refusal(ForwardBatch()), "empty batch");
  EXPECT_EQ(Refusal(Decode(std::vector<int32_t>(65, 3))), "65 sequences exceed the largest bucket");

  ForwardBatch prefill = Decode({4});
  const std::vector<int32_t> chunk = {1, 2, 3};
  const std::vector<int32_t> table = {9};
  prefill.AddSequence(chunk, 0, table, true);  // a 3-token chunk
  EXPECT_EQ(Refusal(prefill), "not a pure decode batch");

  ForwardBatch not_sampling = Decode({4, 4});
  not_sampling.logits_indices = {0};  // a sequence without logits
  EXPECT_EQ(Refusal(not_sampling), "logits rows differ from one per sequence");
  ForwardBatch extra_rows = Decode({4, 4});
  extra_rows.logits_indices = {0, 1, 1};  // e.g. prompt-logprob rows
  EXPECT_EQ(Refusal(extra_rows), "logits rows differ from one per sequence");
  ForwardBatch reordered = Decode({4, 4});
  reordered.logits_indices = {1, 0};
  EXPECT_EQ(Refusal(reordered), "logits rows differ from one per sequence");

  ForwardBatch other_block = Decode({4});
  other_block.block_size = 32;
  EXPECT_EQ(Refusal(other_block), absl::StrCat("block size 32 != ", Limits().block_size));

  // Each rule alone: the same batches within the rules are accepted.
  DecodeGraphShape shape;
  std::string why;
  EXPECT_TRUE(ChooseDecodeGraph(Decode(std::vector<int32_t>(64, 3)), Limits(), &shape, &why)) << why;
  EXPECT_TRUE(ChooseDecodeGraph(Decode({4, 4}), Limits(), &shape, &why)) << why;
}

TEST(FillDecodeGraphInputsTest, PadsRowsThatWriteNothingAndReadTheNullBlock) {
  const ForwardBatch batch = Decode({5, 40, 17});
  DecodeGraphInputs in;
  FillDecodeGraphInputs(batch, {.bucket = 4, .width = 16}, &in);
  EXPECT_EQ(in.token_ids, (std::vector<int32_t>{7, 8, 9, 0}));
  EXPECT_EQ(in.positions, (std::vector<int32_t>{4, 39, 16, 0}));
  EXPECT_EQ(in.query_start_loc, (std::vector<int32_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(in.seq_lens, (std::vector<int32_t>{5, 40, 17, 1}));
  EXPECT_EQ(in.slot_mapping[0], batch.slot_mapping[0]);
  EXPECT_EQ(in.slot_mapping[1], batch.slot_mapping[1]);
  EXPECT_EQ(in.slot_mapping[2], batch.slot_mapping[2]);
  EXPECT_EQ(in.slot_mapping[3], -1);
  EXPECT_EQ(in.num_valid_tokens, 3);  // the real rows come first; row 3 stays out of MoE counts
  ASSERT_EQ(in.block_tables.size(), 4u * 16);
  for (int32_t s = 0; s < 3; ++s) {
    const int32_t used = (batch.seq_lens[s] + 15) / 16;
    for (int32_t c = 0; c < 16; ++c) {
      EXPECT_EQ(in.block_tables[s * 16 + c], c < used ? 100 * s + 1 + c : 0) << s << "," << c;
    }
  }
  for (int32_t c = 0; c < 16; ++c) EXPECT_EQ(in.block_tables[3 * 16 + c], 0);  // null block
}

TEST(FillDecodeGraphInputsTest, RefillingASmallerBatchClearsOldRows) {
  DecodeGraphInputs in;
  FillDecodeGraphInputs(Decode({300, 300, 300}), {.bucket = 4, .width = 32}, &in);
  FillDecodeGraphInputs(Decode({3}), {.bucket = 4, .width = 32}, &in);
  EXPECT_EQ(in.seq_lens, (std::vector<int32_t>{3, 1, 1, 1}));
  EXPECT_EQ(in.slot_mapping[1], -1);
  EXPECT_EQ(in.num_valid_tokens, 1);
  for (size_t i = 1; i < in.block_tables.size(); ++i) EXPECT_EQ(in.block_tables[i], 0) << i;
}

}  // namespace
}  // namespace moeserve
