#ifndef MOESERVE_CUDA_MLA_CACHE_CUH_
#define MOESERVE_CUDA_MLA_CACHE_CUH_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moeserve::kernels {

// MLA latent cache write fused with the rope of the shared key (Backend::RopeWriteMlaCache):
// cache row slot_mapping[t] (latent_dim + rope_dim bf16 values, row stride latent_dim + rope_dim)
// becomes [kv_c[t] | rope(k_pe[t], positions[t])], rotating all rope_dim dims in fp32 with
// cos_sin [max_position, rope_dim] (row p: rope_dim/2 cosines then rope_dim/2 sines).
// interleaved = pairs (2i, 2i+1), else halves (i, i + rope_dim/2). A negative slot skips the token;
// a slot >= num_slots sets kErrCacheSlot, a position outside [0, max_position) kErrRopePosition,
// and either skips the token.
struct RopeWriteMlaCacheParams {
  const __nv_bfloat16* kv_c = nullptr;    // [tokens, latent_dim]
  const __nv_bfloat16* k_pe = nullptr;    // [tokens, rope_dim]
  const int32_t* positions = nullptr;     // [tokens]
  const float* cos_sin = nullptr;         // [max_position, rope_dim]
  const int32_t* slot_mapping = nullptr;  // [tokens]
  __nv_bfloat16* cache = nullptr;         // [num_slots, latent_dim + rope_dim]
  int64_t tokens = 0;
  int64_t latent_dim = 0;
  int64_t rope_dim = 0;
  int64_t max_position = 0;
  int64_t num_slots = 0;
  bool interleaved = true;
  unsigned* error_flags = nullptr;
};

// cudaErrorInvalidValue for an odd or zero rope_dim or more than 2^31 - 1 tokens.
cudaError_t LaunchRopeWriteMlaCache(const RopeWriteMlaCacheParams& p, cudaStream_t stream);

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_MLA_CACHE_CUH_
