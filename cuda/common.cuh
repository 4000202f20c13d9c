#ifndef MOESERVE_CUDA_COMMON_CUH_
#define MOESERVE_CUDA_COMMON_CUH_

// Helpers shared by the kernels: bf16 <-> fp32, warp/block reductions, the device error word.
// Included by .cu files only (launch headers stay free of device code).

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/error_flags.h"

namespace moeserve::kernels {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(bf16 v) { return __bfloat162float(v); }
template <typename T>
__device__ __forceinline__ T FromFloat(float v);
template <>
__device__ __forceinline__ float FromFloat<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ bf16 FromFloat<bf16>(float v) {
  return __float2bfloat16_rn(v);
}

__device__ __forceinline__ float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the whole CTA; every thread gets the result. REQUIRES: blockDim.x a multiple of 32,
// at most 1024; called by every thread of the CTA.
__device__ __forceinline__ float BlockSum(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = WarpSum(v);
  __syncthreads();  // partial may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  v = lane < warps ? partial[lane] : 0.0f;
  return WarpSum(v);
}
__device__ __forceinline__ float BlockMax(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = WarpMax(v);
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  v = lane < warps ? partial[lane] : -INFINITY;
  return WarpMax(v);
}

// Rotary embedding of pair i of a head (half = rotary_dim / 2): the pair is (2i, 2i + 1) when
// interleaved (GPT-J), else (i, i + half) (NeoX); c / s are the cos / sin halves of the position's
// table row. Reads src, writes dst (may be the same row); fp32 math.
template <typename I>
__device__ __forceinline__ void RotatePair(const bf16* src, bf16* dst, I i, I half, bool interleaved, const float* c,
                                           const float* s) {
  const I i1 = interleaved ? 2 * i : i;
  const I i2 = interleaved ? 2 * i + 1 : i + half;
  const float x1 = ToFloat(src[i1]), x2 = ToFloat(src[i2]);
  dst[i1] = FromFloat<bf16>(x1 * c[i] - x2 * s[i]);
  dst[i2] = FromFloat<bf16>(x2 * c[i] + x1 * s[i]);
}

__device__ __forceinline__ void RaiseError(unsigned* flags, unsigned bit) {
  if (flags != nullptr) atomicOr(flags, bit);
}

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_COMMON_CUH_
