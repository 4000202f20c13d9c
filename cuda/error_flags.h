#ifndef MOESERVE_CUDA_ERROR_FLAGS_H_
#define MOESERVE_CUDA_ERROR_FLAGS_H_

// Bits of the device error word. Kernels that read through indices (token ids, positions, cache
// slots, block tables, expert ids) check every index; an out-of-range one sets its bit and the
// kernel skips (or zero-fills) that item instead of touching memory it should not. The host reads
// the word when it synchronises and turns set bits into InvalidArgument. Plain C++ header.

namespace moeserve::kernels {

enum ErrorFlag : unsigned {
  kErrGatherIndex = 1u << 0,      // Embedding ids / GatherRows indices
  kErrRopePosition = 1u << 1,     // Rope positions
  kErrCacheSlot = 1u << 2,        // WriteKvCache / WriteMlaCache slot_mapping
  kErrAttentionLayout = 1u << 3,  // query_start_loc / seq_lens / block_tables
  kErrMoeExpertId = 1u << 8,      // MoeExperts topk_ids
};

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_ERROR_FLAGS_H_
