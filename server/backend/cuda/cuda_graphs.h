#ifndef MOESERVE_SERVER_BACKEND_CUDA_CUDA_GRAPHS_H_
#define MOESERVE_SERVER_BACKEND_CUDA_CUDA_GRAPHS_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>
#include <vector>

#include "server/backend/backend.h"
#include "server/backend/cuda/caching_allocator.h"

namespace moeserve {

// The CUDA backend's GraphCapture: stream capture (thread-local mode, so a synchronising call on
// the capturing thread fails the recording instead of running outside it) into cudaGraphExec_t,
// one private pool of the backend's caching allocator for every graph, and a pinned staging buffer
// for uploads (grown on demand; an event guards its reuse until the previous copies have read it).
//
// Requires external synchronization (the backend's thread).
class CudaGraphs : public GraphCapture {
 public:
  CudaGraphs(cudaStream_t stream, std::shared_ptr<CachingAllocator> allocator);
  // Synchronises the stream; the pool's free blocks go back to the device.
  ~CudaGraphs() override;
  CudaGraphs(const CudaGraphs&) = delete;
  CudaGraphs& operator=(const CudaGraphs&) = delete;

  absl::Status BeginCapture() override;
  absl::StatusOr<int> EndCapture() override;
  absl::Status Replay(int id) override;
  void BeginPoolAllocations() override;
  void EndPoolAllocations() override;
  absl::Status UploadAsync(absl::Span<const HostUpload> copies) override;
  int64_t pool_bytes() const override;

 private:
  cudaStream_t stream_;
  std::shared_ptr<CachingAllocator> allocator_;
  int pool_;
  bool capturing_ = false;
  std::vector<cudaGraphExec_t> execs_;
  void* staging_ = nullptr;  // pinned
  size_t staging_bytes_ = 0;
  cudaEvent_t staged_ = nullptr;  // recorded after the last copies out of staging_
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_BACKEND_CUDA_CUDA_GRAPHS_H_
