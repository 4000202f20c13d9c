// RMSNorm and fused residual-add + RMSNorm. One CTA per row (128..1024 threads by dim); thread i
// owns elements i, i + blockDim, ... in both passes, so every element is re-read (pass 2) only by
// the thread that wrote it and out may alias x. Bytes per row: 2·dim·2 (norm) or 2·dim·4 (fused:
// read x and residual, write residual and out) plus the L2-resident weight; ~4 FLOPs/element.
// v1 re-reads the row from L1/L2 in pass 2 instead of keeping it in registers.

#include "cuda/common.cuh"
#include "cuda/rms_norm.cuh"

namespace moeserve::kernels {
namespace {

__global__ void RmsNormKernel(RmsNormParams p) {
  const int64_t row = blockIdx.x;
  const bf16* x = p.x + row * p.dim;
  bf16* res = p.residual != nullptr ? p.residual + row * p.dim : nullptr;
  bf16* out = p.out + row * p.dim;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < p.dim; i += blockDim.x) {
    float v = ToFloat(x[i]);
    if (res != nullptr) {
      const bf16 r = FromFloat<bf16>(v + ToFloat(res[i]));
      res[i] = r;
      v = ToFloat(r);
    }
    ss += v * v;
  }
  ss = BlockSum(ss);
  const float inv = rsqrtf(ss / static_cast<float>(p.dim) + p.eps);
  const bf16* src = res != nullptr ? res : x;
  for (int64_t i = threadIdx.x; i < p.dim; i += blockDim.x) {
    out[i] = FromFloat<bf16>(p.weight[i] * (ToFloat(src[i]) * inv));
  }
}

}  // namespace

cudaError_t LaunchRmsNorm(const RmsNormParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (p.rows > 0x7fffffff || p.dim <= 0) return cudaErrorInvalidValue;
  int threads = 128;
  while (threads < 1024 && threads * 8 < p.dim) threads *= 2;
  RmsNormKernel<<<static_cast<unsigned>(p.rows), threads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace moeserve::kernels
