// Paged cache write. Grid (tokens, segments); one CTA of 128 threads copies one token's row of one
// segment in Unit-sized words (16 bytes when every row and pointer allows, else 2). Bytes per
// token: 2 × (Σ segment row bytes); no FLOPs.

#include "cuda/common.cuh"
#include "cuda/write_cache.cuh"

namespace moeserve::kernels {
namespace {

template <typename Unit>
__global__ void WriteCacheKernel(WriteCacheParams p) {
  const int64_t t = blockIdx.x;
  const CacheSegment& s = p.seg[blockIdx.y];
  const int32_t slot = p.slot_mapping[t];
  if (slot < 0) return;
  if (slot >= p.num_slots) {
    if (threadIdx.x == 0) RaiseError(p.error_flags, kErrCacheSlot);
    return;
  }
  const Unit* src = reinterpret_cast<const Unit*>(static_cast<const char*>(s.src) + t * s.src_row_bytes);
  Unit* dst = reinterpret_cast<Unit*>(static_cast<char*>(s.cache) + slot * s.cache_row_bytes + s.cache_offset_bytes);
  const int64_t units = s.src_row_bytes / static_cast<int64_t>(sizeof(Unit));
  for (int64_t u = threadIdx.x; u < units; u += blockDim.x) dst[u] = src[u];
}

bool SegmentAligned(const CacheSegment& s, int64_t a) {
  auto al = [a](const void* q) { return reinterpret_cast<uintptr_t>(q) % a == 0; };
  return al(s.src) && al(s.cache) && s.src_row_bytes % a == 0 && s.cache_row_bytes % a == 0 &&
         s.cache_offset_bytes % a == 0;
}

}  // namespace

cudaError_t LaunchWriteCache(const WriteCacheParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0 || p.num_segments == 0) return cudaSuccess;
  if (p.num_segments > 2 || p.num_tokens > 0x7fffffff) return cudaErrorInvalidValue;
  bool wide = true, half = true;
  for (int i = 0; i < p.num_segments; ++i) {
    wide = wide && SegmentAligned(p.seg[i], 16);
    half = half && SegmentAligned(p.seg[i], 2);
  }
  if (!half) return cudaErrorInvalidValue;  // every cache dtype is at least 2 bytes wide
  const dim3 grid(static_cast<unsigned>(p.num_tokens), p.num_segments);
  if (wide) {
    WriteCacheKernel<uint4><<<grid, 128, 0, stream>>>(p);
  } else {
    WriteCacheKernel<uint16_t><<<grid, 128, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace moeserve::kernels
