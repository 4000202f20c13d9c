// Row ops, paged attention and MoE of the CUDA backend: validate on the host (cuda_checks.h), then
// queue one launcher from cuda/ on the backend's stream.

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "cuda/add.cuh"
#include "cuda/gather_rows.cuh"
#include "cuda/moe_combine.cuh"
#include "cuda/moe_route.cuh"
#include "cuda/paged_attention.cuh"
#include "cuda/rms_norm.cuh"
#include "cuda/rope.cuh"
#include "cuda/silu_mul.cuh"
#include "cuda/write_cache.cuh"
#include "server/backend/cuda/cuda_backend.h"
#include "server/backend/cuda/cuda_checks.h"
#include "server/backend/cuda/cuda_status.h"
#include "server/backend/cuda/moe_plan.h"
#include "server/common/status_macros.h"

namespace moeserve {
namespace {

using bf16 = __nv_bfloat16;
namespace k = ::moeserve::kernels;

template <typename T>
T* Ptr(const Tensor& t) {
  return static_cast<T*>(t.data());
}

unsigned* Flags(const Tensor& t) { return static_cast<unsigned*>(t.data()); }

// Launch + error mapping: an InvalidValue from a launcher means the shape is unsupported there.
absl::Status Launched(cudaError_t e, const char* op) {
  return cuda_status::FromCuda(e, std::string(op));
}

k::PagedAttentionParams LayoutParams(const AttentionMetadata& meta, int64_t num_blocks) {
  k::PagedAttentionParams p;
  p.query_start_loc = Ptr<const int32_t>(meta.query_start_loc);
  p.seq_lens = Ptr<const int32_t>(meta.seq_lens);
  p.block_tables = Ptr<const int32_t>(meta.block_tables);
  p.max_blocks_per_seq = meta.block_tables.dim(1);
  p.num_seqs = meta.num_seqs;
  p.num_tokens = meta.num_tokens;
  p.block_size = meta.block_size;
  p.num_blocks = num_blocks;
  return p;
}

}  // namespace

absl::Status CudaBackend::Embedding(const Tensor& table, const Tensor& ids, const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckEmbedding(table, ids, out));
  k::GatherRowsParams p;
  p.src = table.data();
  p.dst = out.data();
  p.indices = Ptr<const int32_t>(ids);
  p.num_indices = ids.dim(0);
  p.src_rows = table.dim(0);
  p.row_bytes = table.dim(1) * 2;
  p.error_flags = Flags(error_flags_);
  return Launched(k::LaunchGatherRows(p, stream_), "Embedding");
}

absl::Status CudaBackend::GatherRows(const Tensor& x, const Tensor& indices, const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckGatherRows(x, indices, out));
  k::GatherRowsParams p;
  p.src = x.data();
  p.dst = out.data();
  p.indices = Ptr<const int32_t>(indices);
  p.num_indices = indices.dim(0);
  p.src_rows = x.dim(0);
  p.row_bytes = x.dim(1) * static_cast<int64_t>(DTypeSize(x.dtype()));
  p.error_flags = Flags(error_flags_);
  return Launched(k::LaunchGatherRows(p, stream_), "GatherRows");
}

absl::Status CudaBackend::RmsNorm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckRmsNorm(x, w, out));
  k::RmsNormParams p;
  p.x = Ptr<const bf16>(x);
  p.weight = Ptr<const float>(w);
  p.out = Ptr<bf16>(out);
  p.rows = x.dim(0);
  p.dim = x.dim(1);
  p.eps = eps;
  return Launched(k::LaunchRmsNorm(p, stream_), "RmsNorm");
}

absl::Status CudaBackend::AddRmsNorm(const Tensor& x, const Tensor& residual, const Tensor& w,
                                     float eps, const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckAddRmsNorm(x, residual, w, out));
  k::RmsNormParams p;
  p.x = Ptr<const bf16>(x);
  p.residual = Ptr<bf16>(residual);
  p.weight = Ptr<const float>(w);
  p.out = Ptr<bf16>(out);
  p.rows = x.dim(0);
  p.dim = x.dim(1);
  p.eps = eps;
  return Launched(k::LaunchRmsNorm(p, stream_), "AddRmsNorm");
}

absl::Status CudaBackend::Add(const Tensor& a, const Tensor& b, const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckAdd(a, b, out));
  k::AddParams p;
  p.a = Ptr<const bf16>(a);
  p.b = Ptr<const bf16>(b);
  p.out = Ptr<bf16>(out);
  p.n = a.numel();
  return Launched(k::LaunchAdd(p, stream_), "Add");
}

absl::Status CudaBackend::Rope(const Tensor& x, const Tensor& positions, const Tensor& cos_sin,
                               int32_t rotary_dim, RopeStyle style) {
  RETURN_IF_ERROR(cuda_checks::CheckRope(x, positions, cos_sin, rotary_dim));
  k::RopeParams p;
  p.x = Ptr<bf16>(x);
  p.positions = Ptr<const int32_t>(positions);
  p.cos_sin = Ptr<const float>(cos_sin);
  p.tokens = x.dim(0);
  p.heads = x.dim(1);
  p.head_dim = x.dim(2);
  p.rotary_dim = rotary_dim;
  p.max_position = cos_sin.dim(0);
  p.interleaved = style == RopeStyle::kInterleaved;
  p.error_flags = Flags(error_flags_);
  return Launched(k::LaunchRope(p, stream_), "Rope");
}

absl::Status CudaBackend::SiluMul(const Tensor& gate_up, const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckSiluMul(gate_up, out));
  k::SiluMulParams p;
  p.gate_up = Ptr<const bf16>(gate_up);
  p.out = Ptr<bf16>(out);
  p.rows = out.dim(0);
  p.inter = out.dim(1);
  return Launched(k::LaunchSiluMul(p, stream_), "SiluMul");
}

absl::Status CudaBackend::WriteKvCache(const Tensor& kt, const Tensor& v,
                                       const AttentionMetadata& meta, const Tensor& k_cache,
                                       const Tensor& v_cache) {
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

absl::Status CudaBackend::PagedAttention(const Tensor& q, const Tensor& k_cache,
                                         const Tensor& v_cache, const AttentionMetadata& meta,
                                         float scale, const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckPagedAttention(q, k_cache, v_cache, meta, out));
  k::PagedAttentionParams p = LayoutParams(meta, k_cache.dim(0));
  const int64_t Hkv = k_cache.dim(2), D = q.dim(2), Dv = v_cache.dim(3);
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

absl::Status CudaBackend::MoeRoute(const Tensor& router_logits, const Tensor& correction_bias,
                                   const MoeRoutingParams& params, const Tensor& topk_ids,
                                   const Tensor& topk_weights) {
  RETURN_IF_ERROR(cuda_checks::CheckMoeRoute(router_logits, correction_bias, params, topk_ids,
                                             topk_weights));
  k::MoeRouteParams p;
  p.logits = router_logits.data();
  p.logits_bf16 = router_logits.dtype() == DType::kBF16;
  p.correction_bias =
      params.method == MoeTopkMethod::kNoAuxTc ? Ptr<const float>(correction_bias) : nullptr;
  p.topk_ids = Ptr<int32_t>(topk_ids);
  p.topk_weights = Ptr<float>(topk_weights);
  p.tokens = router_logits.dim(0);
  p.num_experts = static_cast<int>(router_logits.dim(1));
  p.top_k = params.top_k;
  p.scoring = params.scoring == MoeScoring::kSoftmax ? k::MoeScoreFn::kSoftmax
                                                     : k::MoeScoreFn::kSigmoid;
  switch (params.method) {
    case MoeTopkMethod::kGreedy: p.method = k::MoeSelect::kGreedy; break;
    case MoeTopkMethod::kGroupLimitedGreedy: p.method = k::MoeSelect::kGroupLimitedGreedy; break;
    case MoeTopkMethod::kNoAuxTc: p.method = k::MoeSelect::kNoAuxTc; break;
  }
  const bool grouped = params.method != MoeTopkMethod::kGreedy;
  p.n_group = grouped ? params.n_group : 1;
  p.topk_group = grouped ? params.topk_group : 1;
  p.norm_topk_prob = params.norm_topk_prob;
  p.routed_scaling_factor = params.routed_scaling_factor;
  return Launched(k::LaunchMoeRoute(p, stream_), "MoeRoute");
}

// v1: the expert ids come to the host (one stream sync), the pairs are sorted by expert there
// (moe_plan.h), and each active expert runs two cuBLAS GEMMs over its gathered rows.
absl::Status CudaBackend::MoeExperts(const Tensor& x, const Tensor& topk_ids,
                                     const Tensor& topk_weights, const Tensor& gate_up,
                                     const Tensor& down, const Tensor& out) {
  RETURN_IF_ERROR(cuda_checks::CheckMoeExperts(x, topk_ids, topk_weights, gate_up, down, out));
  const int64_t T = x.dim(0), d = x.dim(1), K = topk_ids.dim(1), E = gate_up.dim(0);
  const int64_t I2 = gate_up.dim(1), I = I2 / 2, N = T * K;
  if (T == 0) return absl::OkStatus();
  if (K == 0 || d == 0) return Zero(out);
  moe_ids_host_.resize(N);
  RETURN_IF_ERROR(CopyToHost(topk_ids, absl::MakeSpan(reinterpret_cast<uint8_t*>(moe_ids_host_.data()),
                                                      N * sizeof(int32_t))));
  ASSIGN_OR_RETURN(MoePlan plan, BuildMoePlan(moe_ids_host_, T, K, E));
  moe_index_host_.resize(2 * N);
  std::memcpy(moe_index_host_.data(), plan.row_token.data(), N * sizeof(int32_t));
  std::memcpy(moe_index_host_.data() + N, plan.pair_row.data(), N * sizeof(int32_t));
  ASSIGN_OR_RETURN(Tensor index, Allocate(DType::kI32, {2 * N}));
  RETURN_IF_ERROR(CopyFromHost(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(moe_index_host_.data()),
                                                   2 * N * sizeof(int32_t)),
                               index));
  ASSIGN_OR_RETURN(Tensor xe, Allocate(DType::kBF16, {N, d}));
  ASSIGN_OR_RETURN(Tensor h, Allocate(DType::kBF16, {N, I2}));
  ASSIGN_OR_RETURN(Tensor act, Allocate(DType::kBF16, {N, I}));
  ASSIGN_OR_RETURN(Tensor ye, Allocate(DType::kBF16, {N, d}));
  RETURN_IF_ERROR(GatherRows(x, index.Slice(0, N), xe));
  const auto* xe_p = Ptr<const bf16>(xe);
  const auto* gu_p = Ptr<const bf16>(gate_up);
  const auto* dn_p = Ptr<const bf16>(down);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t r0 = plan.expert_start[e], n = plan.expert_start[e + 1] - r0;
    if (n == 0) continue;
    RETURN_IF_ERROR(GemmXWt(xe_p + r0 * d, d, gu_p + e * I2 * d, d, Ptr<bf16>(h) + r0 * I2, I2, n,
                            I2, d));
  }
  RETURN_IF_ERROR(SiluMul(h, act));
  const auto* act_p = Ptr<const bf16>(act);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t r0 = plan.expert_start[e], n = plan.expert_start[e + 1] - r0;
    if (n == 0) continue;
    RETURN_IF_ERROR(GemmXWt(act_p + r0 * I, I, dn_p + e * d * I, I, Ptr<bf16>(ye) + r0 * d, d, n,
                            d, I));
  }
  k::MoeCombineParams c;
  c.expert_out = Ptr<const bf16>(ye);
  c.rows = Ptr<const int32_t>(index) + N;
  c.weights = Ptr<const float>(topk_weights);
  c.out = Ptr<bf16>(out);
  c.tokens = T;
  c.top_k = static_cast<int>(K);
  c.dim = d;
  return Launched(k::LaunchMoeCombine(c, stream_), "MoeExperts");
}

}  // namespace moeserve
