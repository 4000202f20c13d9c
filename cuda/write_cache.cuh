#ifndef MOESERVE_CUDA_WRITE_CACHE_CUH_
#define MOESERVE_CUDA_WRITE_CACHE_CUH_

#include <cuda_runtime.h>

#include <cstdint>

namespace moeserve::kernels {

// One source written into a paged cache: row t of src (src_row_bytes bytes) lands at
// cache + slot * cache_row_bytes + cache_offset_bytes.
struct CacheSegment {
  const void* src = nullptr;
  int64_t src_row_bytes = 0;
  void* cache = nullptr;
  int64_t cache_row_bytes = 0;
  int64_t cache_offset_bytes = 0;
};

// Writes num_tokens new tokens at slot_mapping[t] for up to two segments in one launch: K and V
// (standard attention, two caches) or kv_c and k_pe (MLA, one cache row). A negative slot skips
// the token; a slot >= num_slots sets kErrCacheSlot and skips it.
struct WriteCacheParams {
  CacheSegment seg[2];
  int num_segments = 0;
  const int32_t* slot_mapping = nullptr;
  int64_t num_tokens = 0;
  int64_t num_slots = 0;
  unsigned* error_flags = nullptr;
};

cudaError_t LaunchWriteCache(const WriteCacheParams& p, cudaStream_t stream);

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_WRITE_CACHE_CUH_
