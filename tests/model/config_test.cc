#include "server/model/config.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/model/rope.h"

namespace moeserve {
namespace {

using ::testing::HasSubstr;

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
  RopeConfig rope{.type = RopeConfig::Type::kLlama3, .theta = 500000.0, .factor = 8.0, .low_freq_factor = 1.0,
                  .high_freq_factor = 4.0, .original_max_position_embeddings = 8192};
  RopeConfig plain{.theta = 500000.0};
  const RopeFrequencies scaled = ComputeRopeFrequencies(rope, 128);
  const RopeFrequencies base = ComputeRopeFrequencies(plain, 128);
  EXPECT_FLOAT_EQ(scaled.inv_freq[0], base.inv_freq[0]);           // wavelength 2π: untouched
  EXPECT_FLOAT_EQ(scaled.inv_freq[63], base.inv_freq[63] / 8.0f);  // longest wavelength: divided
}

}  // namespace
}  // namespace moeserve
