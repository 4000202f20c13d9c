#ifndef MOESERVE_SERVER_BACKEND_CPU_MOE_W8A8_REFERENCE_H_
#define MOESERVE_SERVER_BACKEND_CPU_MOE_W8A8_REFERENCE_H_

// Host reference of the CUDA backend's W8A8 MoE path (cuda/moe_fp8_gemm: fp8 block weights with
// activations quantized per token per 128 channels), the function its parity is measured against.
// The CPU backend itself keeps fp32 activations (MoeExperts with dequantized weights), which is
// the unquantized reference.

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace moeserve {

// In place: each row's 128-column blocks become e4m3(v / s) · s with s = max(amax, 1e-4) / 448
// (round to nearest even, saturating), the values the W8A8 GEMM multiplies.
// REQUIRES: x.size() % k == 0, k % 128 == 0.
void QuantizeDequantizeFp8Blocks(absl::Span<float> x, int64_t k);

struct MoeW8A8ReferenceInputs {
  absl::Span<const float> x;           // [T, d] (values as the device holds them: bf16-rounded)
  absl::Span<const int32_t> ids;       // [T, K] routed expert ids in [0, E - S)
  absl::Span<const float> weights;     // [T, K]
  absl::Span<const float> gate_up;     // [E, 2I, d] dequantized
  absl::Span<const float> down;        // [E, d, I] dequantized
  absl::Span<const float> shared_out;  // [T, d] or empty
  int64_t tokens = 0, hidden = 0, intermediate = 0, top_k = 0;
  int64_t num_experts = 0;  // E, routed + fused shared
  int64_t num_shared = 0;   // S: the last S experts, on every token with weight 1
};

// out [T, d] = Σ_pairs w · down_e(q(bf16(silu(gate_e(q(x))) · up_e(q(x))))) (+ shared_out),
// q = QuantizeDequantizeFp8Blocks, fp32 sums.
std::vector<float> MoeExpertsW8A8Reference(const MoeW8A8ReferenceInputs& in);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_BACKEND_CPU_MOE_W8A8_REFERENCE_H_
