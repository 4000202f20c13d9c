#ifndef MOESERVE_CUDA_RMS_NORM_CUH_
#define MOESERVE_CUDA_RMS_NORM_CUH_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moeserve::kernels {

// Per row of `dim`: with residual == null, out = x / rms(x) * weight; otherwise residual += x
// (rounded to bf16 and stored) and out = residual / rms(residual) * weight. out may alias x.
// bf16 rows, fp32 weight, fp32 accumulation.
struct RmsNormParams {
  const __nv_bfloat16* x = nullptr;
  __nv_bfloat16* residual = nullptr;  // optional: fused residual add
  const float* weight = nullptr;
  __nv_bfloat16* out = nullptr;
  int64_t rows = 0;
  int64_t dim = 0;
  float eps = 1e-6f;
};

cudaError_t LaunchRmsNorm(const RmsNormParams& p, cudaStream_t stream);

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_RMS_NORM_CUH_
