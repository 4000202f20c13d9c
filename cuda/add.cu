// Element-wise add and bias add: grid-stride loops, one element per thread per iteration, bf16x2
// loads where n is even and pointers 4-byte aligned. 6 bytes per element (Add), no reuse.

#include "cuda/add.cuh"
#include "cuda/common.cuh"

namespace moeserve::kernels {
namespace {

__global__ void AddKernel(AddParams p) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < p.n; i += stride) {
    p.out[i] = FromFloat<bf16>(ToFloat(p.a[i]) + ToFloat(p.b[i]));
  }
}

__global__ void AddKernelX2(AddParams p) {
  const int64_t n2 = p.n / 2;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const auto* a = reinterpret_cast<const __nv_bfloat162*>(p.a);
  const auto* b = reinterpret_cast<const __nv_bfloat162*>(p.b);
  auto* o = reinterpret_cast<__nv_bfloat162*>(p.out);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n2; i += stride) {
    const float2 x = __bfloat1622float2(a[i]), y = __bfloat1622float2(b[i]);
    o[i] = __floats2bfloat162_rn(x.x + y.x, x.y + y.y);
  }
}

template <typename T>
__global__ void AddBiasKernel(T* x, const float* bias, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += stride) {
    x[i] = FromFloat<T>(ToFloat(x[i]) + bias[i % cols]);
  }
}

unsigned GridFor(int64_t n, int threads) {
  const int64_t blocks = CeilDiv(n, threads);
  return static_cast<unsigned>(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}

}  // namespace

cudaError_t LaunchAdd(const AddParams& p, cudaStream_t stream) {
  if (p.n <= 0) return cudaSuccess;
  const bool x2 =
      p.n % 2 == 0 &&
      (reinterpret_cast<uintptr_t>(p.a) | reinterpret_cast<uintptr_t>(p.b) | reinterpret_cast<uintptr_t>(p.out)) % 4 ==
          0;
  if (x2) {
    AddKernelX2<<<GridFor(p.n / 2, 256), 256, 0, stream>>>(p);
  } else {
    AddKernel<<<GridFor(p.n, 256), 256, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

cudaError_t LaunchAddBias(const AddBiasParams& p, cudaStream_t stream) {
  const int64_t n = p.rows * p.cols;
  if (n <= 0) return cudaSuccess;
  if (p.x_is_f32) {
    AddBiasKernel<float><<<GridFor(n, 256), 256, 0, stream>>>(static_cast<float*>(p.x), p.bias, p.rows, p.cols);
  } else {
    AddBiasKernel<bf16><<<GridFor(n, 256), 256, 0, stream>>>(static_cast<bf16*>(p.x), p.bias, p.rows, p.cols);
  }
  return cudaGetLastError();
}

}  // namespace moeserve::kernels
