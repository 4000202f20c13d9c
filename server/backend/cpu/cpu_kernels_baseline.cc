// The CPU kernels built for the baseline level (compile flags: server/backend/CMakeLists.txt).

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "server/backend/cpu/cpu_kernels.h"

namespace moeserve::cpu {
namespace kernels_baseline {

#define MS_KERNEL_WIDTH 8
#define MS_KERNEL_NAME "baseline"
#include "server/backend/cpu/cpu_kernels_impl.h"

}  // namespace kernels_baseline

const CpuKernels& KernelsBaseline() { return kernels_baseline::Table(); }

}  // namespace moeserve::cpu
