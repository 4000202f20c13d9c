// Qwen3ForCausalLM and Qwen3MoeForCausalLM (DeepSeek-R1-0528-Qwen3-8B, Qwen3-30B-A3B, -235B-A22B).
//
// Attention: per-head RMSNorm of q and k (q_norm, k_norm over head_dim, eps rms_norm_eps) before
// RoPE in the rotate-half layout; head_dim is its own field, not hidden_size / heads; q/k/v/o
// biases only with attention_bias. Tied embeddings optional. Qwen3-MoE: layer i has routed experts
// unless it is in mlp_only_layers or (i + 1) is not a multiple of decoder_sparse_step; softmax over
// all num_experts router logits, greedy top-k, renormalised to sum 1 when norm_topk_prob, no shared
// expert. Sliding-window configurations are rejected.

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/model/arch/families.h"
#include "server/model/arch/sliding_window.h"
#include "server/model/hf_tensors.h"

namespace moeserve {
namespace {

class Qwen3 final : public Architecture {
 public:
  explicit Qwen3(bool moe) : moe_(moe) {}

  std::string_view name() const override { return moe_ ? "Qwen3MoeForCausalLM" : "Qwen3ForCausalLM"; }

  absl::Status ParseConfig(const ConfigFields& f, ModelConfig& c) const override {
    RETURN_IF_ERROR(RejectQwenSlidingWindow(f, c));
    if (!moe_) return absl::OkStatus();
    // Hub configs write num_experts; transformers 5 saves it as num_local_experts.
    ASSIGN_OR_RETURN(c.num_experts,
                     f.Int(f.Has("num_local_experts") ? "num_local_experts" : "num_experts", std::nullopt));
    ASSIGN_OR_RETURN(c.num_experts_per_tok, f.Int("num_experts_per_tok", std::nullopt));
    ASSIGN_OR_RETURN(c.moe_intermediate_size, f.Int("moe_intermediate_size", std::nullopt));
    ASSIGN_OR_RETURN(bool norm_topk_prob, f.Bool("norm_topk_prob", false));
    ASSIGN_OR_RETURN(int64_t sparse_step, f.Int("decoder_sparse_step", 1));
    ASSIGN_OR_RETURN(std::vector<int64_t> mlp_only, f.IntList("mlp_only_layers"));
    if (sparse_step <= 0) return f.Invalid(absl::StrCat("\"decoder_sparse_step\" must be positive, got ", sparse_step));
    for (int64_t layer : mlp_only) {
      if (layer < 0 || layer >= c.num_hidden_layers) {
        return f.Invalid(
            absl::StrCat("mlp_only_layers entry ", layer, " is not a layer in [0, ", c.num_hidden_layers, ")"));
      }
    }
    c.routing = {.top_k = static_cast<int32_t>(c.num_experts_per_tok),
                 .scoring = MoeScoring::kSoftmax,
                 .method = MoeTopkMethod::kGreedy,
                 .norm_topk_prob = norm_topk_prob};
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      const bool dense_only = std::find(mlp_only.begin(), mlp_only.end(), i) != mlp_only.end();
      c.moe_layers[i] = !dense_only && c.num_experts > 0 && (i + 1) % sparse_step == 0;
    }
    return absl::OkStatus();
  }

  DecoderTensors Tensors(const ModelConfig& c) const override {
    DecoderTensors t = HfDecoderTensors(c);
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      t.layers[i].attention =
          HfGqaTensors(c, i, {.bias = c.attention_bias, .o_bias = c.attention_bias, .qk_norm = true});
      if (c.IsMoeLayer(i)) {
        t.layers[i].ffn = HfMoeTensors(c, i);
      } else {
        t.layers[i].ffn = HfMlpTensors(HfLayerPrefix(i) + ".mlp", c.hidden_size, c.intermediate_size);
      }
    }
    return t;
  }

 private:
  bool moe_;
};

}  // namespace

std::unique_ptr<Architecture> NewQwen3Architecture() { return std::make_unique<Qwen3>(/*moe=*/false); }
std::unique_ptr<Architecture> NewQwen3MoeArchitecture() { return std::make_unique<Qwen3>(/*moe=*/true); }

}  // namespace moeserve
