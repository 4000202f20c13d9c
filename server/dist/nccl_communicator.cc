#include "server/dist/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdlib>
#include <deque>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/backend/cuda/cuda_backend.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"

namespace moeserve {
namespace {

constexpr int kAbortCode = 3;

absl::Status NcclError(ncclResult_t r, absl::string_view what) {
  const char* last = ncclGetLastError(nullptr);
  return absl::InternalError(absl::StrCat(what, ": NCCL error ", static_cast<int>(r), " (", ncclGetErrorString(r), ")",
                                          last != nullptr && *last != '\0' ? absl::StrCat(": ", last) : ""));
}

absl::Status CudaError(cudaError_t e, absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": CUDA error ", cudaGetErrorName(e), ": ", cudaGetErrorString(e)));
}

#define NCCL_RETURN_IF_ERROR(call, what)                         \
  do {                                                           \
    const ncclResult_t _nccl_r = (call);                         \
    if (_nccl_r != ncclSuccess) return NcclError(_nccl_r, what); \
  } while (0)
#define CUDA_RETURN_IF_ERROR(call, what)                         \
  do {                                                           \
    const cudaError_t _cuda_e = (call);                          \
    if (_cuda_e != cudaSuccess) return CudaError(_cuda_e, what); \
  } while (0)

bool NcclType(DType dtype, ncclDataType_t* type) {
  switch (dtype) {
    case DType::kF32: *type = ncclFloat32; return true;
    case DType::kBF16: *type = ncclBfloat16; return true;
    case DType::kF16: *type = ncclFloat16; return true;
    case DType::kI32: *type = ncclInt32; return true;
    case DType::kI64: *type = ncclInt64; return true;
    case DType::kF8E4M3:
    case DType::kU8: *type = ncclUint8; return true;
  }
  return false;
}

bool Reducible(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kBF16 || dtype == DType::kF16 || dtype == DType::kI32 ||
         dtype == DType::kI64;
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(CudaBackend* backend, Communicator* host, absl::Duration timeout)
      : backend_(backend), host_(host), timeout_(timeout) {}

  ~NcclCommunicator() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    if (watchdog_.joinable()) watchdog_.join();
    for (Watched& w : watched_) cudaEventDestroy(w.event);
    if (comm_ != nullptr) ncclCommDestroy(comm_);
  }

  absl::Status Init() {
    CUDA_RETURN_IF_ERROR(cudaSetDevice(backend_->device()), "cudaSetDevice");
    ncclUniqueId id{};
    if (host_->rank() == 0) NCCL_RETURN_IF_ERROR(ncclGetUniqueId(&id), "ncclGetUniqueId");
    RETURN_IF_ERROR(host_->BroadcastHost(absl::MakeSpan(reinterpret_cast<uint8_t*>(&id), sizeof(id)), 0));
    NCCL_RETURN_IF_ERROR(ncclCommInitRank(&comm_, host_->world_size(), id, host_->rank()), "ncclCommInitRank");
    watchdog_ = std::thread([this] { WatchdogLoop(); });
    return absl::OkStatus();
  }

  int rank() const override { return host_->rank(); }
  int world_size() const override { return host_->world_size(); }
  std::string_view name() const override { return "nccl"; }

  absl::Status AllReduce(const Tensor& x) override {
    const std::string what = dist_checks::Describe("all_reduce", ++sequence_, x);
    ncclDataType_t type;
    if (!x.defined() || !NcclType(x.dtype(), &type) || !Reducible(x.dtype())) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": NCCL cannot sum this dtype"));
    }
    NCCL_RETURN_IF_ERROR(ncclAllReduce(x.data(), x.data(), x.numel(), type, ncclSum, comm_, backend_->stream()), what);
    return Watch(what);
  }

  absl::Status AllGather(const Tensor& in, const Tensor& out) override {
    const std::string what = dist_checks::Describe("all_gather", ++sequence_, in);
    RETURN_IF_ERROR(dist_checks::AllGatherShapes(in, out, world_size()));
    ncclDataType_t type;
    NcclType(in.dtype(), &type);
    NCCL_RETURN_IF_ERROR(ncclAllGather(in.data(), out.data(), in.numel(), type, comm_, backend_->stream()), what);
    return Watch(what);
  }

  absl::Status ReduceScatter(const Tensor& in, const Tensor& out) override {
    const std::string what = dist_checks::Describe("reduce_scatter", ++sequence_, in);
    RETURN_IF_ERROR(dist_checks::ReduceScatterShapes(in, out, world_size()));
    ncclDataType_t type;
    if (!NcclType(in.dtype(), &type) || !Reducible(in.dtype())) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": NCCL cannot sum this dtype"));
    }
    NCCL_RETURN_IF_ERROR(
        ncclReduceScatter(in.data(), out.data(), out.numel(), type, ncclSum, comm_, backend_->stream()), what);
    return Watch(what);
  }

  absl::Status AllToAll(const Tensor& in, absl::Span<const int64_t> send_rows, const Tensor& out,
                        absl::Span<const int64_t> recv_rows) override {
    const std::string what = dist_checks::Describe("all_to_all", ++sequence_, in);
    RETURN_IF_ERROR(dist_checks::AllToAllShapes(in, send_rows, out, recv_rows, world_size()));
    ncclDataType_t type;
    NcclType(in.dtype(), &type);
    const int64_t row = in.rank() > 1 ? in.numel() / std::max<int64_t>(in.dim(0), 1) : 1;
    const int64_t row_out = out.rank() > 1 ? out.numel() / std::max<int64_t>(out.dim(0), 1) : 1;
    const size_t elem = DTypeSize(in.dtype());
    const auto* src = static_cast<const uint8_t*>(in.data());
    auto* dst = static_cast<uint8_t*>(out.data());
    int64_t so = 0, ro = 0;
    NCCL_RETURN_IF_ERROR(ncclGroupStart(), what);
    for (int p = 0; p < world_size(); ++p) {
      if (send_rows[p] > 0) {
        NCCL_RETURN_IF_ERROR(ncclSend(src + so * row * elem, send_rows[p] * row, type, p, comm_, backend_->stream()),
                             what);
      }
      if (recv_rows[p] > 0) {
        NCCL_RETURN_IF_ERROR(
            ncclRecv(dst + ro * row_out * elem, recv_rows[p] * row_out, type, p, comm_, backend_->stream()), what);
      }
      so += send_rows[p];
      ro += recv_rows[p];
    }
    NCCL_RETURN_IF_ERROR(ncclGroupEnd(), what);
    return Watch(what);
  }

  absl::Status Broadcast(const Tensor& x, int root) override {
    const std::string what = dist_checks::Describe("broadcast", ++sequence_, x);
    RETURN_IF_ERROR(dist_checks::Root("broadcast", root, world_size()));
    ncclDataType_t type;
    NcclType(x.dtype(), &type);
    NCCL_RETURN_IF_ERROR(ncclBroadcast(x.data(), x.data(), x.numel(), type, root, comm_, backend_->stream()), what);
    return Watch(what);
  }

  absl::Status BroadcastHost(absl::Span<uint8_t> bytes, int root) override { return host_->BroadcastHost(bytes, root); }
  absl::Status AllGatherHost(absl::Span<const uint8_t> in, absl::Span<uint8_t> out) override {
    return host_->AllGatherHost(in, out);
  }
  absl::Status Barrier() override { return host_->Barrier(); }

  void Abort(const absl::Status& why) override {
    if (comm_ != nullptr) ncclCommAbort(comm_);
    comm_ = nullptr;
    host_->Abort(why);
  }

 private:
  struct Watched {
    cudaEvent_t event;
    absl::Time queued;
    std::string what;
  };

  // An event after the collective for the watchdog; nothing while the stream records a graph.
  absl::Status Watch(const std::string& what) {
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    CUDA_RETURN_IF_ERROR(cudaStreamIsCapturing(backend_->stream(), &capture), what);
    if (capture != cudaStreamCaptureStatusNone) return absl::OkStatus();
    cudaEvent_t event;
    CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), what);
    if (cudaError_t e = cudaEventRecord(event, backend_->stream()); e != cudaSuccess) {
      cudaEventDestroy(event);
      return CudaError(e, what);
    }
    absl::MutexLock lock(&mu_);
    watched_.push_back({event, absl::Now(), what});
    return absl::OkStatus();
  }

  void WatchdogLoop() {
    cudaSetDevice(backend_->device());
    for (;;) {
      std::string expired;
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        while (!watched_.empty()) {
          Watched& w = watched_.front();
          const cudaError_t e = cudaEventQuery(w.event);
          if (e == cudaErrorNotReady) {
            if (absl::Now() - w.queued > timeout_) expired = w.what;
            break;
          }
          cudaEventDestroy(w.event);
          watched_.pop_front();
        }
      }
      ncclResult_t async = ncclSuccess;
      if (comm_ != nullptr && ncclCommGetAsyncError(comm_, &async) == ncclSuccess && async != ncclSuccess) {
        Fail(NcclError(async, "asynchronous NCCL error"));
      }
      if (!expired.empty()) {
        Fail(absl::DeadlineExceededError(absl::StrCat(expired, " did not complete within ",
                                                      absl::FormatDuration(timeout_), " (a peer rank hung or died)")));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  // From the watchdog thread: the host communicator belongs to the engine thread, so this ends
  // only this process; the launcher then ends the others.
  [[noreturn]] void Fail(const absl::Status& why) {
    if (comm_ == nullptr) std::_Exit(kAbortCode);
    MS_LOG(ERROR) << "rank " << rank() << " of " << world_size()
                  << ": NCCL watchdog ending the group: " << why.message();
    ncclCommAbort(comm_);
    std::_Exit(kAbortCode);
  }

  CudaBackend* const backend_;
  Communicator* const host_;
  const absl::Duration timeout_;
  ncclComm_t comm_ = nullptr;
  uint64_t sequence_ = 0;
  absl::Mutex mu_;
  std::deque<Watched> watched_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread watchdog_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(const NcclCommunicatorOptions& options) {
  auto* cuda = dynamic_cast<CudaBackend*>(options.backend);
  if (cuda == nullptr || options.host == nullptr) {
    return absl::InvalidArgumentError("NCCL communicator: needs a CUDA backend and a host communicator");
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("NCCL communicator: the timeout must be positive");
  }
  auto comm = std::make_unique<NcclCommunicator>(cuda, options.host, options.timeout);
  RETURN_IF_ERROR(comm->Init());
  return std::unique_ptr<Communicator>(std::move(comm));
}

}  // namespace moeserve
