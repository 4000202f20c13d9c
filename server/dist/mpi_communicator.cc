#include "server/dist/mpi_communicator.h"

#include <mpi.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"

namespace moeserve {
namespace {

std::atomic<bool> g_initialized{false};  // MPI allows one Init per process

constexpr int kTagPing = 1;
constexpr int kTagPong = 2;
constexpr int kAbortCode = 3;

absl::Status MpiError(int code, absl::string_view what) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) len = 0;
  return absl::InternalError(
      absl::StrCat(what, ": MPI error ", code, len > 0 ? ": " : "", absl::string_view(text, static_cast<size_t>(len))));
}

#define MPI_RETURN_IF_ERROR(call, what)                             \
  do {                                                              \
    const int _mpi_code = (call);                                   \
    if (_mpi_code != MPI_SUCCESS) return MpiError(_mpi_code, what); \
  } while (0)

// The MPI type of a dtype's elements for collectives that move them; reductions need a type MPI
// can add (f32, i32, i64).
bool MoveType(DType dtype, MPI_Datatype* type) {
  switch (dtype) {
    case DType::kF32: *type = MPI_FLOAT; return true;
    case DType::kI32: *type = MPI_INT32_T; return true;
    case DType::kI64: *type = MPI_INT64_T; return true;
    case DType::kBF16:
    case DType::kF16: *type = MPI_UINT16_T; return true;
    case DType::kF8E4M3:
    case DType::kU8: *type = MPI_UINT8_T; return true;
  }
  return false;
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(const MpiRuntime& runtime, const MpiCommunicatorOptions& options, MPI_Comm comm, MPI_Comm live)
      : rank_(runtime.rank()),
        world_size_(runtime.world_size()),
        options_(options),
        lifelines_(runtime.lifelines()),
        comm_(comm),
        live_(live) {}

  ~MpiCommunicator() override {
    for (Pending& p : pending_sends_) MPI_Request_free(&p.request);
    MPI_Comm_free(&live_);
    MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  std::string_view name() const override { return "mpi"; }

  absl::Status AllReduce(const Tensor& x) override {
    const std::string what = dist_checks::Describe("all_reduce", ++sequence_, x);
    RETURN_IF_ERROR(CheckHostTensor(x, what));
    MPI_Datatype type;
    if (x.dtype() != DType::kF32 && x.dtype() != DType::kI32 && x.dtype() != DType::kI64) {
      return absl::UnimplementedError(absl::StrCat(what, ": MPI reduces f32, i32 and i64 only"));
    }
    MoveType(x.dtype(), &type);
    ASSIGN_OR_RETURN(const int count, Count(x.numel(), what));
    MPI_Request request;
    MPI_RETURN_IF_ERROR(MPI_Iallreduce(MPI_IN_PLACE, x.data(), count, type, MPI_SUM, comm_, &request), what);
    return Wait(&request, what);
  }

  absl::Status AllGather(const Tensor& in, const Tensor& out) override {
    const std::string what = dist_checks::Describe("all_gather", ++sequence_, in);
    RETURN_IF_ERROR(dist_checks::AllGatherShapes(in, out, world_size_));
    RETURN_IF_ERROR(CheckHostTensor(in, what));
    MPI_Datatype type;
    MoveType(in.dtype(), &type);
    ASSIGN_OR_RETURN(const int count, Count(in.numel(), what));
    MPI_Request request;
    MPI_RETURN_IF_ERROR(MPI_Iallgather(in.data(), count, type, out.data(), count, type, comm_, &request), what);
    return Wait(&request, what);
  }

  absl::Status ReduceScatter(const Tensor& in, const Tensor& out) override {
    const std::string what = dist_checks::Describe("reduce_scatter", ++sequence_, in);
    RETURN_IF_ERROR(dist_checks::ReduceScatterShapes(in, out, world_size_));
    RETURN_IF_ERROR(CheckHostTensor(in, what));
    if (in.dtype() != DType::kF32) {
      return absl::UnimplementedError(absl::StrCat(what, ": MPI reduce-scatters f32 only"));
    }
    ASSIGN_OR_RETURN(const int count, Count(out.numel(), what));
    MPI_Request request;
    MPI_RETURN_IF_ERROR(MPI_Ireduce_scatter_block(in.data(), out.data(), count, MPI_FLOAT, MPI_SUM, comm_, &request),
                        what);
    return Wait(&request, what);
  }

  absl::Status AllToAll(const Tensor& in, absl::Span<const int64_t> send_rows, const Tensor& out,
                        absl::Span<const int64_t> recv_rows) override {
    const std::string what = dist_checks::Describe("all_to_all", ++sequence_, in);
    RETURN_IF_ERROR(dist_checks::AllToAllShapes(in, send_rows, out, recv_rows, world_size_));
    RETURN_IF_ERROR(CheckHostTensor(in, what));
    MPI_Datatype type;
    MoveType(in.dtype(), &type);
    const int64_t row = in.dim(0) > 0 ? in.numel() / in.dim(0) : out.numel() / std::max<int64_t>(out.dim(0), 1);
    ASSIGN_OR_RETURN(const int total_in, Count(in.numel(), what));
    ASSIGN_OR_RETURN(const int total_out, Count(out.numel(), what));
    (void)total_in, (void)total_out;  // every count and displacement below fits an int too
    std::vector<int> sc(world_size_), sd(world_size_), rc(world_size_), rd(world_size_);
    int64_t so = 0, ro = 0;
    for (int p = 0; p < world_size_; ++p) {
      sc[p] = static_cast<int>(send_rows[p] * row);
      sd[p] = static_cast<int>(so);
      rc[p] = static_cast<int>(recv_rows[p] * row);
      rd[p] = static_cast<int>(ro);
      so += send_rows[p] * row;
      ro += recv_rows[p] * row;
    }
    MPI_Request request;
    MPI_RETURN_IF_ERROR(
        MPI_Ialltoallv(in.data(), sc.data(), sd.data(), type, out.data(), rc.data(), rd.data(), type, comm_, &request),
        what);
    return Wait(&request, what);
  }

  absl::Status Broadcast(const Tensor& x, int root) override {
    const std::string what = dist_checks::Describe("broadcast", ++sequence_, x);
    RETURN_IF_ERROR(dist_checks::Root("broadcast", root, world_size_));
    RETURN_IF_ERROR(CheckHostTensor(x, what));
    MPI_Datatype type;
    MoveType(x.dtype(), &type);
    ASSIGN_OR_RETURN(const int count, Count(x.numel(), what));
    MPI_Request request;
    MPI_RETURN_IF_ERROR(MPI_Ibcast(x.data(), count, type, root, comm_, &request), what);
    return Wait(&request, what);
  }

  absl::Status BroadcastHost(absl::Span<uint8_t> bytes, int root) override {
    const std::string what = absl::StrCat("broadcast #", ++sequence_, " of ", bytes.size(), " host bytes");
    RETURN_IF_ERROR(dist_checks::Root("broadcast", root, world_size_));
    ASSIGN_OR_RETURN(const int count, Count(static_cast<int64_t>(bytes.size()), what));
    MPI_Request request;
    MPI_RETURN_IF_ERROR(MPI_Ibcast(bytes.data(), count, MPI_BYTE, root, comm_, &request), what);
    return Wait(&request, what);
  }

  absl::Status AllGatherHost(absl::Span<const uint8_t> in, absl::Span<uint8_t> out) override {
    const std::string what = absl::StrCat("all_gather #", ++sequence_, " of ", in.size(), " host bytes");
    if (out.size() != in.size() * world_size_) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": out has ", out.size(), " bytes, want ", in.size() * world_size_));
    }
    ASSIGN_OR_RETURN(const int count, Count(static_cast<int64_t>(in.size()), what));
    MPI_Request request;
    MPI_RETURN_IF_ERROR(MPI_Iallgather(in.data(), count, MPI_BYTE, out.data(), count, MPI_BYTE, comm_, &request), what);
    return Wait(&request, what);
  }

  absl::Status Barrier() override {
    const std::string what = absl::StrCat("barrier #", ++sequence_);
    MPI_Request request;
    MPI_RETURN_IF_ERROR(MPI_Ibarrier(comm_, &request), what);
    return Wait(&request, what);
  }

  void Abort(const absl::Status& why) override {
    if (lifelines_ != nullptr) lifelines_->Quiet();  // the ranks this kills are not news
    MS_LOG(ERROR) << "rank " << rank_ << " of " << world_size_ << ": ending the group: " << why.message();
    MPI_Abort(MPI_COMM_WORLD, kAbortCode);
    std::_Exit(kAbortCode);  // MPI_Abort does not return; this is for a broken MPI
  }

 private:
  struct Pending {
    MPI_Request request;
    std::unique_ptr<uint64_t> payload;  // must outlive the send
  };

  absl::Status CheckHostTensor(const Tensor& x, absl::string_view what) const {
    if (options_.backend == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(what, ": this MPI communicator is host-only"));
    }
    if (!x.defined()) return absl::InvalidArgumentError(absl::StrCat(what, ": undefined tensor"));
    return absl::OkStatus();
  }

  static absl::StatusOr<int> Count(int64_t n, absl::string_view what) {
    if (n < 0 || n > std::numeric_limits<int>::max()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": ", n, " elements exceed MPI's int counts"));
    }
    return static_cast<int>(n);
  }

  void Send(int peer, int tag, uint64_t value) {
    Pending p{MPI_REQUEST_NULL, std::make_unique<uint64_t>(value)};
    if (MPI_Isend(p.payload.get(), 1, MPI_UINT64_T, peer, tag, live_, &p.request) == MPI_SUCCESS) {
      pending_sends_.push_back(std::move(p));
    }
  }

  // Answers pings (with the collective this rank waits in), notes pongs, reaps finished sends.
  void ServiceLiveness(std::vector<int64_t>* pongs) {
    for (;;) {
      int flag = 0;
      MPI_Status status;
      if (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, live_, &flag, &status) != MPI_SUCCESS || !flag) break;
      uint64_t value = 0;
      if (MPI_Recv(&value, 1, MPI_UINT64_T, status.MPI_SOURCE, status.MPI_TAG, live_, MPI_STATUS_IGNORE) !=
          MPI_SUCCESS) {
        break;
      }
      if (status.MPI_TAG == kTagPing) {
        Send(status.MPI_SOURCE, kTagPong, sequence_);
      } else if (status.MPI_TAG == kTagPong && pongs != nullptr) {
        (*pongs)[status.MPI_SOURCE] = static_cast<int64_t>(value);
      }
    }
    while (!pending_sends_.empty()) {
      int done = 0;
      if (MPI_Test(&pending_sends_.front().request, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || !done) break;
      pending_sends_.pop_front();
    }
  }

  // Polls `request` to completion; past the timeout, asks every peer whether it is alive.
  absl::Status Wait(MPI_Request* request, const std::string& what) {
    const absl::Time start = absl::Now();
    const absl::Time deadline = start + options_.timeout;
    for (int64_t polls = 0;; ++polls) {
      int done = 0;
      MPI_RETURN_IF_ERROR(MPI_Test(request, &done, MPI_STATUS_IGNORE), what);
      if (done) return absl::OkStatus();
      if (polls % 64 == 0) {
        ServiceLiveness(nullptr);
        if (lifelines_ != nullptr) {
          if (std::optional<std::string> lost = lifelines_->lost()) {
            return absl::UnavailableError(absl::StrCat(what, " cannot complete: ", *lost));
          }
        }
        if (absl::Now() > deadline) break;
      }
      Backoff(polls);
    }
    // Timed out: which peers still answer?
    std::vector<int64_t> pongs(world_size_, -1);
    pongs[rank_] = static_cast<int64_t>(sequence_);
    for (int p = 0; p < world_size_; ++p) {
      if (p != rank_) Send(p, kTagPing, sequence_);
    }
    const absl::Time grace_end = absl::Now() + options_.liveness_grace;
    for (int64_t polls = 0; absl::Now() < grace_end; ++polls) {
      int done = 0;
      MPI_RETURN_IF_ERROR(MPI_Test(request, &done, MPI_STATUS_IGNORE), what);
      if (done) {
        MS_LOG(WARNING) << "rank " << rank_ << ": " << what << " took " << absl::Now() - start << " (timeout "
                        << options_.timeout << ")";
        return absl::OkStatus();
      }
      ServiceLiveness(&pongs);
      if (std::none_of(pongs.begin(), pongs.end(), [](int64_t s) { return s < 0; })) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::vector<int> silent;
    std::vector<std::string> elsewhere;
    for (int p = 0; p < world_size_; ++p) {
      if (pongs[p] < 0)
        silent.push_back(p);
      else if (p != rank_ && static_cast<uint64_t>(pongs[p]) != sequence_) {
        elsewhere.push_back(absl::StrCat("rank ", p, " at collective #", pongs[p]));
      }
    }
    std::string detail;
    if (!silent.empty()) {
      detail = absl::StrCat("no answer from rank", silent.size() > 1 ? "s " : " ", absl::StrJoin(silent, ", "),
                            " within ", absl::FormatDuration(options_.liveness_grace), " (hung or dead)");
    } else if (!elsewhere.empty()) {
      detail = absl::StrCat("every rank answered, but not from the same collective: ", absl::StrJoin(elsewhere, "; "));
    } else {
      detail = "every rank answered from the same collective (a slow rank or transport)";
    }
    return absl::DeadlineExceededError(
        absl::StrCat(what, " did not complete within ", absl::FormatDuration(options_.timeout), "; ", detail));
  }

  // Spin first (a peer a few microseconds behind), then yield, then sleep: a rank waiting long
  // for its peers (an idle server, an oversubscribed node) leaves the core to them.
  static void Backoff(int64_t polls) {
    if (polls < 2000) return;
    if (polls < 20000) {
      sched_yield();
      return;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(polls < 40000 ? 20 : 200));
  }

  const int rank_;
  const int world_size_;
  const MpiCommunicatorOptions options_;
  Lifelines* const lifelines_;  // the runtime's; null for a group of one
  MPI_Comm comm_;          // collectives
  MPI_Comm live_;          // liveness pings and pongs
  uint64_t sequence_ = 0;  // collectives started by this rank
  std::deque<Pending> pending_sends_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MpiRuntime>> MpiRuntime::Init() {
  if (g_initialized.exchange(true)) {
    return absl::FailedPreconditionError("MPI is already initialised in this process");
  }
  int provided = 0;
  MPI_RETURN_IF_ERROR(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
  std::unique_ptr<MpiRuntime> runtime(new MpiRuntime());
  MPI_RETURN_IF_ERROR(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  if (provided < MPI_THREAD_SERIALIZED) {
    return absl::InternalError(
        absl::StrCat("MPI provides thread level ", provided, "; moeserve needs MPI_THREAD_SERIALIZED"));
  }
  MPI_RETURN_IF_ERROR(MPI_Comm_rank(MPI_COMM_WORLD, &runtime->rank_), "MPI_Comm_rank");
  MPI_RETURN_IF_ERROR(MPI_Comm_size(MPI_COMM_WORLD, &runtime->world_size_), "MPI_Comm_size");
  MPI_Comm node;
  MPI_RETURN_IF_ERROR(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, runtime->rank_, MPI_INFO_NULL, &node),
                      "MPI_Comm_split_type");
  MPI_Comm_rank(node, &runtime->local_rank_);
  MPI_Comm_size(node, &runtime->local_size_);
  MPI_Comm_free(&node);
  if (runtime->world_size_ > 1) {
    ASSIGN_OR_RETURN(
        runtime->lifelines_, Lifelines::Connect(runtime->rank_, runtime->world_size_, [](absl::Span<uint8_t> bytes) {
          MPI_RETURN_IF_ERROR(MPI_Bcast(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, 0, MPI_COMM_WORLD),
                              "lifelines: MPI_Bcast");
          return absl::OkStatus();
        }));
  }
  return runtime;
}

MpiRuntime::~MpiRuntime() {
  lifelines_.reset();
  MPI_Finalize();
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateMpiCommunicator(const MpiRuntime& runtime,
                                                                    const MpiCommunicatorOptions& options) {
  if (options.timeout <= absl::ZeroDuration() || options.liveness_grace <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("MPI communicator: timeout and liveness_grace must be positive");
  }
  if (options.backend != nullptr && !absl::IsUnimplemented(options.backend->MemoryStats().status())) {
    return absl::InvalidArgumentError(
        absl::StrCat("MPI communicator: the ", std::string(options.backend->name()),
                     " backend keeps tensors in device memory; MPI collectives take host memory (GPU ranks use NCCL)"));
  }
  MPI_Comm comm, live;
  MPI_RETURN_IF_ERROR(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "MPI_Comm_dup");
  MPI_RETURN_IF_ERROR(MPI_Comm_dup(MPI_COMM_WORLD, &live), "MPI_Comm_dup");
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(live, MPI_ERRORS_RETURN);
  return std::unique_ptr<Communicator>(new MpiCommunicator(runtime, options, comm, live));
}

}  // namespace moeserve
