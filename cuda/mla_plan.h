#ifndef MOESERVE_CUDA_MLA_PLAN_H_
#define MOESERVE_CUDA_MLA_PLAN_H_

// Launch planning of the MLA attention kernels (cuda/mla_attention.cu) as plain C++, so the choice
// of kernel, head tiling, split-KV count and workspace size is unit-tested without a GPU.
//
// Two kernels:
// - kTensorCore: DeepSeek's latent shape (L = 512, R = 64). One CTA per (token, tile of 16·G heads,
//   KV split) reads each tile of 32 latent rows once for all its heads (mma.sync bf16).
// - kGeneric: any other L ≤ 512, L + R ≤ 576 (test models): one CTA per (token, head), scalar.
// Split-KV (tensor-core kernel only) writes fp32 partial outputs + log-sum-exp to a workspace and a
// combine kernel merges them; with one split the kernel writes the output directly.

#include <cstdint>

namespace moeserve::kernels {

inline constexpr int kMlaTileTokens = 32;  // latent rows per shared-memory tile
inline constexpr int kMlaMaxSplits = 64;
inline constexpr int kMlaMinTilesPerSplit = 4;  // a split covers at least 128 rows
inline constexpr int kMlaTcLatent = 512, kMlaTcRope = 64;
inline constexpr int kMlaMaxLatent = 512, kMlaMaxRow = 576;

enum class MlaPath : int { kUnsupported = 0, kTensorCore = 1, kGeneric = 2 };

struct MlaPlan {
  MlaPath path = MlaPath::kUnsupported;
  int head_groups = 0;  // G: heads per CTA = 16·G (tensor-core path)
  int heads_per_cta = 0;
  int head_tiles = 0;   // ceil(H / heads_per_cta)
  int ctas_per_sm = 0;  // residency the split heuristic assumes
  int num_splits = 1;
  int64_t smem_bytes = 0;      // dynamic shared memory per CTA
  int64_t partial_floats = 0;  // [splits, T, H, L] fp32 partial outputs (0 without splits)
  int64_t lse_floats = 0;      // [splits, T, H] fp32 log2-sum-exp
  int64_t workspace_bytes() const { return (partial_floats + lse_floats) * 4; }
};

constexpr bool MlaShapeSupported(int64_t L, int64_t R) {
  return L > 0 && R >= 0 && L <= kMlaMaxLatent && L + R <= kMlaMaxRow;
}

// Tensor-core kernel geometry: row stride in smem (576 + 8 bf16, so that the 8 rows an ldmatrix
// reads fall in distinct banks), pipeline stages, P tile stride.
inline constexpr int kMlaSmemRow = kMlaTcLatent + kMlaTcRope + 8;
inline constexpr int kMlaPRow = kMlaTileTokens + 8;
constexpr int MlaStages(int head_groups) { return head_groups >= 4 ? 3 : 2; }
constexpr int64_t MlaTcSmemBytes(int head_groups) {
  const int64_t heads = 16 * head_groups;
  return 2 * (heads * kMlaSmemRow + int64_t{MlaStages(head_groups)} * kMlaTileTokens * kMlaSmemRow + heads * kMlaPRow);
}

// The number of KV splits: the fewest whose wave efficiency (CTAs / whole waves of CTA slots) is
// within 85% of the best, as FlashAttention's heuristic, capped so that each split keeps at least
// kMlaMinTilesPerSplit tiles of the longest context and the split grid within two waves of CTA
// slots (so the workspace stays below 2 · slots · 16G heads · L floats).
inline int ChooseMlaSplits(int64_t base_ctas, int64_t slots, int64_t max_ctx) {
  if (base_ctas <= 0 || slots <= 0 || max_ctx <= 0) return 1;
  if (base_ctas >= slots) return 1;
  const int64_t tiles = (max_ctx + kMlaTileTokens - 1) / kMlaTileTokens;
  int64_t cap = tiles / kMlaMinTilesPerSplit;
  if (cap > kMlaMaxSplits) cap = kMlaMaxSplits;
  if (cap > 2 * slots / base_ctas) cap = 2 * slots / base_ctas;  // at most two waves: bounds the workspace
  if (cap <= 1) return 1;
  auto efficiency = [&](int64_t s) {
    const int64_t ctas = base_ctas * s;
    const int64_t waves = (ctas + slots - 1) / slots;
    return static_cast<double>(ctas) / static_cast<double>(waves * slots);
  };
  double best = 0.0;
  for (int64_t s = 1; s <= cap; ++s) best = efficiency(s) > best ? efficiency(s) : best;
  for (int64_t s = 1; s <= cap; ++s) {
    if (efficiency(s) >= 0.85 * best) return static_cast<int>(s);
  }
  return 1;
}

// The plan for T query tokens of H heads over contexts of at most max_ctx rows on num_sms SMs.
inline MlaPlan PlanMla(int64_t T, int64_t H, int64_t L, int64_t R, int64_t max_ctx, int num_sms) {
  MlaPlan p;
  if (!MlaShapeSupported(L, R) || H <= 0 || T < 0) return p;
  if (L != kMlaTcLatent || R != kMlaTcRope) {
    p.path = MlaPath::kGeneric;
    p.heads_per_cta = 1;
    p.head_tiles = static_cast<int>(H);
    p.ctas_per_sm = 0;
    p.smem_bytes = 0;
    return p;
  }
  p.path = MlaPath::kTensorCore;
  p.head_groups = H <= 16 ? 1 : (H <= 32 ? 2 : 4);
  p.heads_per_cta = 16 * p.head_groups;
  p.head_tiles = static_cast<int>((H + p.heads_per_cta - 1) / p.heads_per_cta);
  p.ctas_per_sm = p.head_groups >= 4 ? 1 : 2;
  p.smem_bytes = MlaTcSmemBytes(p.head_groups);
  p.num_splits = ChooseMlaSplits(T * p.head_tiles, int64_t{num_sms} * p.ctas_per_sm, max_ctx);
  if (p.num_splits > 1) {
    p.partial_floats = int64_t{p.num_splits} * T * H * L;
    p.lse_floats = int64_t{p.num_splits} * T * H;
  }
  return p;
}

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_MLA_PLAN_H_
