#ifndef MOESERVE_CUDA_SILU_MUL_CUH_
#define MOESERVE_CUDA_SILU_MUL_CUH_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace moeserve::kernels {

// out[t, i] = silu(gate_up[t, i]) * gate_up[t, I + i] for gate_up [rows, 2I], out [rows, I].
struct SiluMulParams {
  const __nv_bfloat16* gate_up = nullptr;
  __nv_bfloat16* out = nullptr;
  int64_t rows = 0;
  int64_t inter = 0;  // I
};

cudaError_t LaunchSiluMul(const SiluMulParams& p, cudaStream_t stream);

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_SILU_MUL_CUH_
