#ifndef MOESERVE_CUDA_GATHER_ROWS_CUH_
#define MOESERVE_CUDA_GATHER_ROWS_CUH_

#include <cuda_runtime.h>

#include <cstdint>

namespace moeserve::kernels {

// dst[i] = src[indices[i] - index_offset] for i < num_indices, rows of row_bytes bytes (any
// dtype). Serves Embedding (src = table), EmbeddingShard (a vocabulary slice: index_offset its
// first id, zero_outside) and GatherRows. An index outside [0, src_rows) zero-fills its row and,
// unless zero_outside, sets kErrGatherIndex in *error_flags (may be null).
struct GatherRowsParams {
  const void* src = nullptr;
  void* dst = nullptr;
  const int32_t* indices = nullptr;
  int64_t num_indices = 0;
  int64_t src_rows = 0;
  int64_t row_bytes = 0;
  int32_t index_offset = 0;
  bool zero_outside = false;
  unsigned* error_flags = nullptr;
};

cudaError_t LaunchGatherRows(const GatherRowsParams& p, cudaStream_t stream);

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_GATHER_ROWS_CUH_
