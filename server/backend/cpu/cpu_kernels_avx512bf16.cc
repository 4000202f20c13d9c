// The CPU kernels built for the avx512_bf16 level: the avx512 level's kernels plus the bf16
// dot-product GEMM (compile flags: server/backend/CMakeLists.txt).

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "server/backend/cpu/cpu_kernels.h"

namespace moeserve::cpu {
namespace kernels_avx512bf16 {

#define MS_KERNEL_WIDTH 16
#define MS_KERNEL_NAME "avx512_bf16"
#define MS_KERNEL_BF16_DOT 1
#include "server/backend/cpu/cpu_kernels_impl.h"

}  // namespace kernels_avx512bf16

const CpuKernels& KernelsAvx512Bf16() { return kernels_avx512bf16::Table(); }

}  // namespace moeserve::cpu
