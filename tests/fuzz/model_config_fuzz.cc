// libFuzzer target for ParseModelConfig (config.json). Besides crashes and sanitizer reports, it
// aborts when a parse breaks its promises: a refusal names the file; an accepted config has every
// size positive and within ModelConfigLimits, one MoE flag per layer, and consistent heads.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "absl/strings/string_view.h"
#include "server/model/config.h"
#include "server/model/config_limits.h"

namespace {

void Fail(const char* what) {
  std::fprintf(stderr, "model_config_fuzz: invariant broken: %s\n", what);
  std::abort();
}

void CheckAccepted(const moeserve::ModelConfig& c) {
  using L = moeserve::ModelConfigLimits;
  auto in = [](int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; };
  if (!in(c.num_hidden_layers, 1, L::kMaxLayers)) Fail("num_hidden_layers outside [1, limit]");
  if (!in(c.vocab_size, 1, L::kMaxVocabSize)) Fail("vocab_size outside [1, limit]");
  if (!in(c.hidden_size, 1, L::kMaxHiddenSize)) Fail("hidden_size outside [1, limit]");
  if (!in(c.max_position_embeddings, 1, L::kMaxPositionEmbeddings)) Fail("max_position_embeddings");
  if (!in(c.num_attention_heads, 1, L::kMaxHeads)) Fail("num_attention_heads outside [1, limit]");
  if (!in(c.head_dim, 1, L::kMaxHeadDim)) Fail("head_dim outside [1, limit]");
  if (c.num_key_value_heads <= 0 || c.num_attention_heads % c.num_key_value_heads != 0) {
    Fail("heads not a multiple of kv heads");
  }
  if (c.rotary_dim <= 0 || c.rotary_dim > c.head_dim || c.rotary_dim % 2 != 0) Fail("rotary_dim");
  if (static_cast<int64_t>(c.moe_layers.size()) != c.num_hidden_layers) Fail("moe_layers size");
  if (c.num_key_value_heads > c.num_attention_heads) Fail("more kv heads than heads");
  if (!in(c.intermediate_size, 0, L::kMaxIntermediateSize)) Fail("intermediate_size outside [0, limit]");
  if (!in(c.moe_intermediate_size, 0, L::kMaxIntermediateSize)) Fail("moe_intermediate_size outside [0, limit]");
  if (!in(c.num_experts, 0, L::kMaxExperts)) Fail("num_experts outside [0, limit]");
  if (!in(c.n_shared_experts, 0, L::kMaxExperts)) Fail("n_shared_experts outside [0, limit]");
  if (!in(c.q_lora_rank, 0, L::kMaxLoraRank) || !in(c.kv_lora_rank, 0, L::kMaxLoraRank)) Fail("a lora rank");
  if (!in(c.v_head_dim, 0, L::kMaxHeadDim) || !in(c.qk_rope_head_dim, 0, L::kMaxHeadDim) ||
      !in(c.qk_nope_head_dim, 0, L::kMaxHeadDim)) {
    Fail("an MLA head dim outside [0, limit]");
  }
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    if (c.IsMoeLayer(layer) &&
        (c.num_experts_per_tok <= 0 || c.num_experts_per_tok > c.num_experts || c.moe_intermediate_size <= 0)) {
      Fail("an MoE layer without a valid expert configuration");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr char kName[] = "fuzz/config.json";
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto config = moeserve::ParseModelConfig(text, kName);
  if (config.ok()) {
    CheckAccepted(*config);
  } else if (config.status().message().find(kName) == absl::string_view::npos) {
    Fail("error message does not name the file");
  }
  return 0;
}
