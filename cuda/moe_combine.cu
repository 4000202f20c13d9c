// MoE combine. One CTA of 128 threads per token; with dim % 8 == 0 thread i owns 8 contiguous dims
// (16-byte loads) at 8i, 8i + 1024, ..., else single dims. Bytes per token: 2·dim·(K + S + 1)
// (+ 2·dim for the shared output); 2·(K + S)·dim FLOPs.

#include "cuda/common.cuh"
#include "cuda/moe_combine.cuh"

namespace moeserve::kernels {
namespace {

template <int kVec>
__global__ void MoeCombineKernel(MoeCombineParams p) {
  const int64_t t = blockIdx.x;
  const int slots = p.top_k + p.num_shared;
  const int32_t* rows = p.rows + t * slots;
  const float* w = p.weights + t * p.top_k;
  for (int64_t i = threadIdx.x * kVec; i < p.dim; i += blockDim.x * kVec) {
    float acc[kVec];
    if (p.shared_out != nullptr) {
      const bf16* s = p.shared_out + t * p.dim + i;
#pragma unroll
      for (int v = 0; v < kVec; ++v) acc[v] = ToFloat(s[v]);
    } else {
#pragma unroll
      for (int v = 0; v < kVec; ++v) acc[v] = 0.0f;
    }
    for (int k = 0; k < slots; ++k) {
      const int32_t r = rows[k];
      if (r < 0) continue;
      const float wk = k < p.top_k ? w[k] : 1.0f;
      const bf16* y = p.expert_out + static_cast<int64_t>(r) * p.dim + i;
      if constexpr (kVec == 8) {
        const uint4 raw = *reinterpret_cast<const uint4*>(y);
        const bf16* yv = reinterpret_cast<const bf16*>(&raw);
#pragma unroll
        for (int v = 0; v < kVec; ++v) acc[v] += wk * ToFloat(yv[v]);
      } else {
        acc[0] += wk * ToFloat(y[0]);
      }
    }
    bf16* o = p.out + t * p.dim + i;
    if constexpr (kVec == 8) {
      uint4 raw;
      bf16* ov = reinterpret_cast<bf16*>(&raw);
#pragma unroll
      for (int v = 0; v < kVec; ++v) ov[v] = FromFloat<bf16>(acc[v]);
      *reinterpret_cast<uint4*>(o) = raw;
    } else {
      o[0] = FromFloat<bf16>(acc[0]);
    }
  }
}

}  // namespace

cudaError_t LaunchMoeCombine(const MoeCombineParams& p, cudaStream_t stream) {
  if (p.tokens == 0 || p.dim == 0) return cudaSuccess;
  if (p.tokens > 0x7fffffff || p.top_k < 0 || p.num_shared < 0 || p.top_k + p.num_shared == 0) {
    return cudaErrorInvalidValue;
  }
  const unsigned grid = static_cast<unsigned>(p.tokens);
  if (p.dim % 8 == 0) {
    MoeCombineKernel<8><<<grid, 128, 0, stream>>>(p);
  } else {
    MoeCombineKernel<1><<<grid, 128, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace moeserve::kernels
