#ifndef MOESERVE_CUDA_ATTENTION_DISPATCH_H_
#define MOESERVE_CUDA_ATTENTION_DISPATCH_H_

// Compile-time dispatch of attention head dims, as plain C++ so the host side is unit-tested
// without a GPU. The paged attention kernel is instantiated for a few capacities (the largest
// query/key dim and value dim it holds); a runtime shape runs in the smallest capacity that fits
// it. Anything larger than every capacity is unsupported and the launcher returns an error.

#include <cstdint>

namespace moeserve::kernels {

struct AttentionCapacity {
  int max_qk_dim;  // q · k dims (MLA: kv_lora_rank + rope dim)
  int max_v_dim;   // value / output dims
};

// Instantiated capacities, smallest first: standard heads up to 64, 128, 256, and DeepSeek MLA
// (512 latent + 64 rope).
inline constexpr AttentionCapacity kAttentionCapacities[] = {{64, 64}, {128, 128}, {256, 256}, {576, 512}};
inline constexpr int kNumAttentionCapacities = 4;

// Index into kAttentionCapacities for qk_dim, v_dim, or -1 when no capacity holds them.
constexpr int ChooseAttentionCapacity(int64_t qk_dim, int64_t v_dim) {
  if (qk_dim <= 0 || v_dim <= 0) return -1;
  for (int i = 0; i < kNumAttentionCapacities; ++i) {
    if (qk_dim <= kAttentionCapacities[i].max_qk_dim && v_dim <= kAttentionCapacities[i].max_v_dim) {
      return i;
    }
  }
  return -1;
}

// Dynamic shared memory of one attention CTA: a block's scores (fp32).
constexpr int64_t AttentionSharedBytes(int64_t block_size) { return block_size * 4; }

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_ATTENTION_DISPATCH_H_
