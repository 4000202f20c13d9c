#ifndef MOESERVE_CUDA_ROPE_WRITE_CACHE_CUH_
#define MOESERVE_CUDA_ROPE_WRITE_CACHE_CUH_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moeserve::kernels {

// Backend::RopeWriteKvCache in one pass: rotates the first rotary_dim dims of every head of
// q [tokens, num_heads, head_dim] in place at positions[t] (cos_sin as in rope.cuh), and writes the
// rotated k [tokens, num_kv_heads, head_dim] and v [tokens, num_kv_heads, v_head_dim] rows to
// k_cache / v_cache [num_slots, num_kv_heads, head_dim | v_head_dim] at slot_mapping[t]; k is not
// modified. A negative slot skips the cache write of that token.
// A position outside [0, max_position) sets kErrRopePosition and leaves that token untouched; a
// slot >= num_slots sets kErrCacheSlot and skips its cache write.
struct RopeWriteCacheParams {
  __nv_bfloat16* q = nullptr;
  const __nv_bfloat16* k = nullptr;
  const __nv_bfloat16* v = nullptr;
  __nv_bfloat16* k_cache = nullptr;
  __nv_bfloat16* v_cache = nullptr;
  const int32_t* positions = nullptr;
  const int32_t* slot_mapping = nullptr;
  const float* cos_sin = nullptr;
  int64_t tokens = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int v_head_dim = 0;
  int rotary_dim = 0;
  int64_t max_position = 0;
  int64_t num_slots = 0;
  bool interleaved = false;
  unsigned* error_flags = nullptr;
};

cudaError_t LaunchRopeWriteCache(const RopeWriteCacheParams& p, cudaStream_t stream);

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_ROPE_WRITE_CACHE_CUH_
