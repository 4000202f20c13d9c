// MoE of the CUDA backend: expert routing, the expert FFNs and fp8 block weights.
//
// MoeExperts is four launches and no host synchronisation (CUDA-graph capturable): the device
// sorts the (token, slot) pairs by expert into tile-padded segments (moe_permute; fused shared
// experts are extra slots of every token, so both GEMMs cover them too), one grouped GEMM
// computes silu(gate) * up for every expert with the x gather fused into its loads, one grouped
// GEMM computes down, and the combine un-permutes, weights and adds the shared experts' output.
// The workspace is sized from T·K (moe_plan.h) and comes from the caching allocator.
// fp8 block weights with prefill-sized batches (MoeUseW8A8: >= 64 pairs per expert on average)
// run W8A8 instead: x and the intermediate are quantized per token per 128 channels and both
// GEMMs are fp8 x fp8 (moe_fp8_gemm); decode keeps the W8A16 GEMM.

#include <cstring>
#include <vector>

#include "cuda/error_flags.h"
#include "cuda/fp8_weight.cuh"
#include "cuda/moe_combine.cuh"
#include "cuda/moe_fp8_gemm.cuh"
#include "cuda/moe_grouped_gemm.cuh"
#include "cuda/moe_permute.cuh"
#include "cuda/moe_route.cuh"
#include "server/backend/cuda/cuda_backend.h"
#include "server/backend/cuda/cuda_checks.h"
#include "server/backend/cuda/cuda_launch.h"
#include "server/backend/cuda/cuda_status.h"
#include "server/backend/cuda/moe_plan.h"
#include "server/backend/op_checks.h"
#include "server/common/status_macros.h"

namespace moeserve {

using cuda_launch::bf16;
using cuda_launch::Flags;
using cuda_launch::Launched;
using cuda_launch::Ptr;
namespace k = ::moeserve::kernels;

absl::Status CudaBackend::MoeRoute(const Tensor& router_logits, const Tensor& correction_bias,
                                   const MoeRoutingParams& params, const Tensor& topk_ids, const Tensor& topk_weights) {
  RETURN_IF_ERROR(cuda_checks::CheckMoeRoute(router_logits, correction_bias, params, topk_ids, topk_weights));
  k::MoeRouteParams p;
  p.logits = router_logits.data();
  p.logits_bf16 = router_logits.dtype() == DType::kBF16;
  p.correction_bias = params.method == MoeTopkMethod::kNoAuxTc ? Ptr<const float>(correction_bias) : nullptr;
  p.topk_ids = Ptr<int32_t>(topk_ids);
  p.topk_weights = Ptr<float>(topk_weights);
  p.tokens = router_logits.dim(0);
  p.num_experts = static_cast<int>(router_logits.dim(1));
  p.top_k = params.top_k;
  p.scoring = params.scoring == MoeScoring::kSoftmax ? k::MoeScoreFn::kSoftmax : k::MoeScoreFn::kSigmoid;
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

absl::Status CudaBackend::MoeExperts(const Tensor& x, const Tensor& topk_ids, const Tensor& topk_weights,
                                     const Tensor& gate_up, const Tensor& down, const Tensor& out,
                                     const MoeExpertsExtras& extras) {
  RETURN_IF_ERROR(cuda_checks::CheckMoeExperts(x, topk_ids, topk_weights, gate_up, down, out, extras));
  const int64_t T = x.dim(0), d = x.dim(1), K = topk_ids.dim(1), E = gate_up.dim(0);
  const int64_t I = gate_up.dim(1) / 2, S = extras.num_shared_experts;
  if (T == 0) return absl::OkStatus();
  if (K + S == 0 || d == 0 || I == 0) {
    if (!extras.shared_out.defined()) return Zero(out);
    if (extras.shared_out.data() == out.data()) return absl::OkStatus();
    CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(out.data(), extras.shared_out.data(), out.bytes(), cudaMemcpyDeviceToDevice, stream_),
        "MoeExperts: copy shared_out");
    return absl::OkStatus();
  }
  const MoeWorkspaceLayout lay = PlanMoeWorkspace(T, K, E, d, I, S);
  ASSIGN_OR_RETURN(Tensor ws, Allocate(DType::kU8, {lay.total_bytes}));
  char* base = static_cast<char*>(ws.data());
  auto* row_token = reinterpret_cast<int32_t*>(base + lay.row_token);
  auto* pair_row = reinterpret_cast<int32_t*>(base + lay.pair_row);
  auto* tile_expert = reinterpret_cast<int32_t*>(base + lay.tile_expert);
  auto* num_m_tiles = reinterpret_cast<int32_t*>(base + lay.num_m_tiles);

  k::MoePermuteParams pp;
  pp.topk_ids = Ptr<const int32_t>(topk_ids);
  pp.pairs = T * (K + S);
  pp.top_k = static_cast<int>(K);
  pp.num_shared = static_cast<int>(S);
  pp.num_experts = static_cast<int>(E);
  pp.expert_offset = static_cast<int>(extras.first_expert);
  pp.routed_total = static_cast<int>(extras.num_routed_experts);
  pp.row_token = row_token;
  pp.pair_row = pair_row;
  pp.tile_expert = tile_expert;
  pp.num_m_tiles = num_m_tiles;
  pp.expert_counts = extras.expert_counts.defined() ? Ptr<int64_t>(extras.expert_counts) : nullptr;
  pp.num_valid_tokens = extras.num_valid_tokens.defined() ? Ptr<const int32_t>(extras.num_valid_tokens) : nullptr;
  pp.error_flags = Flags(error_flags_);
  pp.error_bit = k::kErrMoeExpertId;
  RETURN_IF_ERROR(Launched(k::LaunchMoePermute(pp, stream_), "MoeExperts: permute"));

  const bool fp8 = gate_up.dtype() == DType::kF8E4M3;
  if (k::MoeUseW8A8(fp8, T, K + S, E)) {
    // Prefill-sized batches with fp8 weights: fp8 x fp8 GEMMs on per-token-per-128 quantized
    // activations (moe_fp8_gemm.cuh).
    const k::MoeW8A8Workspace w8 = k::PlanMoeW8A8Workspace(T, d, lay.max_rows, I);
    ASSIGN_OR_RETURN(Tensor ws8, Allocate(DType::kU8, {w8.total_bytes}));
    char* b8 = static_cast<char*>(ws8.data());
    k::MoeQuantizeFp8Params q;
    q.x = x.data();
    q.q = b8 + w8.xq;
    q.scales = reinterpret_cast<float*>(b8 + w8.xs);
    q.rows = T;
    q.k = d;
    RETURN_IF_ERROR(Launched(k::LaunchMoeQuantizeFp8(q, stream_), "MoeExperts: quantize x"));
    k::MoeFp8GemmParams f;
    f.tile_expert = tile_expert;
    f.num_m_tiles = num_m_tiles;
    f.max_m_tiles = lay.max_m_tiles;
    f.valid_rows = row_token;
    f.num_experts = static_cast<int>(E);
    f.a = b8 + w8.xq;
    f.a_scales = reinterpret_cast<const float*>(b8 + w8.xs);
    f.a_rows = row_token;
    f.w = gate_up.data();
    f.w_scales =
        reinterpret_cast<const float*>(static_cast<const char*>(gate_up.data()) + Fp8ScalesOffset(gate_up.numel()));
    f.out = base + lay.act;
    f.n = I;
    f.k = d;
    f.gate_up_silu = true;
    RETURN_IF_ERROR(Launched(k::LaunchMoeFp8GroupedGemm(f, stream_), "MoeExperts: W8A8 gate_up GEMM"));
    q.x = base + lay.act;
    q.q = b8 + w8.hq;
    q.scales = reinterpret_cast<float*>(b8 + w8.hs);
    q.rows = lay.max_rows;
    q.k = I;
    q.num_m_tiles = num_m_tiles;
    RETURN_IF_ERROR(Launched(k::LaunchMoeQuantizeFp8(q, stream_), "MoeExperts: quantize act"));
    f.a = b8 + w8.hq;
    f.a_scales = reinterpret_cast<const float*>(b8 + w8.hs);
    f.a_rows = nullptr;
    f.w = down.data();
    f.w_scales = reinterpret_cast<const float*>(static_cast<const char*>(down.data()) + Fp8ScalesOffset(down.numel()));
    f.out = base + lay.expert_out;
    f.n = d;
    f.k = I;
    f.gate_up_silu = false;
    RETURN_IF_ERROR(Launched(k::LaunchMoeFp8GroupedGemm(f, stream_), "MoeExperts: W8A8 down GEMM"));
  } else {
    k::MoeGemmParams g;
    g.format = fp8 ? k::MoeWeightFormat::kFp8Block128 : k::MoeWeightFormat::kBf16;
    g.tile_expert = tile_expert;
    g.num_m_tiles = num_m_tiles;
    g.max_m_tiles = lay.max_m_tiles;
    g.valid_rows = row_token;
    g.num_experts = static_cast<int>(E);
    // gate/up: x rows gathered by token, silu(gate) * up into act [rows, I].
    g.a = x.data();
    g.a_rows = row_token;
    g.w = gate_up.data();
    g.w_scales = fp8 ? reinterpret_cast<const float*>(static_cast<const char*>(gate_up.data()) +
                                                      Fp8ScalesOffset(gate_up.numel()))
                     : nullptr;
    g.out = base + lay.act;
    g.n = I;
    g.k = d;
    g.gate_up_silu = true;
    RETURN_IF_ERROR(Launched(k::LaunchMoeGroupedGemm(g, stream_), "MoeExperts: gate_up GEMM"));
    // down: act rows in permuted order into expert_out [rows, d].
    g.a = base + lay.act;
    g.a_rows = nullptr;
    g.w = down.data();
    g.w_scales =
        fp8 ? reinterpret_cast<const float*>(static_cast<const char*>(down.data()) + Fp8ScalesOffset(down.numel()))
            : nullptr;
    g.out = base + lay.expert_out;
    g.n = d;
    g.k = I;
    g.gate_up_silu = false;
    RETURN_IF_ERROR(Launched(k::LaunchMoeGroupedGemm(g, stream_), "MoeExperts: down GEMM"));
  }

  k::MoeCombineParams c;
  c.expert_out = reinterpret_cast<const bf16*>(base + lay.expert_out);
  c.rows = pair_row;
  c.weights = Ptr<const float>(topk_weights);
  c.shared_out = extras.shared_out.defined() ? Ptr<const bf16>(extras.shared_out) : nullptr;
  c.out = Ptr<bf16>(out);
  c.tokens = T;
  c.top_k = static_cast<int>(K);
  c.num_shared = static_cast<int>(S);
  c.dim = d;
  return Launched(k::LaunchMoeCombine(c, stream_), "MoeExperts: combine");
}

absl::StatusOr<Tensor> CudaBackend::CreateFp8BlockWeight(absl::Span<const uint8_t> bytes,
                                                         absl::Span<const float> scales, Shape shape) {
  ASSIGN_OR_RETURN(const int64_t mats, CheckFp8BlockWeight(bytes, scales, shape));
  (void)mats;
  const int64_t rows = shape[shape.rank() - 2], cols = shape[shape.rank() - 1];
  // Kept fp8 only where the grouped GEMM reads it: stacked expert weights of whole blocks.
  if (shape.rank() != 3 || rows % k::kFp8BlockSize != 0 || cols % k::kFp8BlockSize != 0) {
    return CreateWeight(DequantizeFp8BlockWeight(bytes, scales, shape), shape);
  }
  const int64_t numel = shape.numel();
  const int64_t scales_at = Fp8ScalesOffset(numel);
  std::vector<uint8_t> host(static_cast<size_t>(scales_at + scales.size() * sizeof(float)), 0);
  std::memcpy(host.data(), bytes.data(), bytes.size());
  for (int64_t r = 0; r < numel / cols; ++r) k::PermuteFp8ForMma(host.data() + r * cols, cols);
  std::memcpy(host.data() + scales_at, scales.data(), scales.size() * sizeof(float));
  void* p = allocator_->Allocate(host.size());
  if (p == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("CreateFp8BlockWeight: out of CUDA memory for ", shape.ToString()));
  }
  std::shared_ptr<CachingAllocator> alloc = allocator_;
  std::shared_ptr<void> storage(p, [alloc](void* q) { alloc->Free(q); });
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(p, host.data(), host.size(), cudaMemcpyHostToDevice, stream_),
                       "CreateFp8BlockWeight: copy");
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_), "CreateFp8BlockWeight: sync");
  return Tensor(std::move(storage), p, DType::kF8E4M3, shape);
}

}  // namespace moeserve
