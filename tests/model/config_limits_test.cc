// config.json sizes beyond anything moeserve can hold are refused with an error naming the field
// and the limit, before anything is sized from them: num_hidden_layers = 10^9 and
// max_position_embeddings = 2^31 - 1 once ended LoadModel in an uncaught std::bad_alloc (SIGABRT).

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/backend/registry.h"
#include "server/common/mapped_file.h"
#include "server/model/config.h"
#include "server/model/config_limits.h"
#include "server/model/model.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A copy of the shipped default model (models/default) whose config.json has `field` = `value`.
std::string DefaultModelWith(const std::string& field, int64_t value) {
  const fs::path src = fs::path(MOESERVE_SOURCE_DIR) / "models" / "default";
  const fs::path dir = moeserve::testing::MakeTempDir("config-limits");
  for (const char* file : {"model.safetensors", "tokenizer.json", "tokenizer_config.json"}) {
    fs::copy_file(src / file, dir / file);
  }
  absl::StatusOr<std::string> text = ReadFileToString((src / "config.json").string());
  EXPECT_TRUE(text.ok()) << text.status();
  nlohmann::json config = nlohmann::json::parse(text.value_or("{}"));
  config[field] = value;
  std::ofstream(dir / "config.json") << config.dump(2);
  return dir.string();
}

TEST(ModelConfigLimitsTest, AbsurdSizesFailTheLoadNamingTheField) {
  struct Case {
    const char* field;
    int64_t value;
    int64_t limit;
  } cases[] = {
      {"num_hidden_layers", 1'000'000'000, ModelConfigLimits::kMaxLayers},
      {"max_position_embeddings", (int64_t{1} << 31) - 1, ModelConfigLimits::kMaxPositionEmbeddings},
      {"vocab_size", int64_t{1} << 40, ModelConfigLimits::kMaxVocabSize},
      {"hidden_size", int64_t{1} << 40, ModelConfigLimits::kMaxHiddenSize},
      {"intermediate_size", int64_t{1} << 40, ModelConfigLimits::kMaxIntermediateSize},
      {"num_attention_heads", int64_t{1} << 20, ModelConfigLimits::kMaxHeads},
      {"n_routed_experts", int64_t{1} << 30, ModelConfigLimits::kMaxExperts},
      {"moe_intermediate_size", int64_t{1} << 40, ModelConfigLimits::kMaxIntermediateSize},
      {"kv_lora_rank", int64_t{1} << 40, ModelConfigLimits::kMaxLoraRank},
      // Two of these summed would overflow: refused before they are added.
      {"qk_nope_head_dim", INT64_MAX, ModelConfigLimits::kMaxLoraRank},
  };
  auto backend = CreateBackend({.device = "cpu", .num_threads = 1});
  ASSERT_TRUE(backend.ok()) << backend.status();
  for (const Case& c : cases) {
    const std::string dir = DefaultModelWith(c.field, c.value);
    absl::StatusOr<std::unique_ptr<Model>> model = LoadModel(dir, backend->get());
    ASSERT_FALSE(model.ok()) << c.field << " = " << c.value << " loaded";
    EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument) << model.status();
    EXPECT_THAT(model.status().message(), HasSubstr(absl::StrCat(c.value))) << model.status();
    EXPECT_THAT(model.status().message(), HasSubstr(absl::StrCat("(", c.limit, ")"))) << model.status();
    EXPECT_THAT(model.status().message(), HasSubstr("config.json")) << model.status();
  }
}

TEST(ModelConfigLimitsTest, TheLimitsThemselvesParse) {
  // At the limits (and nothing else changed) the parse succeeds: the bounds refuse only beyond.
  const std::string src = (fs::path(MOESERVE_SOURCE_DIR) / "models/default/config.json").string();
  absl::StatusOr<std::string> text = ReadFileToString(src);
  ASSERT_TRUE(text.ok()) << text.status();
  nlohmann::json config = nlohmann::json::parse(*text);
  config["num_hidden_layers"] = ModelConfigLimits::kMaxLayers;
  config["max_position_embeddings"] = ModelConfigLimits::kMaxPositionEmbeddings;
  config["vocab_size"] = ModelConfigLimits::kMaxVocabSize;
  config["n_routed_experts"] = 1024;
  absl::StatusOr<ModelConfig> parsed = ParseModelConfig(config.dump(), "config.json");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->num_hidden_layers, ModelConfigLimits::kMaxLayers);
}

}  // namespace
}  // namespace moeserve
