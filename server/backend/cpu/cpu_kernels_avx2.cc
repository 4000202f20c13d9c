// The CPU kernels built for the avx2 level (compile flags: server/backend/CMakeLists.txt).

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "server/backend/cpu/cpu_kernels.h"

namespace moeserve::cpu {
namespace kernels_avx2 {

#define MS_KERNEL_WIDTH 8
#define MS_KERNEL_NAME "avx2"
#include "server/backend/cpu/cpu_kernels_impl.h"

}  // namespace kernels_avx2

const CpuKernels& KernelsAvx2() { return kernels_avx2::Table(); }

}  // namespace moeserve::cpu
