// Row gather. One CTA of 128 threads per output row; each thread copies Unit-sized words
// (16 bytes when the row and both pointers allow, else 4/2/1). Pure bandwidth: 2 × row_bytes per
// row (read + write), no FLOPs.

#include "cuda/common.cuh"
#include "cuda/gather_rows.cuh"

namespace moeserve::kernels {
namespace {

template <typename Unit>
__global__ void GatherRowsKernel(GatherRowsParams p) {
  const int64_t i = blockIdx.x;
  const int64_t units = p.row_bytes / static_cast<int64_t>(sizeof(Unit));
  Unit* dst = reinterpret_cast<Unit*>(static_cast<char*>(p.dst) + i * p.row_bytes);
  const int64_t idx = static_cast<int64_t>(p.indices[i]) - p.index_offset;
  if (idx < 0 || idx >= p.src_rows) {
    if (threadIdx.x == 0 && !p.zero_outside) RaiseError(p.error_flags, kErrGatherIndex);
    for (int64_t u = threadIdx.x; u < units; u += blockDim.x) dst[u] = Unit{};
    return;
  }
  const Unit* src = reinterpret_cast<const Unit*>(static_cast<const char*>(p.src) + idx * p.row_bytes);
  for (int64_t u = threadIdx.x; u < units; u += blockDim.x) dst[u] = src[u];
}

bool Aligned(const void* ptr, int64_t row_bytes, int64_t a) {
  return reinterpret_cast<uintptr_t>(ptr) % a == 0 && row_bytes % a == 0;
}

}  // namespace

cudaError_t LaunchGatherRows(const GatherRowsParams& p, cudaStream_t stream) {
  if (p.num_indices == 0 || p.row_bytes == 0) return cudaSuccess;
  if (p.num_indices > 0x7fffffff || p.row_bytes < 0) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(p.num_indices));
  const int threads = 128;
  auto ok = [&](int64_t a) { return Aligned(p.src, p.row_bytes, a) && Aligned(p.dst, p.row_bytes, a); };
  if (ok(16)) {
    GatherRowsKernel<uint4><<<grid, threads, 0, stream>>>(p);
  } else if (ok(4)) {
    GatherRowsKernel<uint32_t><<<grid, threads, 0, stream>>>(p);
  } else if (ok(2)) {
    GatherRowsKernel<uint16_t><<<grid, threads, 0, stream>>>(p);
  } else {
    GatherRowsKernel<uint8_t><<<grid, threads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace moeserve::kernels
