#ifndef MOESERVE_CUDA_PAGED_LAYOUT_CUH_
#define MOESERVE_CUDA_PAGED_LAYOUT_CUH_

#include <cstdint>

namespace moeserve::kernels {

// Where a flat batch of queries sits in a paged KV cache; the base of every paged-attention
// launcher's parameters (flash, MLA, generic). Sequence s owns query tokens
// [query_start_loc[s], query_start_loc[s + 1]) and has seq_lens[s] cached positions (its query
// tokens included), position j in block block_tables[s, j / block_size]. The arrays live in
// device memory; kernels check them against num_tokens, max_blocks_per_seq and num_blocks.
struct PagedLayout {
  const int32_t* query_start_loc = nullptr;  // [S + 1]
  const int32_t* seq_lens = nullptr;         // [S]
  const int32_t* block_tables = nullptr;     // [S, max_blocks_per_seq]
  int64_t max_blocks_per_seq = 0;
  int num_seqs = 0;
  int num_tokens = 0;
  int64_t num_blocks = 0;
};

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_PAGED_LAYOUT_CUH_
