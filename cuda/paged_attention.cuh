#ifndef MOESERVE_CUDA_PAGED_ATTENTION_CUH_
#define MOESERVE_CUDA_PAGED_ATTENTION_CUH_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moeserve::kernels {

// Causal attention of a flat batch of queries over a paged cache, for both standard/GQA attention
// and absorbed MLA (Backend::PagedAttention and PagedMlaAttention).
//
// The query of (token t, head h) is [q_a[t, h, :dim_a] | q_b[t, h, :dim_b]] (dim_b = 0 for standard
// attention; MLA: q_latent | q_pe). Key j of kv head g is the dim_a + dim_b contiguous values at
// k_cache + slot * k_slot_stride + g * k_head_stride, value j the dim_v values at v_cache +
// slot * v_slot_stride + g * v_head_stride (MLA: both in the same latent row), slot =
// block_tables[s, j / block_size] * block_size + j % block_size. Query row i of sequence s
// (query length q, context L) attends to positions [0, L - q + i]. GQA: head h reads kv head
// h / (num_heads / num_kv_heads). out [T, H, dim_v]. Strides in elements.
//
// Layout values read from device memory (query_start_loc, seq_lens, block_tables) are checked:
// an inconsistent one sets kErrAttentionLayout and zero-fills that output row.
struct PagedAttentionParams {
  const __nv_bfloat16* q_a = nullptr;
  const __nv_bfloat16* q_b = nullptr;  // optional
  int dim_a = 0;
  int dim_b = 0;
  int dim_v = 0;
  const __nv_bfloat16* k_cache = nullptr;
  int64_t k_slot_stride = 0;
  int64_t k_head_stride = 0;
  const __nv_bfloat16* v_cache = nullptr;
  int64_t v_slot_stride = 0;
  int64_t v_head_stride = 0;
  __nv_bfloat16* out = nullptr;
  const int32_t* query_start_loc = nullptr;  // [S + 1]
  const int32_t* seq_lens = nullptr;         // [S]
  const int32_t* block_tables = nullptr;     // [S, max_blocks_per_seq]
  int64_t max_blocks_per_seq = 0;
  int num_seqs = 0;
  int num_tokens = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int block_size = 0;
  int64_t num_blocks = 0;
  float scale = 1.0f;
  unsigned* error_flags = nullptr;
};

// cudaErrorInvalidValue when the head dims fit no instantiated capacity (attention_dispatch.h) or
// the shape is otherwise unsupported.
cudaError_t LaunchPagedAttention(const PagedAttentionParams& p, cudaStream_t stream);

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_PAGED_ATTENTION_CUH_
