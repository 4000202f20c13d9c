// MoE combine. One CTA of 128 threads per token; thread i owns dims i, i + 128, ... and sums the
// token's top_k expert rows. Bytes per token: 2·dim·(top_k + 1); 2·top_k·dim FLOPs.

#include "cuda/common.cuh"
#include "cuda/moe_combine.cuh"

namespace moeserve::kernels {
namespace {

__global__ void MoeCombineKernel(MoeCombineParams p) {
  const int64_t t = blockIdx.x;
  const int32_t* rows = p.rows + t * p.top_k;
  const float* w = p.weights + t * p.top_k;
  for (int64_t i = threadIdx.x; i < p.dim; i += blockDim.x) {
    float acc = 0.0f;
    for (int k = 0; k < p.top_k; ++k) acc += w[k] * ToFloat(p.expert_out[rows[k] * p.dim + i]);
    p.out[t * p.dim + i] = FromFloat<bf16>(acc);
  }
}

}  // namespace

cudaError_t LaunchMoeCombine(const MoeCombineParams& p, cudaStream_t stream) {
  if (p.tokens == 0 || p.dim == 0) return cudaSuccess;
  if (p.tokens > 0x7fffffff || p.top_k <= 0) return cudaErrorInvalidValue;
  MoeCombineKernel<<<static_cast<unsigned>(p.tokens), 128, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace moeserve::kernels
