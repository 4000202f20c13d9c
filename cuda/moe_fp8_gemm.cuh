#ifndef MOESERVE_CUDA_MOE_FP8_GEMM_CUH_
#define MOESERVE_CUDA_MOE_FP8_GEMM_CUH_

// W8A8 MoE (the DeepGEMM scheme on mma.sync): activations quantized to e4m3 per token per 128
// channels, fp8 × fp8 grouped GEMM over the expert-sorted rows of moe_permute with fp32
// accumulation, each 128-K slice's partial sum scaled by (activation scale × weight block scale).

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/moe_fp8_plan.h"

namespace moeserve::kernels {

// q[r, c] = e4m3(x[r, c] / s[r, c / 128]), s = max(amax of the 128-block, kMoeFp8MinAmax) / 448,
// round to nearest even, saturating. q's 16-column groups are stored in PermuteFp8ForMma order
// (the order of the fp8 weights, so the GEMM's K order matches). Rows at or past
// *num_m_tiles · kMoeTileM are skipped when num_m_tiles is given.
// REQUIRES: k % 128 == 0; x 4-byte aligned, q 4-byte aligned.
struct MoeQuantizeFp8Params {
  const void* x = nullptr;  // bf16 [rows, k]
  void* q = nullptr;        // e4m3 [rows, k]
  float* scales = nullptr;  // [rows, k / 128]
  int64_t rows = 0;
  int64_t k = 0;
  const int32_t* num_m_tiles = nullptr;  // optional device bound
};
cudaError_t LaunchMoeQuantizeFp8(const MoeQuantizeFp8Params& p, cudaStream_t stream);

// out[r] = Σ_kb (A_q[r, kb] · W_q[e(r), :, kb]ᵀ) · a_scale[r, kb] · w_scale[e(r), n / 128, kb]
// over the permuted rows r, e(r) = tile_expert[r / kMoeTileM]. A row r reads q[a_rows[r]] (and its
// scales) when a_rows is given (a_rows[r] < 0: zeros), else q[r]. Modes and padding as
// MoeGemmParams: gate_up_silu writes silu(gate) · up [rows, n] (padding rows as zeros), else the
// product [rows, n] (padding rows skipped). bf16 out.
// REQUIRES: n % 128 == 0, k % 128 == 0; weights in the CUDA backend's fp8 layout.
struct MoeFp8GemmParams {
  const void* a = nullptr;              // e4m3 [*, k] (MoeQuantizeFp8 output)
  const float* a_scales = nullptr;      // [*, k / 128]
  const int32_t* a_rows = nullptr;      // [max_rows] or null
  const int32_t* valid_rows = nullptr;  // [max_rows]: < 0 marks a padding row
  const void* w = nullptr;              // e4m3 [E, N_w, k]
  const float* w_scales = nullptr;      // [E, N_w / 128, k / 128]
  const int32_t* tile_expert = nullptr;
  const int32_t* num_m_tiles = nullptr;
  int64_t max_m_tiles = 0;
  void* out = nullptr;  // bf16 [max_rows, n]
  int64_t n = 0;
  int64_t k = 0;
  int num_experts = 0;
  bool gate_up_silu = false;
};
cudaError_t LaunchMoeFp8GroupedGemm(const MoeFp8GemmParams& p, cudaStream_t stream);

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_MOE_FP8_GEMM_CUH_
