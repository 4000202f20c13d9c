#ifndef MOESERVE_CUDA_ROPE_CUH_
#define MOESERVE_CUDA_ROPE_CUH_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moeserve::kernels {

// In place: rotates the first rotary_dim dims of every head of x [tokens, heads, head_dim] at
// positions[t], reading cos_sin [max_position, rotary_dim] (row p: rotary_dim/2 cosines then
// rotary_dim/2 sines), as Backend::Rope. interleaved = pairs (2i, 2i+1), else halves (i, i+r/2).
// A position outside [0, max_position) sets kErrRopePosition and leaves that token unchanged.
struct RopeParams {
  __nv_bfloat16* x = nullptr;
  const int32_t* positions = nullptr;
  const float* cos_sin = nullptr;
  int64_t tokens = 0;
  int64_t heads = 0;
  int64_t head_dim = 0;
  int64_t rotary_dim = 0;
  int64_t max_position = 0;
  bool interleaved = false;
  unsigned* error_flags = nullptr;
};

cudaError_t LaunchRope(const RopeParams& p, cudaStream_t stream);

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_ROPE_CUH_
