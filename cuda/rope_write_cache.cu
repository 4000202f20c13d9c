// Rotary embedding fused with the paged KV-cache write. One CTA of 128 threads per token: every
// thread owns rotation pairs over the token's (H + Hkv) heads × rotary_dim/2 (q pairs rotate in
// place; k pairs are read from k and land rotated in the cache), then the CTA copies k's unrotated
// tail dims and the v row (16-byte units when rows and pointers allow).
// Bytes per token: 2·(2·H·rot + 2·Hkv·D + 2·Hkv·Dv) + 4·rot; 6 FLOPs per pair. Replaces three
// launches (Rope q, Rope k, WriteKvCache) and the k round trip through memory.

#include "cuda/common.cuh"
#include "cuda/rope_write_cache.cuh"

namespace moeserve::kernels {
namespace {

constexpr int kThreads = 128;

template <typename VUnit>
__global__ void __launch_bounds__(kThreads) RopeWriteCacheKernel(RopeWriteCacheParams p) {
  const int64_t t = blockIdx.x;
  const int32_t pos = p.positions[t];
  if (pos < 0 || pos >= p.max_position) {
    if (threadIdx.x == 0) RaiseError(p.error_flags, kErrRopePosition);
    return;
  }
  const int32_t slot = p.slot_mapping[t];
  bool write = slot >= 0;
  if (slot >= p.num_slots) {
    if (threadIdx.x == 0) RaiseError(p.error_flags, kErrCacheSlot);
    write = false;
  }
  const int half = p.rotary_dim / 2, D = p.head_dim;
  const float* c = p.cos_sin + static_cast<int64_t>(pos) * p.rotary_dim;
  const float* s = c + half;
  const int q_pairs = p.num_heads * half;
  const int k_pairs = write ? p.num_kv_heads * half : 0;
  bf16* q = p.q + t * p.num_heads * D;
  const bf16* k = p.k + t * p.num_kv_heads * D;
  bf16* kc = p.k_cache + static_cast<int64_t>(write ? slot : 0) * p.num_kv_heads * D;
  for (int e = threadIdx.x; e < q_pairs + k_pairs; e += kThreads) {
    const bool is_q = e < q_pairs;
    const int ee = is_q ? e : e - q_pairs;
    const int h = ee / half, i = ee - h * half;
    const bf16* src = is_q ? q + h * D : k + h * D;
    bf16* dst = is_q ? q + h * D : kc + h * D;
    RotatePair(src, dst, i, half, p.interleaved, c, s);
  }
  if (!write) return;
  const int tail = D - p.rotary_dim;
  for (int e = threadIdx.x; e < p.num_kv_heads * tail; e += kThreads) {
    const int h = e / tail, d = p.rotary_dim + (e - h * tail);
    kc[h * D + d] = k[h * D + d];
  }
  const int64_t v_row = static_cast<int64_t>(p.num_kv_heads) * p.v_head_dim;
  const VUnit* vs = reinterpret_cast<const VUnit*>(p.v + t * v_row);
  VUnit* vd = reinterpret_cast<VUnit*>(p.v_cache + static_cast<int64_t>(slot) * v_row);
  const int units = static_cast<int>(v_row * 2 / static_cast<int64_t>(sizeof(VUnit)));
  for (int u = threadIdx.x; u < units; u += kThreads) vd[u] = vs[u];
}

bool Aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

}  // namespace

cudaError_t LaunchRopeWriteCache(const RopeWriteCacheParams& p, cudaStream_t stream) {
  if (p.tokens == 0) return cudaSuccess;
  if (p.tokens > 0x7fffffff || p.num_heads <= 0 || p.num_kv_heads <= 0 || p.rotary_dim <= 0 || p.rotary_dim % 2 != 0 ||
      p.rotary_dim > p.head_dim || p.v_head_dim <= 0 ||
      static_cast<int64_t>(p.num_heads + p.num_kv_heads) * p.head_dim > (1 << 30) ||
      static_cast<int64_t>(p.num_kv_heads) * p.v_head_dim > (1 << 28)) {
    return cudaErrorInvalidValue;
  }
  const bool wide =
      Aligned16(p.v) && Aligned16(p.v_cache) && (static_cast<int64_t>(p.num_kv_heads) * p.v_head_dim * 2) % 16 == 0;
  const dim3 grid(static_cast<unsigned>(p.tokens));
  if (wide) {
    RopeWriteCacheKernel<uint4><<<grid, kThreads, 0, stream>>>(p);
  } else {
    RopeWriteCacheKernel<uint16_t><<<grid, kThreads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace moeserve::kernels
