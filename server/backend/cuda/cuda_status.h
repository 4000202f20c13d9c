#ifndef MOESERVE_SERVER_BACKEND_CUDA_CUDA_STATUS_H_
#define MOESERVE_SERVER_BACKEND_CUDA_CUDA_STATUS_H_

// CUDA runtime and cuBLAS results as absl::Status. Out-of-memory becomes ResourceExhausted; a
// launcher's cudaErrorInvalidValue (an unsupported shape) InvalidArgument; anything else Internal.

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace moeserve::cuda_status {

inline absl::Status FromCuda(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return absl::OkStatus();
  const std::string msg =
      absl::StrCat(what, ": ", std::string(cudaGetErrorName(e)), ": ", std::string(cudaGetErrorString(e)));
  if (e == cudaErrorMemoryAllocation) return absl::ResourceExhaustedError(msg);
  if (e == cudaErrorInvalidValue) return absl::InvalidArgumentError(msg);
  return absl::InternalError(msg);
}

inline absl::Status FromCublas(cublasStatus_t s, const std::string& what) {
  if (s == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  const std::string msg = absl::StrCat(what, ": ", std::string(cublasGetStatusString(s)));
  if (s == CUBLAS_STATUS_ALLOC_FAILED) return absl::ResourceExhaustedError(msg);
  if (s == CUBLAS_STATUS_NOT_SUPPORTED || s == CUBLAS_STATUS_INVALID_VALUE) {
    return absl::InvalidArgumentError(msg);
  }
  return absl::InternalError(msg);
}

}  // namespace moeserve::cuda_status

#define CUDA_RETURN_IF_ERROR(expr, what) RETURN_IF_ERROR(::moeserve::cuda_status::FromCuda((expr), (what)))
#define CUBLAS_RETURN_IF_ERROR(expr, what) RETURN_IF_ERROR(::moeserve::cuda_status::FromCublas((expr), (what)))

#endif  // MOESERVE_SERVER_BACKEND_CUDA_CUDA_STATUS_H_
