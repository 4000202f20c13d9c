// Adding an architecture touches only its own file and one registration line: this file defines
// "ToyForCausalLM" (its own tensor names, two config fields of its own, MoE on every
// `moe_every`-th layer, partial rotary) and registers it in one line; make-model writes it and
// LoadModel runs it without any other change.

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/common/mapped_file.h"
#include "server/common/status_macros.h"
#include "server/model/architecture.h"
#include "server/model/checkpoint.h"
#include "server/model/random_model.h"
#include "server/model/safetensors.h"
#include "tests/model/model_test_util.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

using Kind = WeightSpec::Kind;

// --- The toy architecture: everything it knows, in one place. ---
class ToyArchitecture final : public Architecture {
 public:
  std::string_view name() const override { return "ToyForCausalLM"; }

  absl::Status ParseConfig(const ConfigFields& f, ModelConfig& c) const override {
    ASSIGN_OR_RETURN(double rotary_pct, f.Double("rotary_pct", 1.0));
    c.rotary_dim = static_cast<int64_t>(rotary_pct * static_cast<double>(c.head_dim));
    ASSIGN_OR_RETURN(int64_t moe_every, f.Int("moe_every", 0));
    if (moe_every > 0) {
      ASSIGN_OR_RETURN(c.num_experts, f.Int("n_experts", std::nullopt));
      ASSIGN_OR_RETURN(c.num_experts_per_tok, f.Int("experts_per_token", std::nullopt));
      c.moe_intermediate_size = c.intermediate_size;
      c.routing = {.top_k = static_cast<int32_t>(c.num_experts_per_tok), .norm_topk_prob = false};
      for (int64_t i = 0; i < c.num_hidden_layers; ++i) c.moe_layers[i] = (i + 1) % moe_every == 0;
    }
    return absl::OkStatus();
  }

  DecoderTensors Tensors(const ModelConfig& c) const override {
    const int64_t d = c.hidden_size, h = c.num_attention_heads, kv = c.num_key_value_heads, hd = c.head_dim;
    DecoderTensors t;
    t.embed = {"wte", {c.vocab_size, d}, Kind::kEmbedding};
    t.final_norm = {"ln_f", {d}, Kind::kNorm};
    if (!c.tie_word_embeddings) t.lm_head = WeightSpec{"unembed", {c.vocab_size, d}, Kind::kEmbedding};
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      const std::string p = absl::StrCat("h", i, ".");
      LayerTensors& layer = t.layers.emplace_back();
      layer.input_norm = {p + "ln1", {d}, Kind::kNorm};
      layer.post_attention_norm = {p + "ln2", {d}, Kind::kNorm};
      layer.attention = GqaTensors{.q = {p + "wq", {h * hd, d}},
                                   .k = {p + "wk", {kv * hd, d}},
                                   .v = {p + "wv", {kv * hd, d}},
                                   .o = {p + "wo", {d, h * hd}}};
      auto mlp = [&](const std::string& m, int64_t inter) {
        return MlpTensors{{m + "w_in", {inter, d}}, {m + "w_gate", {inter, d}}, {m + "w_out", {d, inter}}};
      };
      if (c.IsMoeLayer(i)) {
        MoeTensors moe{.router = {p + "router", {c.num_experts, d}, Kind::kRouter}};
        for (int64_t e = 0; e < c.num_experts; ++e)
          moe.experts.push_back(mlp(absl::StrCat(p, "expert", e, "."), c.moe_intermediate_size));
        layer.ffn = std::move(moe);
      } else {
        layer.ffn = mlp(p, c.intermediate_size);
      }
    }
    return t;
  }
};

constexpr char kToyMoe[] = R"({"architectures": ["ToyForCausalLM"], "vocab_size": 96, "hidden_size": 32,
  "intermediate_size": 40, "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
  "max_position_embeddings": 64, "rotary_pct": 0.5, "moe_every": 2, "n_experts": 4, "experts_per_token": 2})";

constexpr char kToyDense[] = R"({"architectures": ["ToyForCausalLM"], "vocab_size": 96, "hidden_size": 32,
  "intermediate_size": 40, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "max_position_embeddings": 64})";

class ToyArchitectureTest : public ::testing::Test {
 protected:
  ToyArchitectureTest() { architectures_.Register(std::make_unique<ToyArchitecture>()); }  // the one line

  std::vector<float> Run(const std::string& dir, const LoadModelOptions& options) {
    moeserve::testing::LoadedModel loaded(dir, 4, 16, options);
    if (!loaded.ok()) return {};
    ForwardBatch batch{.block_size = 16};
    batch.AddSequence({1, 7, 30, 4, 95, 12}, 0, {0}, false);
    for (int32_t i = 0; i < 6; ++i) batch.logits_indices.push_back(i);
    return loaded.Run(batch);
  }

  ArchitectureRegistry architectures_ = ArchitectureRegistry::WithBuiltins();
};

TEST_F(ToyArchitectureTest, MakeModelWritesItsNamesAndLoadModelRunsIt) {
  const auto dir = moeserve::testing::MakeTempDir("toy-moe");
  ASSERT_TRUE(WriteRandomModel(kToyMoe, dir.string(), {.seed = 1, .architectures = &architectures_}).ok());
  auto checkpoint = Checkpoint::Open(dir.string());
  ASSERT_TRUE(checkpoint.ok());
  const std::vector<std::string> names = (*checkpoint)->TensorNames();
  EXPECT_TRUE((*checkpoint)->Has("h1.router"));
  EXPECT_TRUE((*checkpoint)->Has("h1.expert3.w_out"));
  EXPECT_TRUE((*checkpoint)->Has("h0.w_in"));
  EXPECT_FALSE((*checkpoint)->Has("h0.router"));
  // wte, ln_f, unembed; per layer 2 norms + 4 projections; 2 dense MLPs; 1 router + 4 experts
  EXPECT_EQ(names.size(), 3u + 3 * 6 + 2 * 3 + 1 * (1 + 4 * 3));

  auto config = LoadModelConfig(dir.string(), architectures_);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->rotary_dim, 4);
  EXPECT_EQ(config->moe_layers, (std::vector<bool>{false, true, false}));

  const std::vector<float> logits = Run(dir.string(), {.architectures = &architectures_});
  ASSERT_EQ(logits.size(), 6u * 96);

  // The built-in registry does not know it.
  auto builtin = LoadModelConfig(dir.string());
  ASSERT_FALSE(builtin.ok());
  EXPECT_NE(builtin.status().message().find("unsupported architecture \"ToyForCausalLM\""), std::string::npos);
}

// With full rotary and no experts the toy is Llama under other names: the same weights renamed to
// Llama's tensors give the same logits.
TEST_F(ToyArchitectureTest, DenseToyMatchesLlamaWithRenamedTensors) {
  const auto toy_dir = moeserve::testing::MakeTempDir("toy-dense");
  const auto llama_dir = moeserve::testing::MakeTempDir("toy-as-llama");
  ASSERT_TRUE(
      WriteRandomModel(kToyDense, toy_dir.string(), {.seed = 2, .dtype = DType::kF32, .architectures = &architectures_})
          .ok());
  std::string llama_config = kToyDense;
  llama_config.replace(llama_config.find("ToyForCausalLM"), 14, "LlamaForCausalLM");
  ASSERT_TRUE(WriteStringToFile((llama_dir / "config.json").string(), llama_config).ok());

  auto toy_config = ParseModelConfig(kToyDense, "toy", architectures_);
  auto as_llama = ParseModelConfig(llama_config, "llama");
  ASSERT_TRUE(toy_config.ok() && as_llama.ok());
  const std::vector<WeightSpec> from = AllWeights(architectures_.Find("ToyForCausalLM")->Tensors(*toy_config));
  const std::vector<WeightSpec> to = AllWeights(BuiltinArchitectures().Find("LlamaForCausalLM")->Tensors(*as_llama));
  ASSERT_EQ(from.size(), to.size());
  auto file = SafetensorsFile::Open((toy_dir / "model.safetensors").string());
  ASSERT_TRUE(file.ok());
  std::vector<HostTensor> renamed;
  for (size_t i = 0; i < from.size(); ++i) {
    ASSERT_EQ(from[i].shape, to[i].shape) << from[i].name << " vs " << to[i].name;
    const TensorInfo* info = (*file)->Find(from[i].name);
    ASSERT_NE(info, nullptr) << from[i].name;
    const absl::Span<const uint8_t> data = (*file)->Data(*info);
    renamed.push_back({to[i].name, DType::kF32, to[i].shape, std::vector<uint8_t>(data.begin(), data.end())});
  }
  ASSERT_TRUE(WriteSafetensors((llama_dir / "model.safetensors").string(), renamed, {}).ok());

  const std::vector<float> toy = Run(toy_dir.string(), {.architectures = &architectures_});
  const std::vector<float> llama = Run(llama_dir.string(), {});
  ASSERT_FALSE(toy.empty());
  EXPECT_EQ(toy, llama);
}

}  // namespace
}  // namespace moeserve
