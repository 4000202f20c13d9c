// `moeserve plan` arithmetic (server/runner/parallel_plan.h): a small model counted by hand, the
// refusals the load would give, and the real configs the issue names (bench/configs).

#include "server/runner/parallel_plan.h"

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/mapped_file.h"

namespace moeserve {
namespace {

using ::testing::HasSubstr;
constexpr int64_t kGiB = int64_t{1} << 30;

ModelConfig Parse(const std::string& json) {
  absl::StatusOr<ModelConfig> c = ParseModelConfig(json, "config.json");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : ModelConfig{};
}

ModelConfig BenchConfig(const std::string& name) {
  const std::string path = (std::filesystem::path(MOESERVE_SOURCE_DIR) / "bench/configs" / name).string();
  absl::StatusOr<std::string> json = ReadFileToString(path);
  EXPECT_TRUE(json.ok()) << json.status();
  return Parse(json.ok() ? *json : "");
}

std::string TinyLlama(int heads, int kv_heads) {
  return absl::StrCat(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 64, "hidden_size": 32,
      "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": )",
                      heads, R"(, "num_key_value_heads": )", kv_heads,
                      R"(, "head_dim": 8, "max_position_embeddings": 128, "tie_word_embeddings": false})");
}

// Counted by hand: bf16 matrices, f32 vectors; TP=2 splits the vocabulary, the heads and the MLP.
TEST(ParallelPlanTest, SmallLlamaCountedByHand) {
  const ModelConfig c = Parse(TinyLlama(4, 2));
  ParallelPlanOptions o{.gpus = 2, .gpu_memory_bytes = kGiB, .reserve_bytes = 0};
  absl::StatusOr<ParallelPlan> p = PlanParallel(c, o);
  ASSERT_TRUE(p.ok()) << p.status();
  // embed + lm_head: 32 rows x 32 x 2 B each; final norm 32 x 4 B.
  // Per layer: norms 2 x 32 x 4; q 16 rows x 32 x 2; k, v 8 rows each; o 32 x 16 x 2;
  // gate, up, down 32 x 32 x 2 each.
  const int64_t layer = 256 + 1024 + 512 + 512 + 1024 + 3 * 2048;
  EXPECT_EQ(p->weight_bytes_per_rank, 2 * 2048 + 128 + 2 * layer);
  EXPECT_EQ(p->replicated_bytes_per_rank, 128 + 2 * 256);
  EXPECT_EQ(p->weight_bytes_total, 2 * 4096 + 128 + 2 * (256 + 2048 + 1024 + 1024 + 2048 + 3 * 4096));
  EXPECT_EQ(p->kv_bytes_per_token, 2 * (2 * 8 * 2));  // layers x (K + V) x 1 kv head x 8 x bf16
  EXPECT_FALSE(p->kv_replicated);
  EXPECT_EQ(p->kv_budget_bytes, static_cast<int64_t>(0.9 * kGiB) - p->weight_bytes_per_rank);
  EXPECT_EQ(p->kv_capacity_tokens, p->kv_budget_bytes / p->kv_bytes_per_token);
  EXPECT_EQ(p->concurrent_sequences, p->kv_capacity_tokens / 4096);
  EXPECT_TRUE(p->fits);

  // TP=4 with 2 kv heads: each kv head on 2 ranks, so a rank's K/V and cache row stay one head.
  o.gpus = 4;
  absl::StatusOr<ParallelPlan> p4 = PlanParallel(c, o);
  ASSERT_TRUE(p4.ok()) << p4.status();
  EXPECT_EQ(p4->kv_bytes_per_token, p->kv_bytes_per_token);
  EXPECT_LT(p4->weight_bytes_per_rank, p->weight_bytes_per_rank);
}

TEST(ParallelPlanTest, RefusesWhatTheLoadRefuses) {
  ParallelPlanOptions o{.gpus = 2, .gpu_memory_bytes = kGiB};
  EXPECT_THAT(std::string(PlanParallel(Parse(TinyLlama(3, 3)), o).status().message()),
              HasSubstr("num_attention_heads (3) is not divisible by the tensor-parallel size 2"));
  o.tensor_parallel_size = 4;
  EXPECT_THAT(std::string(PlanParallel(Parse(TinyLlama(4, 2)), o).status().message()),
              HasSubstr("--tensor-parallel-size (4) must equal --gpus (2)"));
  o = {.gpus = 2, .expert_parallel = true, .gpu_memory_bytes = kGiB};
  EXPECT_THAT(std::string(PlanParallel(Parse(TinyLlama(4, 2)), o).status().message()), HasSubstr("no experts"));
  // DeepSeek-V3's fp8 experts (2048 channels) on 32 ranks: 64 channels each, not whole 128-blocks.
  o = {.gpus = 32, .gpu_memory_bytes = 80 * kGiB};
  EXPECT_THAT(std::string(PlanParallel(BenchConfig("deepseek_v3.json"), o).status().message()),
              HasSubstr("does not fall on 128-blocks at tensor-parallel size 32"));
}

// The issue's three cases: DeepSeek-V3 (fp8) on 8 x H200 and 16 x H100 fits, not on 8 x H100;
// Llama-3-70B on 4 x H100 fits.
TEST(ParallelPlanTest, RealModelsOnRealGroups) {
  const ModelConfig v3 = BenchConfig("deepseek_v3.json");
  const int64_t h200 = 141'000'000'000, h100 = 80 * kGiB;
  absl::StatusOr<ParallelPlan> p = PlanParallel(v3, {.gpus = 8, .gpu_memory_bytes = h200});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->fits) << p->ToString(v3, {.gpus = 8, .gpu_memory_bytes = h200});
  // ~656 G expert weights in fp8 and ~15 G other parameters in bf16, over 8 ranks.
  EXPECT_GT(p->weight_bytes_per_rank, 80 * kGiB);
  EXPECT_LT(p->weight_bytes_per_rank, 100 * kGiB);
  EXPECT_EQ(p->kv_bytes_per_token, 61 * (512 + 64) * 2);  // the whole latent row on every rank
  EXPECT_TRUE(p->kv_replicated);
  EXPECT_FALSE(PlanParallel(v3, {.gpus = 8, .gpu_memory_bytes = h100})->fits);
  for (bool ep : {false, true}) {
    absl::StatusOr<ParallelPlan> p16 = PlanParallel(v3, {.gpus = 16, .expert_parallel = ep, .gpu_memory_bytes = h100});
    ASSERT_TRUE(p16.ok()) << p16.status();
    EXPECT_TRUE(p16->fits) << ep;
  }
  // The all-to-all dispatch holds the shared experts whole (bf16) on every rank: 58 MoE layers x
  // 3 x 7168 x 2048 x 2 B, less the sixteenth the other dispatch holds.
  absl::StatusOr<ParallelPlan> ep16 = PlanParallel(v3, {.gpus = 16, .expert_parallel = true, .gpu_memory_bytes = h100});
  absl::StatusOr<ParallelPlan> a2a16 =
      PlanParallel(v3, {.gpus = 16, .expert_parallel = true, .ep_all_to_all = true, .gpu_memory_bytes = h100});
  ASSERT_TRUE(ep16.ok() && a2a16.ok());
  EXPECT_EQ(a2a16->weight_bytes_per_rank - ep16->weight_bytes_per_rank, int64_t{58} * 3 * 7168 * 2048 * 2 * 15 / 16);
  EXPECT_TRUE(a2a16->fits);

  const ModelConfig llama = BenchConfig("llama3_70b.json");
  absl::StatusOr<ParallelPlan> l = PlanParallel(llama, {.gpus = 4, .gpu_memory_bytes = h100});
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_TRUE(l->fits);
  EXPECT_NEAR(static_cast<double>(l->weight_bytes_per_rank) / 1e9, 70.55 * 2 / 4, 0.5);
  EXPECT_EQ(l->kv_bytes_per_token, 80 * 2 * 2 * 128 * 2);  // 2 of the 8 kv heads per rank
  EXPECT_THAT(l->ToString(llama, {.gpus = 4, .gpu_memory_bytes = h100}), HasSubstr("fits: yes"));
}

}  // namespace
}  // namespace moeserve
