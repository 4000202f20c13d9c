#ifndef MOESERVE_CUDA_MLA_ATTENTION_CUH_
#define MOESERVE_CUDA_MLA_ATTENTION_CUH_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/mla_plan.h"
#include "cuda/paged_layout.cuh"

namespace moeserve::kernels {

// Absorbed MLA attention over a paged latent cache (Backend::PagedMlaAttention), decode and
// prefill alike: query (t, h) = [q_latent[t, h, :L] | q_pe[t, h, :R]], cache row j = [c_j | pe_j]
// (L + R bf16, slot = block_tables[s, j / block_size] * block_size + j % block_size),
// score = scale · q · row_j, out[t, h] = Σ_j softmax_j · c_j over j ∈ [0, seq_len - q_len + i]
// for query row i of sequence s. fp32 accumulation, bf16 output.
//
// Layout values read from device memory are checked: an inconsistent query_start_loc / seq_lens
// or a block id outside [0, num_blocks) sets kErrAttentionLayout and zero-fills that output row.
struct MlaAttentionParams : PagedLayout {
  const __nv_bfloat16* q_latent = nullptr;  // [T, H, L]
  const __nv_bfloat16* q_pe = nullptr;      // [T, H, R]
  const __nv_bfloat16* cache = nullptr;     // [num_blocks, block_size, L + R]
  __nv_bfloat16* out = nullptr;             // [T, H, L]
  int num_heads = 0;
  int latent_dim = 0;
  int rope_dim = 0;
  int block_size = 0;
  float scale = 1.0f;
  // Split-KV scratch of at least plan.workspace_bytes() (may be null when that is 0).
  float* workspace = nullptr;
  int64_t workspace_bytes = 0;
  unsigned* error_flags = nullptr;
};

// Runs `plan` (PlanMla for this batch). cudaErrorInvalidValue when the plan does not match the
// shapes, the workspace is too small, or a pointer is misaligned (16 bytes for the tensor-core path).
cudaError_t LaunchMlaAttention(const MlaAttentionParams& p, const MlaPlan& plan, cudaStream_t stream);

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_MLA_ATTENTION_CUH_
