// Rotary embedding. One CTA per token; thread i owns rotation pairs i, i + blockDim, ... over
// heads × rotary_dim/2 (so a thread reads the token's cos/sin row from L1/L2 and rotates in fp32).
// Bytes per token: 2·2·H·rotary_dim (bf16 read + write) + 4·rotary_dim table; 6 FLOPs per pair.

#include "cuda/common.cuh"
#include "cuda/rope.cuh"

namespace moeserve::kernels {
namespace {

__global__ void RopeKernel(RopeParams p) {
  const int64_t t = blockIdx.x;
  const int32_t pos = p.positions[t];
  if (pos < 0 || pos >= p.max_position) {
    if (threadIdx.x == 0) RaiseError(p.error_flags, kErrRopePosition);
    return;
  }
  const int64_t half = p.rotary_dim / 2;
  const float* c = p.cos_sin + pos * p.rotary_dim;
  const float* s = c + half;
  for (int64_t k = threadIdx.x; k < p.heads * half; k += blockDim.x) {
    const int64_t h = k / half, i = k % half;
    bf16* v = p.x + (t * p.heads + h) * p.head_dim;
    RotatePair(v, v, i, half, p.interleaved, c, s);
  }
}

}  // namespace

cudaError_t LaunchRope(const RopeParams& p, cudaStream_t stream) {
  if (p.tokens == 0 || p.heads == 0) return cudaSuccess;
  if (p.tokens > 0x7fffffff || p.rotary_dim <= 0 || p.rotary_dim % 2 != 0 || p.rotary_dim > p.head_dim) {
    return cudaErrorInvalidValue;
  }
  const int64_t pairs = p.heads * p.rotary_dim / 2;
  const int threads = pairs >= 256 ? 256 : (pairs >= 128 ? 128 : 64);
  RopeKernel<<<static_cast<unsigned>(p.tokens), threads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace moeserve::kernels
