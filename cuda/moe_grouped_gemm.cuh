#ifndef MOESERVE_CUDA_MOE_GROUPED_GEMM_CUH_
#define MOESERVE_CUDA_MOE_GROUPED_GEMM_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/moe_layout.h"

namespace moeserve::kernels {

// Grouped GEMM over the expert-sorted rows of moe_permute: out[r] = A[r] · W_{e(r)}ᵀ for each
// permuted row r, e(r) = tile_expert[r / kMoeTileM]; one launch for all experts.
//   A: bf16 rows of `a`; row r reads a[a_rows[r]] when a_rows is given (the gather of x fused into
//      the load; a_rows[r] < 0 reads zeros), else a[r].
//   W: [E, N_w, K] per expert (PyTorch [out, in]); bf16 or fp8 block-scaled.
//   gate_up_silu: N_w = 2·n (gate rows then up rows) and out[r, j] = silu(g_j) · u_j, [rows, n];
//      otherwise N_w = n and out = the product, [rows, n].
// Padding rows (valid_rows[r] < 0) are written only in the gate_up_silu mode (zeros, so the next
// GEMM reads defined values); otherwise skipped. fp32 accumulation, bf16 out.
// REQUIRES: k % 8 == 0 and n % 2 == 0 (bf16); n % 128 == 0 and k % 128 == 0 (fp8).
struct MoeGemmParams {
  const void* a = nullptr;              // bf16 [*, k]
  const int32_t* a_rows = nullptr;      // [max_rows] or null
  const int32_t* valid_rows = nullptr;  // [max_rows]: < 0 marks a padding row (row_token)
  const void* w = nullptr;              // [E, N_w, k]
  const float* w_scales = nullptr;      // fp8: [E, N_w / 128, k / 128]
  MoeWeightFormat format = MoeWeightFormat::kBf16;
  const int32_t* tile_expert = nullptr;  // [max_m_tiles]
  const int32_t* num_m_tiles = nullptr;  // [1]
  int64_t max_m_tiles = 0;               // grid bound (MoeMaxMTiles)
  void* out = nullptr;                   // bf16 [max_rows, n]
  int64_t n = 0;
  int64_t k = 0;
  int num_experts = 0;
  bool gate_up_silu = false;
};

cudaError_t LaunchMoeGroupedGemm(const MoeGemmParams& p, cudaStream_t stream);

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_MOE_GROUPED_GEMM_CUH_
