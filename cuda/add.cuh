#ifndef MOESERVE_CUDA_ADD_CUH_
#define MOESERVE_CUDA_ADD_CUH_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moeserve::kernels {

// out[i] = a[i] + b[i] over n bf16 elements (fp32 add, one rounding); out may alias a or b.
struct AddParams {
  const __nv_bfloat16* a = nullptr;
  const __nv_bfloat16* b = nullptr;
  __nv_bfloat16* out = nullptr;
  int64_t n = 0;
};
cudaError_t LaunchAdd(const AddParams& p, cudaStream_t stream);

// x[r, c] += bias[c] for x [rows, cols] in bf16 or fp32 (x_is_f32), fp32 bias: Linear's bias when
// the GEMM epilogue does not apply it.
struct AddBiasParams {
  void* x = nullptr;
  bool x_is_f32 = false;
  const float* bias = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
};
cudaError_t LaunchAddBias(const AddBiasParams& p, cudaStream_t stream);

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_ADD_CUH_
