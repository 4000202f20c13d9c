// The CPU kernels built for the avx512 level (compile flags: server/backend/CMakeLists.txt).

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "server/backend/cpu/cpu_kernels.h"

namespace moeserve::cpu {
namespace kernels_avx512 {

#define MS_KERNEL_WIDTH 16
#define MS_KERNEL_NAME "avx512"
#include "server/backend/cpu/cpu_kernels_impl.h"

}  // namespace kernels_avx512

const CpuKernels& KernelsAvx512() { return kernels_avx512::Table(); }

}  // namespace moeserve::cpu
