// Paged attention (MHA/GQA) of the CUDA backend: the KV-cache write and the attention over it.

#include "cuda/attention_plan.h"
#include "cuda/flash_attention.cuh"
#include "cuda/paged_attention.cuh"
#include "cuda/rope_write_cache.cuh"
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

absl::Status CudaBackend::WriteKvCache(const Tensor& kt, const Tensor& v, const AttentionMetadata& meta,
                                       const Tensor& k_cache, const Tensor& v_cache) {
  RETURN_IF_ERROR(cuda_checks::CheckWriteKvCache(kt, v, meta, k_cache, v_cache));
  k::WriteCacheParams p;
  const int64_t krow = kt.dim(1) * kt.dim(2) * 2, vrow = v.dim(1) * v.dim(2) * 2;
  p.seg[0] = {kt.data(), krow, k_cache.data(), krow, 0};
  p.seg[1] = {v.data(), vrow, v_cache.data(), vrow, 0};
  p.num_segments = 2;
  p.slot_mapping = Ptr<const int32_t>(meta.slot_mapping);
  p.num_tokens = kt.dim(0);
  p.num_slots = k_cache.dim(0) * k_cache.dim(1);
  p.error_flags = Flags(error_flags_);
  return Launched(k::LaunchWriteCache(p, stream_), "WriteKvCache");
}

absl::Status CudaBackend::RopeWriteKvCache(const Tensor& q, const Tensor& kt, const Tensor& v, const Tensor& positions,
                                           const Tensor& cos_sin, int32_t rotary_dim, RopeStyle style,
                                           const AttentionMetadata& meta, const Tensor& k_cache,
                                           const Tensor& v_cache) {
  RETURN_IF_ERROR(cuda_checks::CheckRopeWriteKvCache(q, kt, v, positions, cos_sin, rotary_dim, meta, k_cache, v_cache));
  k::RopeWriteCacheParams p;
  p.q = Ptr<bf16>(q);
  p.k = Ptr<const bf16>(kt);
  p.v = Ptr<const bf16>(v);
  p.k_cache = Ptr<bf16>(k_cache);
  p.v_cache = Ptr<bf16>(v_cache);
  p.positions = Ptr<const int32_t>(positions);
  p.slot_mapping = Ptr<const int32_t>(meta.slot_mapping);
  p.cos_sin = Ptr<const float>(cos_sin);
  p.tokens = q.dim(0);
  p.num_heads = static_cast<int>(q.dim(1));
  p.num_kv_heads = static_cast<int>(kt.dim(1));
  p.head_dim = static_cast<int>(q.dim(2));
  p.v_head_dim = static_cast<int>(v.dim(2));
  p.rotary_dim = rotary_dim;
  p.max_position = cos_sin.dim(0);
  p.num_slots = k_cache.dim(0) * k_cache.dim(1);
  p.interleaved = style == RopeStyle::kInterleaved;
  p.error_flags = Flags(error_flags_);
  return Launched(k::LaunchRopeWriteCache(p, stream_), "RopeWriteKvCache");
}

absl::Status CudaBackend::PagedAttention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                                         const AttentionMetadata& meta, float scale, const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckPagedAttention(q, k_cache, v_cache, meta, out));
  const int64_t Hkv = k_cache.dim(2), D = q.dim(2), Dv = v_cache.dim(3);
  const k::AttentionPlan plan = k::PlanAttention({.num_seqs = meta.num_seqs,
                                                  .num_heads = q.dim(1),
                                                  .num_kv_heads = Hkv,
                                                  .head_dim = D,
                                                  .v_head_dim = Dv,
                                                  .block_size = k_cache.dim(1),
                                                  .max_query_len = meta.max_query_len,
                                                  .max_seq_len = meta.max_seq_len,
                                                  .sm_count = num_sms_});
  if (plan.use_flash) {
    k::FlashAttentionParams f = LayoutParams<k::FlashAttentionParams>(meta, k_cache.dim(0));
    f.q = Ptr<const bf16>(q);
    f.k_cache = Ptr<const bf16>(k_cache);
    f.v_cache = Ptr<const bf16>(v_cache);
    f.out = Ptr<bf16>(out);
    f.num_heads = static_cast<int>(q.dim(1));
    f.num_kv_heads = static_cast<int>(Hkv);
    f.head_dim = static_cast<int>(D);
    f.block_shift = k::FlashBlockShift(k_cache.dim(1));  // >= 0: the plan uses flash
    f.scale = scale;
    f.plan = plan;
    f.error_flags = Flags(error_flags_);
    // Split-KV partials: from the caching allocator, so a steady-state step allocates nothing;
    // released here but stream-ordered, so later work cannot reuse it before the kernels ran.
    Tensor workspace;
    if (plan.workspace_bytes > 0) {
      ASSIGN_OR_RETURN(workspace, Allocate(DType::kU8, {plan.workspace_bytes}));
      f.workspace = workspace.data();
    }
    return Launched(k::LaunchFlashAttention(f, stream_), "PagedAttention");
  }
  k::PagedAttentionParams p = LayoutParams<k::PagedAttentionParams>(meta, k_cache.dim(0));
  p.block_size = meta.block_size;
  p.q_a = Ptr<const bf16>(q);
  p.dim_a = static_cast<int>(D);
  p.dim_v = static_cast<int>(Dv);
  p.k_cache = Ptr<const bf16>(k_cache);
  p.k_slot_stride = Hkv * D;
  p.k_head_stride = D;
  p.v_cache = Ptr<const bf16>(v_cache);
  p.v_slot_stride = Hkv * Dv;
  p.v_head_stride = Dv;
  p.out = Ptr<bf16>(out);
  p.num_heads = static_cast<int>(q.dim(1));
  p.num_kv_heads = static_cast<int>(Hkv);
  p.scale = scale;
  p.error_flags = Flags(error_flags_);
  return Launched(k::LaunchPagedAttention(p, stream_), "PagedAttention");
}

}  // namespace moeserve
