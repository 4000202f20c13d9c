#ifndef MOESERVE_SERVER_MODEL_ATTENTION_BLOCK_H_
#define MOESERVE_SERVER_MODEL_ATTENTION_BLOCK_H_

#include <cstdint>

#include "absl/status/status.h"
#include "server/backend/backend.h"
#include "server/model/step_context.h"

namespace moeserve {

// The attention of one decoder layer with its slice of the paged KV cache. Implementations:
// GqaAttention (K and V rows per kv-head), MlaAttention (one latent row per token). Requires
// external synchronisation (the model's caller).
class AttentionBlock {
 public:
  virtual ~AttentionBlock() = default;

  // Bytes one token takes in this layer's cache, in dtype `act`.
  virtual int64_t CacheBytesPerToken(DType act) const = 0;
  // (Re)allocates and zeroes the cache: `num_blocks` blocks of `block_size` tokens.
  virtual absl::Status AllocateCache(Backend* backend, int32_t num_blocks, int32_t block_size) = 0;
  // Frees the cache (before a reallocation of every layer, so that old and new never coexist).
  virtual void FreeCache() = 0;

  // out [T, d] = attention over the normed input x [T, d]; writes this step's rows into the cache
  // first. rope_cos_sin [max_model_len, rotary_dim] as Backend::Rope reads it.
  virtual absl::Status Forward(Backend* backend, const StepContext& ctx, const Tensor& rope_cos_sin, const Tensor& x,
                               const Tensor& out) const = 0;
  // Only the cache rows of x [T, d] at this step's slots, as Forward writes them, with no attention:
  // for rows whose output nobody reads (the multi-token-prediction layer's verified rows before the
  // one it drafts from, mtp_module.h).
  virtual absl::Status WriteCache(Backend* backend, const StepContext& ctx, const Tensor& rope_cos_sin,
                                  const Tensor& x) const = 0;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_ATTENTION_BLOCK_H_
