#ifndef MOESERVE_SERVER_MODEL_FFN_H_
#define MOESERVE_SERVER_MODEL_FFN_H_

#include <string>

#include "absl/status/statusor.h"
#include "server/backend/backend.h"
#include "server/model/config.h"
#include "server/model/decoder_tensors.h"
#include "server/model/parallel.h"
#include "server/model/weight_loader.h"

namespace moeserve {

// SwiGLU MLP: down(silu(gate(x)) * up(x)), with gate and up merged into one [2I, d] weight.
class DenseMlp {
 public:
  // Sharded like the model (loader.parallel()), or whole on every rank when `replicated`.
  static absl::StatusOr<DenseMlp> Load(WeightLoader& loader, const MlpTensors& tensors, bool replicated = false);
  // out [T, d] = MLP(x [T, d]).
  absl::Status Forward(Backend* backend, const Tensor& x, const Tensor& out) const;

 private:
  Tensor gate_up_;  // [2I, d]
  Tensor down_;     // [d, I]
  int64_t intermediate_ = 0;
};

// Routed experts (+ optional always-on shared experts): the MoE FFN of Mixtral, Qwen3-MoE and
// DeepSeek.
class MoeFfn {
 public:
  // Experts may be stored per expert (Hugging Face hub layout) or fused as 3-D tensors
  // (MoeTensors::fused_gate_up / fused_down).
  static absl::StatusOr<MoeFfn> Load(WeightLoader& loader, const MoeTensors& tensors, const ModelConfig& config);
  // `num_valid_tokens` (optional, i32 [1] on the backend): rows of x at or past it are padding,
  // computed but left out of expert_counts (MoeExpertsExtras::num_valid_tokens).
  absl::Status Forward(Backend* backend, const Tensor& x, const Tensor& out, const Tensor& num_valid_tokens) const;
  // Expert parallelism by all-to-all (parallel.ep_all_to_all(), moe_dispatch.h): out [T, d] = the
  // whole MoE of this rank's own tokens x [T, d], of which the first valid_rows are real; the
  // routed experts run on the ranks that hold them, the shared experts (whole on every rank in this
  // mode) here. Collective.
  absl::Status ForwardOwnTokens(Backend* backend, const ModelParallel& parallel, const Tensor& x, int64_t valid_rows,
                                const Tensor& out) const;

  // i64 [E] on the backend: (token, slot) pairs of real tokens routed to each expert since load,
  // accumulated by MoeExperts on the device (no sync per step). Read it with Backend::CopyToHost
  // at scrape time.
  const Tensor& expert_counts() const { return expert_counts_; }

 private:
  static absl::StatusOr<bool> LoadFp8Experts(WeightLoader& loader, const MoeTensors& tensors, int64_t d, Range experts,
                                             Range channels, int64_t n_shared, Range shared_channels, bool fuse_shared,
                                             MoeFfn* moe);

  // ids i32 [T, k] and weights f32 [T, k]: the experts the router picks for each row of x.
  absl::Status Route(Backend* backend, const Tensor& x, Tensor* ids, Tensor* weights) const;

  MoeRoutingParams routing_;
  int64_t num_experts_ = 0;   // routed experts of the model (the router's)
  int64_t first_expert_ = 0;  // expert parallelism: this rank holds [first, first + local)
  int64_t local_experts_ = 0;
  int64_t intermediate_ = 0;  // this rank's channels of each expert
  Tensor router_;             // [E, d]
  Tensor correction_bias_;    // [E] or empty
  Tensor gate_up_;            // [local + S, 2I, d]
  Tensor down_;               // [local + S, d, I]
  // S: the shared MLP (intermediate n_shared · I) split into n_shared experts of intermediate I,
  // stacked after the routed ones and run by MoeExperts on every token with weight 1 (one grouped
  // computation instead of two extra GEMMs). 0 when there are none or they stay a DenseMlp.
  int64_t num_shared_fused_ = 0;
  std::optional<DenseMlp> shared_;  // shared experts not fused (fp8 layouts that do not stack)
  Tensor expert_counts_;            // i64 [E]
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_FFN_H_
