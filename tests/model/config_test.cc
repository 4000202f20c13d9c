#include "server/model/config.h"

#include <cmath>
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/mapped_file.h"
#include "server/model/rope.h"

namespace moeserve {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<ModelConfig> LoadModelConfigFile(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  return ParseModelConfig(*text, path);
}

constexpr char kLlama[] = R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 100, "hidden_size": 64,
  "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2})";

TEST(ModelConfigTest, ParsesLlamaWithDefaults) {
  auto c = ParseModelConfig(kLlama, "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "LlamaForCausalLM");
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->rope.type, RopeConfig::Type::kDefault);
  EXPECT_DOUBLE_EQ(c->rope.theta, 10000.0);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_DOUBLE_EQ(c->attention_scale, 0.25);
}

TEST(ModelConfigTest, UnknownArchitectureIsNamed) {
  auto c = ParseModelConfig(R"({"architectures": ["GPT2LMHeadModel"], "vocab_size": 1})", "dir/config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("unsupported architecture \"GPT2LMHeadModel\""));
  EXPECT_THAT(c.status().message(), HasSubstr("dir/config.json"));
}

TEST(ModelConfigTest, ErrorsNameTheField) {
  struct Case {
    const char* json;
    const char* expected;
  } cases[] = {
      {"not json", "not a JSON object"},
      {R"({"architectures": []})", "\"architectures\" must be a non-empty list"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64})", "missing required field \"vocab_size\""},
      {R"({"architectures": ["LlamaForCausalLM"], "vocab_size": "x"})", "\"vocab_size\" must be an integer"},
      {R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10, "hidden_size": 64, "intermediate_size": 8,
          "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 3})",
       "must be a multiple of num_key_value_heads"},
      {R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10, "hidden_size": 64, "intermediate_size": 8,
          "num_hidden_layers": 1, "num_attention_heads": 4, "hidden_act": "gelu"})",
       "hidden_act \"gelu\" is not supported"},
      {R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10, "hidden_size": 64, "intermediate_size": 8,
          "num_hidden_layers": 1, "num_attention_heads": 4, "rope_scaling": {"type": "dynamic", "factor": 2}})",
       "unsupported rope type \"dynamic\""},
      {R"({"architectures": ["MixtralForCausalLM"], "vocab_size": 10, "hidden_size": 64, "intermediate_size": 8,
          "num_hidden_layers": 1, "num_attention_heads": 4, "num_local_experts": 2, "num_experts_per_tok": 3})",
       "num_experts_per_tok (3) exceeds the number of experts (2)"},
      {R"({"architectures": ["DeepseekV3ForCausalLM"], "vocab_size": 10, "hidden_size": 64, "intermediate_size": 8,
          "num_hidden_layers": 2, "num_attention_heads": 4, "kv_lora_rank": 16, "qk_nope_head_dim": 8,
          "qk_rope_head_dim": 4, "v_head_dim": 8, "n_routed_experts": 6, "num_experts_per_tok": 2,
          "moe_intermediate_size": 8, "n_group": 4, "topk_group": 2})",
       "n_group (4) must divide the number of experts (6)"},
      {R"({"architectures": ["DeepseekV3ForCausalLM"], "vocab_size": 10, "hidden_size": 64, "intermediate_size": 8,
          "num_hidden_layers": 2, "num_attention_heads": 4, "kv_lora_rank": 16, "qk_nope_head_dim": 8,
          "qk_rope_head_dim": 4, "v_head_dim": 8, "quantization_config": {"quant_method": "awq"}})",
       "quant_method \"awq\" is not supported"},
  };
  for (const Case& c : cases) {
    auto parsed = ParseModelConfig(c.json, "config.json");
    ASSERT_FALSE(parsed.ok()) << c.json;
    EXPECT_THAT(parsed.status().message(), HasSubstr(c.expected)) << c.json;
  }
}

TEST(ModelConfigTest, DeepseekV3DefaultsAndYarnScale) {
  auto c = ParseModelConfig(R"({"architectures": ["DeepseekV3ForCausalLM"], "vocab_size": 10, "hidden_size": 64,
      "intermediate_size": 8, "num_hidden_layers": 4, "num_attention_heads": 4, "q_lora_rank": 16,
      "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 8, "n_routed_experts": 16,
      "num_experts_per_tok": 4, "moe_intermediate_size": 8, "n_shared_experts": 1, "first_k_dense_replace": 1,
      "max_position_embeddings": 1024,
      "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 64, "beta_fast": 32,
                       "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
      "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}})",
                            "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->routing.method, MoeTopkMethod::kNoAuxTc);
  EXPECT_EQ(c->routing.scoring, MoeScoring::kSigmoid);
  EXPECT_TRUE(c->routing.norm_topk_prob);
  EXPECT_FLOAT_EQ(c->routing.routed_scaling_factor, 2.5f);
  EXPECT_EQ(c->routing.n_group, 8);
  EXPECT_FALSE(c->IsMoeLayer(0));
  EXPECT_TRUE(c->IsMoeLayer(1));
  EXPECT_EQ(c->fp8_block_rows, 128);
  const double mscale = 0.1 * std::log(40.0) + 1.0;
  EXPECT_NEAR(c->attention_scale, mscale * mscale / 4.0, 1e-12);  // (8 + 8)^-0.5 = 1/4
  // mscale == mscale_all_dim: cos/sin are not scaled.
  EXPECT_DOUBLE_EQ(ComputeRopeFrequencies(c->rope, 8).attention_factor, 1.0);
}

TEST(ModelConfigTest, Qwen3MoeLayerPatternAndRouting) {
  auto c = ParseModelConfig(R"({"architectures": ["Qwen3MoeForCausalLM"], "vocab_size": 10, "hidden_size": 64,
      "intermediate_size": 32, "moe_intermediate_size": 16, "num_hidden_layers": 6, "num_attention_heads": 4,
      "num_key_value_heads": 2, "head_dim": 24, "num_experts": 8, "num_experts_per_tok": 2,
      "norm_topk_prob": true, "decoder_sparse_step": 2, "mlp_only_layers": [3]})",
                            "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  // (i + 1) % 2 == 0 and not in mlp_only_layers: layers 1 and 5.
  EXPECT_EQ(c->moe_layers, (std::vector<bool>{false, true, false, false, false, true}));
  EXPECT_EQ(c->head_dim, 24);
  EXPECT_EQ(c->rotary_dim, 24);
  EXPECT_EQ(c->routing.scoring, MoeScoring::kSoftmax);
  EXPECT_EQ(c->routing.method, MoeTopkMethod::kGreedy);
  EXPECT_TRUE(c->routing.norm_topk_prob);
  EXPECT_FLOAT_EQ(c->routing.routed_scaling_factor, 1.0f);
}

TEST(ModelConfigTest, Qwen3ErrorsNameTheField) {
  constexpr char kBase[] = R"("vocab_size": 10, "hidden_size": 64, "intermediate_size": 32, "num_hidden_layers": 2,
      "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16)";
  struct Case {
    std::string json;
    const char* expected;
  } cases[] = {
      {std::string(R"({"architectures": ["Qwen3ForCausalLM"], "use_sliding_window": true, "max_window_layers": 1, )") +
           kBase + "}",
       "use_sliding_window with max_window_layers 1 < num_hidden_layers 2"},
      {std::string(
           R"({"architectures": ["Qwen3ForCausalLM"], "layer_types": ["full_attention", "sliding_attention"], )") +
           kBase + "}",
       "layer type \"sliding_attention\" is not supported"},
      {std::string(R"({"architectures": ["Qwen3MoeForCausalLM"], "num_experts": 4, "num_experts_per_tok": 2, )") +
           R"("moe_intermediate_size": 8, "mlp_only_layers": [2], )" + kBase + "}",
       "mlp_only_layers entry 2 is not a layer in [0, 2)"},
      {std::string(R"({"architectures": ["Qwen3MoeForCausalLM"], "num_experts": 4, "num_experts_per_tok": 2, )") +
           R"("moe_intermediate_size": 8, "decoder_sparse_step": 0, )" + kBase + "}",
       "\"decoder_sparse_step\" must be positive"},
      {std::string(R"({"architectures": ["Qwen3MoeForCausalLM"], "num_experts_per_tok": 2, )") + kBase + "}",
       "missing required field \"num_experts\""},
  };
  for (const Case& c : cases) {
    auto parsed = ParseModelConfig(c.json, "config.json");
    ASSERT_FALSE(parsed.ok()) << c.json;
    EXPECT_THAT(parsed.status().message(), HasSubstr(c.expected)) << c.json;
  }
}

// The benchmark configs (bench/configs/*.json: real models' shapes for make-model) parse.
TEST(ModelConfigTest, BenchConfigsParse) {
  int parsed = 0;
  const std::filesystem::path dir = std::filesystem::path(MOESERVE_SOURCE_DIR) / "bench/configs";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    auto config = LoadModelConfigFile(entry.path().string());
    EXPECT_TRUE(config.ok()) << entry.path() << ": " << config.status();
    ++parsed;
  }
  EXPECT_GE(parsed, 5);
}

TEST(RopeTest, DefaultTableHoldsCosThenSin) {
  RopeConfig rope;
  const RopeFrequencies f = ComputeRopeFrequencies(rope, 4);
  ASSERT_EQ(f.inv_freq.size(), 2u);
  EXPECT_FLOAT_EQ(f.inv_freq[0], 1.0f);
  EXPECT_FLOAT_EQ(f.inv_freq[1], 0.01f);
  const std::vector<float> table = BuildRopeCosSinTable(f, 3);
  ASSERT_EQ(table.size(), 12u);
  EXPECT_FLOAT_EQ(table[4 * 2 + 0], std::cos(2.0f));
  EXPECT_FLOAT_EQ(table[4 * 2 + 2], std::sin(2.0f));
  EXPECT_FLOAT_EQ(table[4 * 2 + 3], std::sin(0.02f));
}

TEST(RopeTest, Llama3ScalingKeepsHighAndScalesLowFrequencies) {
  RopeConfig rope{.type = RopeConfig::Type::kLlama3,
                  .theta = 500000.0,
                  .factor = 8.0,
                  .low_freq_factor = 1.0,
                  .high_freq_factor = 4.0,
                  .original_max_position_embeddings = 8192};
  RopeConfig plain{.theta = 500000.0};
  const RopeFrequencies scaled = ComputeRopeFrequencies(rope, 128);
  const RopeFrequencies base = ComputeRopeFrequencies(plain, 128);
  EXPECT_FLOAT_EQ(scaled.inv_freq[0], base.inv_freq[0]);           // wavelength 2π: untouched
  EXPECT_FLOAT_EQ(scaled.inv_freq[63], base.inv_freq[63] / 8.0f);  // longest wavelength: divided
}

}  // namespace
}  // namespace moeserve
