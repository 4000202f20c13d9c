#ifndef MOESERVE_SERVER_BACKEND_REGISTRY_H_
#define MOESERVE_SERVER_BACKEND_REGISTRY_H_

// Creates a Backend by device name. This is the one place that knows which backends were built;
// the rest of the server holds a `std::unique_ptr<Backend>`.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/backend/backend.h"

namespace moeserve {

struct BackendOptions {
  std::string device = "cpu";  // "cpu", "cuda", "auto" (cuda when built in and a GPU is present)
  int num_threads = 0;         // CPU worker threads; <= 0 uses every hardware thread
  int device_index = 0;        // which GPU (a tensor-parallel rank's local rank)
  // CPU: fp32 activations in every product (CpuBackendOptions::exact_gemm), for parity tests.
  bool exact_cpu_gemm = false;
};

// InvalidArgument for an unknown device; Unavailable when the device's backend was not built.
absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(const BackendOptions& options);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_BACKEND_REGISTRY_H_
