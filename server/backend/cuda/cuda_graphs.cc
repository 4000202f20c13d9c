#include "server/backend/cuda/cuda_graphs.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/backend/cuda/cuda_status.h"
#include "server/common/status_macros.h"

namespace moeserve {
namespace {

constexpr size_t kStagingAlign = 256;

}  // namespace

CudaGraphs::CudaGraphs(cudaStream_t stream, std::shared_ptr<CachingAllocator> allocator)
    : stream_(stream), allocator_(std::move(allocator)), pool_(allocator_->CreatePool()) {}

CudaGraphs::~CudaGraphs() {
  cudaStreamSynchronize(stream_);
  for (cudaGraphExec_t e : execs_) cudaGraphExecDestroy(e);
  if (staged_ != nullptr) cudaEventDestroy(staged_);
  if (staging_ != nullptr) cudaFreeHost(staging_);
  allocator_->ReleasePool(pool_);
}

absl::Status CudaGraphs::BeginCapture() {
  if (capturing_) return absl::FailedPreconditionError("BeginCapture: already recording");
  allocator_->BeginPool(pool_);
  const cudaError_t e = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal);
  if (e != cudaSuccess) {
    allocator_->EndPool();
    (void)cudaGetLastError();
    return cuda_status::FromCuda(e, "cudaStreamBeginCapture");
  }
  capturing_ = true;
  return absl::OkStatus();
}

absl::StatusOr<int> CudaGraphs::EndCapture() {
  if (!capturing_) return absl::FailedPreconditionError("EndCapture: not recording");
  cudaGraph_t graph = nullptr;
  const cudaError_t e = cudaStreamEndCapture(stream_, &graph);
  allocator_->EndPool();
  capturing_ = false;
  if (e != cudaSuccess || graph == nullptr) {
    if (graph != nullptr) cudaGraphDestroy(graph);
    (void)cudaGetLastError();  // an op's capture error invalidated the recording
    return cuda_status::FromCuda(e == cudaSuccess ? cudaErrorStreamCaptureInvalidated : e, "cudaStreamEndCapture");
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t ie = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (ie != cudaSuccess) {
    (void)cudaGetLastError();
    return cuda_status::FromCuda(ie, "cudaGraphInstantiate");
  }
  // Uploads the graph's work descriptors now rather than on the first replay.
  CUDA_RETURN_IF_ERROR(cudaGraphUpload(exec, stream_), "cudaGraphUpload");
  execs_.push_back(exec);
  return static_cast<int>(execs_.size()) - 1;
}

absl::Status CudaGraphs::Replay(int id) {
  if (id < 0 || id >= static_cast<int>(execs_.size())) {
    return absl::InvalidArgumentError(absl::StrCat("Replay: no graph ", id));
  }
  CUDA_RETURN_IF_ERROR(cudaGraphLaunch(execs_[id], stream_), "cudaGraphLaunch");
  return absl::OkStatus();
}

void CudaGraphs::BeginPoolAllocations() { allocator_->BeginPool(pool_); }
void CudaGraphs::EndPoolAllocations() { allocator_->EndPool(); }

absl::Status CudaGraphs::UploadAsync(absl::Span<const HostUpload> copies) {
  if (capturing_) return absl::FailedPreconditionError("UploadAsync: recording");
  size_t total = 0;
  for (const HostUpload& c : copies) {
    if (!c.dst.defined() || c.bytes.size() != static_cast<size_t>(c.dst.bytes())) {
      return absl::InvalidArgumentError(
          absl::StrCat("UploadAsync: ", c.bytes.size(), " bytes for ", c.dst.DebugString()));
    }
    total += (c.bytes.size() + kStagingAlign - 1) / kStagingAlign * kStagingAlign;
  }
  if (staged_ == nullptr) {
    CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&staged_, cudaEventDisableTiming), "UploadAsync: event");
  } else {
    // The previous upload's copies must have read the staging buffer before it is overwritten
    // (normally long done: the step that used them has synchronised).
    CUDA_RETURN_IF_ERROR(cudaEventSynchronize(staged_), "UploadAsync: wait for staging");
  }
  if (total > staging_bytes_) {
    if (staging_ != nullptr) CUDA_RETURN_IF_ERROR(cudaFreeHost(staging_), "UploadAsync: free staging");
    staging_ = nullptr;
    staging_bytes_ = 0;
    const size_t want = total * 2;  // headroom for wider block tables later
    CUDA_RETURN_IF_ERROR(cudaMallocHost(&staging_, want), "UploadAsync: pinned staging");
    staging_bytes_ = want;
  }
  size_t offset = 0;
  for (const HostUpload& c : copies) {
    if (c.bytes.empty()) continue;
    uint8_t* src = static_cast<uint8_t*>(staging_) + offset;
    std::memcpy(src, c.bytes.data(), c.bytes.size());
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(c.dst.data(), src, c.bytes.size(), cudaMemcpyHostToDevice, stream_),
                         "UploadAsync: copy");
    offset += (c.bytes.size() + kStagingAlign - 1) / kStagingAlign * kStagingAlign;
  }
  CUDA_RETURN_IF_ERROR(cudaEventRecord(staged_, stream_), "UploadAsync: record");
  return absl::OkStatus();
}

int64_t CudaGraphs::pool_bytes() const { return static_cast<int64_t>(allocator_->pool_bytes(pool_)); }

}  // namespace moeserve
