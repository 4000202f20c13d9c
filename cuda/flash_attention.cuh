#ifndef MOESERVE_CUDA_FLASH_ATTENTION_CUH_
#define MOESERVE_CUDA_FLASH_ATTENTION_CUH_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/attention_plan.h"
#include "cuda/paged_layout.cuh"

namespace moeserve::kernels {

// Causal MHA/GQA attention of a flat batch over a paged bf16 cache on tensor cores
// (Backend::PagedAttention for power-of-two block sizes and head dim 64 or 128; attention_plan.h).
// q [num_tokens, num_heads, D], k_cache / v_cache [num_blocks, 1 << block_shift, num_kv_heads, D],
// out like q.
// Query row i of sequence s (query length q, context L) sits at position L - q + i and attends to
// cache positions [0, L - q + i]; head h reads kv head h / (num_heads / num_kv_heads).
// Layout values read from device memory are checked: an inconsistent sequence sets
// kErrAttentionLayout and its rows are not written; a block-table entry outside [0, num_blocks)
// sets it too and reads block 0 instead.
struct FlashAttentionParams : PagedLayout {
  const __nv_bfloat16* q = nullptr;
  const __nv_bfloat16* k_cache = nullptr;
  const __nv_bfloat16* v_cache = nullptr;
  __nv_bfloat16* out = nullptr;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int block_shift = 4;  // log2 of the cache's block size (FlashBlockShift)
  float scale = 1.0f;
  AttentionPlan plan;         // PlanAttention of this shape (use_flash must be true)
  void* workspace = nullptr;  // plan.workspace_bytes of device memory, 16-byte aligned
  unsigned* error_flags = nullptr;
};

// cudaErrorInvalidValue when the plan does not use the flash kernels or the workspace is missing.
cudaError_t LaunchFlashAttention(const FlashAttentionParams& p, cudaStream_t stream);

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_FLASH_ATTENTION_CUH_
