// MLA of the CUDA backend: the latent cache write and the absorbed attention over latent rows.

#include "cuda/paged_attention.cuh"
#include "cuda/write_cache.cuh"
#include "server/backend/cuda/cuda_backend.h"
#include "server/backend/cuda/cuda_checks.h"
#include "server/backend/cuda/cuda_launch.h"
#include "server/common/status_macros.h"

namespace moeserve {

using cuda_launch::bf16;
using cuda_launch::Flags;
using cuda_launch::Launched;
using cuda_launch::LayoutParams;
using cuda_launch::Ptr;
namespace k = ::moeserve::kernels;

absl::Status CudaBackend::WriteMlaCache(const Tensor& kv_c, const Tensor& k_pe,
                                        const AttentionMetadata& meta, const Tensor& cache) {
  RETURN_IF_ERROR(cuda_checks::CheckWriteMlaCache(kv_c, k_pe, meta, cache));
  k::WriteCacheParams p;
  const int64_t lrow = kv_c.dim(1) * 2, rrow = k_pe.dim(1) * 2, row = cache.dim(2) * 2;
  p.seg[0] = {kv_c.data(), lrow, cache.data(), row, 0};
  p.seg[1] = {k_pe.data(), rrow, cache.data(), row, lrow};
  p.num_segments = 2;
  p.slot_mapping = Ptr<const int32_t>(meta.slot_mapping);
  p.num_tokens = kv_c.dim(0);
  p.num_slots = cache.dim(0) * cache.dim(1);
  p.error_flags = Flags(error_flags_);
  return Launched(k::LaunchWriteCache(p, stream_), "WriteMlaCache");
}

absl::Status CudaBackend::PagedMlaAttention(const Tensor& q_latent, const Tensor& q_pe,
                                            const Tensor& cache, const AttentionMetadata& meta,
                                            float scale, const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckPagedMlaAttention(q_latent, q_pe, cache, meta, out));
  k::PagedAttentionParams p = LayoutParams(meta, cache.dim(0));
  const int64_t L = q_latent.dim(2), R = q_pe.dim(2);
  p.q_a = Ptr<const bf16>(q_latent);
  p.q_b = Ptr<const bf16>(q_pe);
  p.dim_a = static_cast<int>(L);
  p.dim_b = static_cast<int>(R);
  p.dim_v = static_cast<int>(L);
  p.k_cache = Ptr<const bf16>(cache);
  p.k_slot_stride = L + R;
  p.v_cache = Ptr<const bf16>(cache);
  p.v_slot_stride = L + R;
  p.out = Ptr<bf16>(out);
  p.num_heads = static_cast<int>(q_latent.dim(1));
  p.num_kv_heads = 1;
  p.scale = scale;
  p.error_flags = Flags(error_flags_);
  return Launched(k::LaunchPagedAttention(p, stream_), "PagedMlaAttention");
}

}  // namespace moeserve
