// Fused rope + MLA latent cache write. One CTA of 64 threads per token: the latent part is copied
// in 16-byte words when latent_dim % 8 == 0 (DeepSeek: 512 → 64 words, one per thread), else
// element by element; thread i rotates rope pairs i, i + 64, ... in fp32 (DeepSeek: 32 pairs).
// Bytes per token: 2·(L + R) read + 2·(L + R) written + 4·R of the table; 6 FLOPs per rope pair.

#include "cuda/common.cuh"
#include "cuda/mla_cache.cuh"

namespace moeserve::kernels {
namespace {

constexpr int kThreads = 64;

template <bool kVec>
__global__ void __launch_bounds__(kThreads) RopeWriteMlaCacheKernel(RopeWriteMlaCacheParams p) {
  const int64_t t = blockIdx.x;
  const int32_t slot = p.slot_mapping[t];
  if (slot < 0) return;
  const int32_t pos = p.positions[t];
  if (slot >= p.num_slots || pos < 0 || pos >= p.max_position) {
    if (threadIdx.x == 0) {
      RaiseError(p.error_flags, slot >= p.num_slots ? kErrCacheSlot : kErrRopePosition);
    }
    return;
  }
  const int64_t row = p.latent_dim + p.rope_dim;
  bf16* dst = p.cache + static_cast<int64_t>(slot) * row;
  const bf16* src = p.kv_c + t * p.latent_dim;
  if (kVec) {
    const uint4* s4 = reinterpret_cast<const uint4*>(src);
    uint4* d4 = reinterpret_cast<uint4*>(dst);
    for (int64_t u = threadIdx.x; u < p.latent_dim / 8; u += kThreads) d4[u] = s4[u];
  } else {
    for (int64_t i = threadIdx.x; i < p.latent_dim; i += kThreads) dst[i] = src[i];
  }
  const int64_t half = p.rope_dim / 2;
  const float* c = p.cos_sin + static_cast<int64_t>(pos) * p.rope_dim;
  const float* s = c + half;
  const bf16* x = p.k_pe + t * p.rope_dim;
  bf16* y = dst + p.latent_dim;
  for (int64_t i = threadIdx.x; i < half; i += kThreads) RotatePair(x, y, i, half, p.interleaved, c, s);
}

}  // namespace

cudaError_t LaunchRopeWriteMlaCache(const RopeWriteMlaCacheParams& p, cudaStream_t stream) {
  if (p.tokens == 0) return cudaSuccess;
  if (p.tokens > 0x7fffffff || p.rope_dim <= 0 || p.rope_dim % 2 != 0 || p.latent_dim < 0) {
    return cudaErrorInvalidValue;
  }
  // 16-byte words need the latent source rows, the cache rows and both base pointers aligned.
  const bool vec = p.latent_dim % 8 == 0 && (p.latent_dim + p.rope_dim) % 8 == 0 &&
                   reinterpret_cast<uintptr_t>(p.kv_c) % 16 == 0 && reinterpret_cast<uintptr_t>(p.cache) % 16 == 0;
  const unsigned grid = static_cast<unsigned>(p.tokens);
  if (vec) {
    RopeWriteMlaCacheKernel<true><<<grid, kThreads, 0, stream>>>(p);
  } else {
    RopeWriteMlaCacheKernel<false><<<grid, kThreads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace moeserve::kernels
