// MLA of the CUDA backend: the latent cache write and the absorbed attention over latent rows.

#include "cuda/mla_attention.cuh"
#include "cuda/mla_cache.cuh"
#include "cuda/mla_plan.h"
#include "cuda/write_cache.cuh"
#include "server/backend/cuda/cuda_backend.h"
#include "server/backend/cuda/cuda_checks.h"
#include "server/backend/cuda/cuda_launch.h"
#include "server/backend/cuda/cuda_status.h"
#include "server/common/status_macros.h"

namespace moeserve {

using cuda_launch::bf16;
using cuda_launch::Flags;
using cuda_launch::Launched;
using cuda_launch::LayoutParams;
using cuda_launch::Ptr;
namespace k = ::moeserve::kernels;

absl::Status CudaBackend::WriteMlaCache(const Tensor& kv_c, const Tensor& k_pe, const AttentionMetadata& meta,
                                        const Tensor& cache) {
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

absl::Status CudaBackend::RopeWriteMlaCache(const Tensor& kv_c, const Tensor& k_pe, const Tensor& positions,
                                            const Tensor& cos_sin, RopeStyle style, const AttentionMetadata& meta,
                                            const Tensor& cache) {
  RETURN_IF_ERROR(cuda_checks::CheckRopeWriteMlaCache(kv_c, k_pe, positions, cos_sin, meta, cache));
  k::RopeWriteMlaCacheParams p;
  p.kv_c = Ptr<const bf16>(kv_c);
  p.k_pe = Ptr<const bf16>(k_pe);
  p.positions = Ptr<const int32_t>(positions);
  p.cos_sin = Ptr<const float>(cos_sin);
  p.slot_mapping = Ptr<const int32_t>(meta.slot_mapping);
  p.cache = Ptr<bf16>(cache);
  p.tokens = kv_c.dim(0);
  p.latent_dim = kv_c.dim(1);
  p.rope_dim = k_pe.dim(1);
  p.max_position = cos_sin.dim(0);
  p.num_slots = cache.dim(0) * cache.dim(1);
  p.interleaved = style == RopeStyle::kInterleaved;
  p.error_flags = Flags(error_flags_);
  return Launched(k::LaunchRopeWriteMlaCache(p, stream_), "RopeWriteMlaCache");
}

absl::Status CudaBackend::PagedMlaAttention(const Tensor& q_latent, const Tensor& q_pe, const Tensor& cache,
                                            const AttentionMetadata& meta, float scale, const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckPagedMlaAttention(q_latent, q_pe, cache, meta, out));
  const int64_t T = q_latent.dim(0), H = q_latent.dim(1), L = q_latent.dim(2), R = q_pe.dim(2);
  if (T == 0) return absl::OkStatus();
  const k::MlaPlan plan = k::PlanMla(T, H, L, R, meta.max_seq_len, num_sms_);
  // Split-KV scratch for this call only, as FlashAttention's: while a graph is recorded it comes
  // from the graph's private pool, so the captured address stays out of everyone else's reach.
  const int64_t need = plan.workspace_bytes();
  Tensor workspace;
  if (need > 0) {
    ASSIGN_OR_RETURN(workspace, Allocate(DType::kF32, {need / 4}));
  }
  k::MlaAttentionParams p = LayoutParams<k::MlaAttentionParams>(meta, cache.dim(0));
  p.q_latent = Ptr<const bf16>(q_latent);
  p.q_pe = Ptr<const bf16>(q_pe);
  p.cache = Ptr<const bf16>(cache);
  p.out = Ptr<bf16>(out);
  p.num_tokens = static_cast<int>(T);
  p.num_heads = static_cast<int>(H);
  p.latent_dim = static_cast<int>(L);
  p.rope_dim = static_cast<int>(R);
  p.block_size = meta.block_size;
  p.scale = scale;
  if (need > 0) {
    p.workspace = Ptr<float>(workspace);
    p.workspace_bytes = static_cast<int64_t>(workspace.bytes());
  }
  p.error_flags = Flags(error_flags_);
  return Launched(k::LaunchMlaAttention(p, plan, stream_), "PagedMlaAttention");
}

}  // namespace moeserve
