#ifndef MOESERVE_SERVER_BACKEND_CUDA_CUDA_LAUNCH_H_
#define MOESERVE_SERVER_BACKEND_CUDA_CUDA_LAUNCH_H_

// Helpers shared by the CudaBackend op files (cuda_ops.cc, cuda_attention.cc, cuda_mla.cc,
// cuda_moe.cc): typed views of tensor data and the mapping of a launcher's error to a Status.
// Internal to server/backend/cuda/.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <string>

#include "absl/status/status.h"
#include "cuda/paged_layout.cuh"
#include "server/backend/backend.h"
#include "server/backend/cuda/cuda_status.h"
#include "server/backend/tensor.h"

namespace moeserve::cuda_launch {

using bf16 = __nv_bfloat16;

template <typename T>
T* Ptr(const Tensor& t) {
  return static_cast<T*>(t.data());
}

inline unsigned* Flags(const Tensor& t) { return static_cast<unsigned*>(t.data()); }

// Launch + error mapping: an InvalidValue from a launcher means the shape is unsupported there.
inline absl::Status Launched(cudaError_t e, const char* op) { return cuda_status::FromCuda(e, std::string(op)); }

// Attention launcher parameters (derived from kernels::PagedLayout) with the paged layout filled
// from the step's metadata.
template <typename Params>
Params LayoutParams(const AttentionMetadata& meta, int64_t num_blocks) {
  Params p;
  p.query_start_loc = Ptr<const int32_t>(meta.query_start_loc);
  p.seq_lens = Ptr<const int32_t>(meta.seq_lens);
  p.block_tables = Ptr<const int32_t>(meta.block_tables);
  p.max_blocks_per_seq = meta.block_tables.dim(1);
  p.num_seqs = meta.num_seqs;
  p.num_tokens = meta.num_tokens;
  p.num_blocks = num_blocks;
  return p;
}

}  // namespace moeserve::cuda_launch

#endif  // MOESERVE_SERVER_BACKEND_CUDA_CUDA_LAUNCH_H_
