#include "server/backend/registry.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/backend/cpu/cpu_backend.h"

// ---- CUDA backend hook ---------------------------------------------------------------------------
// The only #ifdef for CUDA in the server. server/backend/CMakeLists.txt defines
// MOESERVE_HAS_CUDA_BACKEND and links moeserve_backend_cuda when that target exists; the adapter
// must then provide this factory (declared here so that no CUDA header is needed).
#ifdef MOESERVE_HAS_CUDA_BACKEND
namespace moeserve {
absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(const BackendOptions& options);
}  // namespace moeserve
#endif

namespace moeserve {
namespace {

CpuBackendOptions CpuOptions(const BackendOptions& options) {
  return {.num_threads = options.num_threads, .exact_gemm = options.exact_cpu_gemm};
}

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(const BackendOptions& options) {
  if (options.device == "auto") {
#ifdef MOESERVE_HAS_CUDA_BACKEND
    // CUDA when a device is present at run time; a machine without one runs on the CPU.
    auto cuda = CreateCudaBackend(options);
    if (cuda.ok() || !absl::IsUnavailable(cuda.status())) return cuda;
#endif
    return std::unique_ptr<Backend>(std::make_unique<CpuBackend>(CpuOptions(options)));
  }
  if (options.device == "cpu") {
    return std::unique_ptr<Backend>(std::make_unique<CpuBackend>(CpuOptions(options)));
  }
  if (options.device == "cuda") {
#ifdef MOESERVE_HAS_CUDA_BACKEND
    return CreateCudaBackend(options);
#else
    return absl::UnavailableError("moeserve was built without the CUDA backend");
#endif
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown device \"", options.device, "\" (expected cpu, cuda or auto)"));
}

}  // namespace moeserve
