#ifndef MOESERVE_SERVER_MODEL_STEP_CONTEXT_H_
#define MOESERVE_SERVER_MODEL_STEP_CONTEXT_H_

#include "absl/status/statusor.h"
#include "server/backend/backend.h"
#include "server/model/forward_batch.h"

namespace moeserve {

// A ForwardBatch's index arrays uploaded to the backend once per step and shared by every layer.
struct StepContext {
  int32_t num_tokens = 0;
  Tensor token_ids;       // i32 [T]
  Tensor positions;       // i32 [T]
  Tensor logits_indices;  // i32 [n]
  // i32 [1]: the number of real tokens, read on the device; rows at or past it are padding (a
  // CUDA-graph decode bucket, decode_graph_runner.h) and stay out of the MoE expert-load counts.
  // Undefined (Upload's steps): all num_tokens rows are real.
  Tensor num_valid_tokens;
  AttentionMetadata attention;

  static absl::StatusOr<StepContext> Upload(const ForwardBatch& batch, Backend* backend);
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_STEP_CONTEXT_H_
