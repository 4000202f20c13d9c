#include "server/model/random_model.h"

#include <filesystem>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "server/backend/op_checks.h"
#include "server/backend/registry.h"
#include "server/common/numeric.h"
#include "server/model/checkpoint.h"
#include "server/model/model.h"
#include "server/model/shared_experts.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

constexpr char kDeepseekV3Fp8[] = R"({"architectures": ["DeepseekV3ForCausalLM"], "vocab_size": 300,
  "hidden_size": 160, "intermediate_size": 200, "num_hidden_layers": 2, "num_attention_heads": 2,
  "q_lora_rank": 48, "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16,
  "n_routed_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 136, "n_shared_experts": 1,
  "first_k_dense_replace": 1, "n_group": 4, "topk_group": 2, "max_position_embeddings": 64,
  "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}})";

constexpr char kMixtral[] = R"({"architectures": ["MixtralForCausalLM"], "vocab_size": 128, "hidden_size": 32,
  "intermediate_size": 48, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
  "num_local_experts": 4, "num_experts_per_tok": 2, "max_position_embeddings": 64})";

// Writes a random model, loads it and runs one step; returns the logits.
std::vector<float> WriteLoadAndRun(const char* config, const RandomModelOptions& options, const std::string& dir) {
  EXPECT_TRUE(WriteRandomModel(config, dir, options).ok());
  auto backend = CreateBackend({.device = "cpu", .num_threads = 1});
  auto model = LoadModel(dir, backend->get());
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return {};
  EXPECT_TRUE((*model)->AllocateKvCache(KvLayoutFor(**model, 4, 16)).ok());
  ForwardBatch batch{.block_size = 16};
  batch.AddSequence({1, 2, 3, 4, 5}, 0, {0}, true);
  auto logits = (*model)->Forward(batch);
  EXPECT_TRUE(logits.ok()) << logits.status();
  std::vector<float> host(static_cast<size_t>(logits->numel()));
  EXPECT_TRUE((*backend)->CopyToHostF32(*logits, absl::MakeSpan(host)).ok());
  return host;
}

TEST(RandomModelTest, Fp8DeepseekV3LoadsAndRuns) {
  const auto dir = moeserve::testing::MakeTempDir("random-v3");
  const std::vector<float> logits = WriteLoadAndRun(kDeepseekV3Fp8, {.seed = 3}, dir.string());
  ASSERT_EQ(logits.size(), 300u);
  auto checkpoint = Checkpoint::Open(dir.string());
  ASSERT_TRUE(checkpoint.ok());
  auto info = (*checkpoint)->Info("model.layers.1.mlp.experts.0.down_proj.weight");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ((*info)->file_dtype, SafetensorsDType::kF8E4M3);
  EXPECT_TRUE((*checkpoint)->Has("model.layers.1.mlp.experts.0.down_proj.weight_scale_inv"));
  EXPECT_TRUE((*checkpoint)->Has("model.layers.1.mlp.gate.e_score_correction_bias"));
}

// Splitting an fp8 shared MLP on whole 128×128 blocks (bytes and scale grids split alike) gives the
// same values as splitting the dequantized MLP: expert s = gate/up rows and down columns
// [s·I, (s+1)·I).
TEST(SharedExpertsTest, Fp8SplitMatchesDequantizedSplit) {
  const int64_t S = 2, I = 256, d = 384, B = 128;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-448.0f, 448.0f), sc(0.5f, 2.0f);
  auto bytes = [&](int64_t n) {
    std::vector<uint8_t> b(n);
    for (auto& v : b) v = FloatToFp8E4M3(u(rng));
    return b;
  };
  auto scales = [&](int64_t n) {
    std::vector<float> v(n);
    for (auto& f : v) f = sc(rng);
    return v;
  };
  const auto gb = bytes(S * I * d), ub = bytes(S * I * d), db = bytes(d * S * I);
  const auto gs = scales(S * I / B * d / B), us = scales(S * I / B * d / B), ds = scales(d / B * S * I / B);
  std::vector<uint8_t> gu_b, dn_b;
  std::vector<float> gu_s, dn_s;
  AppendSharedExperts(gb, ub, db, S, I, d, &gu_b, &dn_b);
  AppendSharedExperts(gs, us, ds, S, I / B, d / B, &gu_s, &dn_s);
  const std::vector<float> split_gu = DequantizeFp8BlockWeight(gu_b, gu_s, Shape{S, 2 * I, d});
  const std::vector<float> split_dn = DequantizeFp8BlockWeight(dn_b, dn_s, Shape{S, d, I});

  std::vector<float> ref_gu, ref_dn;
  AppendSharedExperts(DequantizeFp8BlockWeight(gb, gs, Shape{S * I, d}),
                      DequantizeFp8BlockWeight(ub, us, Shape{S * I, d}),
                      DequantizeFp8BlockWeight(db, ds, Shape{d, S * I}), S, I, d, &ref_gu, &ref_dn);
  EXPECT_EQ(split_gu, ref_gu);
  EXPECT_EQ(split_dn, ref_dn);
  // Spot check the layout: expert 1's first up row is up row I; its down row 0 starts at column I.
  const std::vector<float> up = DequantizeFp8BlockWeight(ub, us, Shape{S * I, d});
  const std::vector<float> dn = DequantizeFp8BlockWeight(db, ds, Shape{d, S * I});
  EXPECT_EQ(ref_gu[(1 * 2 * I + I) * d + 5], up[I * d + 5]);
  EXPECT_EQ(ref_dn[(1 * d + 3) * I + 7], dn[3 * S * I + I + 7]);
}

TEST(RandomModelTest, SameSeedSameWeightsAcrossShardings) {
  const auto one = moeserve::testing::MakeTempDir("random-one");
  const auto many = moeserve::testing::MakeTempDir("random-many");
  const std::vector<float> a = WriteLoadAndRun(kMixtral, {.seed = 5, .dtype = DType::kF32}, one.string());
  const std::vector<float> b =
      WriteLoadAndRun(kMixtral, {.seed = 5, .dtype = DType::kF32, .max_shard_bytes = 20000}, many.string());
  EXPECT_TRUE(std::filesystem::exists(many / "model.safetensors.index.json"));
  EXPECT_FALSE(std::filesystem::exists(one / "model.safetensors.index.json"));
  EXPECT_EQ(a, b);
  const auto other = moeserve::testing::MakeTempDir("random-other");
  EXPECT_NE(a, WriteLoadAndRun(kMixtral, {.seed = 6, .dtype = DType::kF32}, other.string()));
}

TEST(RandomModelTest, MissingTensorIsReportedWithItsName) {
  const auto dir = moeserve::testing::MakeTempDir("random-missing");
  ASSERT_TRUE(WriteRandomModel(kMixtral, dir.string(), {}).ok());
  // Claim a second layer the weights do not have.
  std::string config = kMixtral;
  config.replace(config.find("\"num_hidden_layers\": 1"), 22, "\"num_hidden_layers\": 2");
  std::FILE* f = std::fopen((dir / "config.json").c_str(), "w");
  std::fputs(config.c_str(), f);
  std::fclose(f);
  auto backend = CreateBackend({});
  auto model = LoadModel(dir.string(), backend->get());
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("model.layers.1."), std::string::npos) << model.status();
}

}  // namespace
}  // namespace moeserve
