#ifndef MOESERVE_SERVER_MODEL_MODEL_H_
#define MOESERVE_SERVER_MODEL_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/backend/backend.h"
#include "server/kv/kv_layout.h"
#include "server/model/config.h"
#include "server/model/expert_load.h"
#include "server/model/forward_batch.h"
#include "server/model/parallel.h"
#include "server/model/step_context.h"

namespace moeserve {

// What a multi-token-prediction pass returns: the logits of batch.logits_indices, and the MTP
// layer's output rows [T, d] (before its shared head's norm), which a chained pass feeds back as
// prev_hidden.
struct MtpOutput {
  Tensor logits;
  Tensor hidden;
};

// A causal language model loaded onto a backend: weights, rotary tables and the paged KV cache.
// Forward runs one step over a flat batch (see ForwardBatch) and returns the logits of the rows
// named by batch.logits_indices. Requires external synchronisation (the engine thread).
class Model {
 public:
  virtual ~Model() = default;

  virtual const ModelConfig& config() const = 0;
  // The cache row every layer needs per token (the KV layout's spec).
  virtual KvCacheSpec kv_cache_spec() const = 0;

  // (Re)allocates the paged cache of `layout` (server/kv/kv_layout.h) for every layer: every
  // later batch must use its block size. InvalidArgument when layout.spec != kv_cache_spec().
  virtual absl::Status AllocateKvCache(const KvLayout& layout) = 0;
  // The allocated cache's layout; num_blocks 0 before the first AllocateKvCache.
  virtual const KvLayout& kv_layout() const = 0;

  // Logits [logits_indices.size(), vocab] in the backend's activation dtype.
  virtual absl::StatusOr<Tensor> Forward(const ForwardBatch& batch) = 0;

  // Forward split in two for callers that keep the step's inputs on the device (CUDA-graph decode,
  // server/runner/decode_graph_runner.h): ValidateBatch runs Forward's host checks of `batch`, and
  // ForwardOnDevice runs the step over inputs already uploaded into `ctx` (as
  // StepContext::Upload(batch) would), issuing only backend ops: no host copies, no
  // synchronisation, so a recording backend can capture it. Logits rows = ctx.logits_indices.
  // Unimplemented for models that do not split (Forward stays the path for them).
  virtual absl::Status ValidateBatch(const ForwardBatch& batch) const {
    (void)batch;
    return absl::UnimplementedError("this model runs only through Forward");
  }
  virtual absl::StatusOr<Tensor> ForwardOnDevice(const StepContext& ctx) {
    (void)ctx;
    return absl::UnimplementedError("this model runs only through Forward");
  }

  // Multi-token prediction (DeepSeek-V3's MTP module, tools/mtp_reference.py), for speculative
  // decoding; only models loaded with LoadModelOptions::load_mtp have it.
  virtual bool has_mtp() const { return false; }
  // Forward that also returns every token's final hidden state [T, d] (after the final norm,
  // the MTP layer's input) in *hidden.
  virtual absl::StatusOr<Tensor> ForwardWithHidden(const ForwardBatch& batch, Tensor* hidden) {
    (void)batch;
    (void)hidden;
    return absl::UnimplementedError("this model has no multi-token-prediction layer");
  }
  // One MTP pass: the batch's token at position i is the token after i (t_{i+1}) and
  // prev_hidden [T, d] row i the main model's hidden state at i (or, chaining, the MTP output of
  // the previous position). Writes the MTP layer's KV rows at the batch's slots.
  virtual absl::StatusOr<MtpOutput> ForwardMtp(const ForwardBatch& batch, const Tensor& prev_hidden) {
    (void)batch;
    (void)prev_hidden;
    return absl::UnimplementedError("this model has no multi-token-prediction layer");
  }
  // ForwardMtp's KV rows only, for positions whose draft nobody reads (the verified positions
  // before the one a chain starts from): no attention, FFN or head. batch.logits_indices is ignored.
  virtual absl::Status WriteMtpCache(const ForwardBatch& batch, const Tensor& prev_hidden) {
    (void)batch;
    (void)prev_hidden;
    return absl::UnimplementedError("this model has no multi-token-prediction layer");
  }

  // Tokens routed to each expert of each MoE layer since load or the last ResetExpertLoad(), read
  // from the backend (synchronises: call it right after a step's own synchronisation). Empty for
  // dense models.
  virtual absl::StatusOr<ExpertLoad> ReadExpertLoad() { return ExpertLoad{}; }
  // Bytes of this rank's weights on the backend (with tensor parallelism, its share); 0 when the
  // model does not count them.
  virtual int64_t weight_bytes() const { return 0; }
  // Zeroes those counters (e.g. after a profiling or warm-up step).
  virtual absl::Status ResetExpertLoad() { return absl::OkStatus(); }
};

// The layout of `num_blocks` blocks of `block_size` tokens for `model`'s cache (tests, benches:
// the engine's layout comes from PlanKvCache).
inline KvLayout KvLayoutFor(const Model& model, int32_t num_blocks, int32_t block_size) {
  return KvLayout{.block_size = block_size, .num_blocks = num_blocks, .spec = model.kv_cache_spec()};
}

class ArchitectureRegistry;

struct LoadModelOptions {
  // Positions the rotary tables cover; 0 = config.max_position_embeddings.
  int64_t max_model_len = 0;
  // The architectures to look config.json's up in; nullptr = the built-in ones.
  const ArchitectureRegistry* architectures = nullptr;
  // Tensor parallelism: which share of the weights this rank loads and the communicator its
  // blocks reduce through (parallel.h); one rank by default.
  ModelParallel parallel;
  // Also load the checkpoint's multi-token-prediction layer (DeepSeek-V3,
  // num_nextn_predict_layers > 0) for speculative decoding; its KV cache then counts in
  // kv_cache_spec(). InvalidArgument for a model without one; NotFound naming a missing tensor.
  bool load_mtp = false;
};

// Loads a Hugging Face model directory (config.json + safetensors) onto `backend`, which must
// outlive the model.
absl::StatusOr<std::unique_ptr<Model>> LoadModel(const std::string& model_dir, Backend* backend,
                                                 const LoadModelOptions& options = {});

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_MODEL_H_
