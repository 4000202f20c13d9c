#include "server/dist/registry.h"

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/dist/single_communicator.h"

// ---- Transport hooks -----------------------------------------------------------------------------
// The only #ifdefs for MPI and NCCL in the server. server/dist/CMakeLists.txt defines
// MOESERVE_HAS_MPI when Open MPI was found (mpi_communicator.cc is then built) and
// MOESERVE_HAS_NCCL in CUDA builds (nccl_communicator.cc).
#ifdef MOESERVE_HAS_MPI
#include "server/dist/mpi_communicator.h"
#endif
#ifdef MOESERVE_HAS_NCCL
#include "server/dist/nccl_communicator.h"
#endif

namespace moeserve {

#ifndef MOESERVE_HAS_MPI
class MpiRuntime {};  // never made: destroyed only as a null pointer
#endif

DistContext::DistContext(const DistOptions& options) : options_(options) {}

absl::StatusOr<std::unique_ptr<DistContext>> DistContext::Create(const DistOptions& options) {
  if (options.tensor_parallel_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor_parallel_size must be >= 1, got ", options.tensor_parallel_size));
  }
  if (options.collective_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("collective_timeout must be positive");
  }
  std::unique_ptr<DistContext> ctx(new DistContext(options));
  if (options.tensor_parallel_size == 1) {
    ctx->host_ = std::make_unique<SingleCommunicator>(nullptr);
    return ctx;
  }
#ifdef MOESERVE_HAS_MPI
  ASSIGN_OR_RETURN(ctx->mpi_, MpiRuntime::Init());
  ctx->rank_ = ctx->mpi_->rank();
  ctx->world_size_ = ctx->mpi_->world_size();
  ctx->local_rank_ = ctx->mpi_->local_rank();
  if (ctx->world_size_ != options.tensor_parallel_size) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--tensor-parallel-size ", options.tensor_parallel_size, " needs as many ranks, but ", ctx->world_size_,
        " were started (run: mpirun -np ", options.tensor_parallel_size, " moeserve ...)"));
  }
  ASSIGN_OR_RETURN(ctx->host_, CreateMpiCommunicator(*ctx->mpi_, {.timeout = options.collective_timeout}));
  return ctx;
#else
  return absl::UnavailableError(
      "--tensor-parallel-size > 1 needs MPI: moeserve was built without Open MPI "
      "(install libopenmpi-dev, scripts/install-deps.sh, and rebuild)");
#endif
}

DistContext::~DistContext() {
  host_.reset();  // before MPI_Finalize
  mpi_.reset();
}

absl::StatusOr<std::unique_ptr<Communicator>> DistContext::CreateCommunicator(Backend* backend) {
  if (world_size_ == 1) return std::unique_ptr<Communicator>(std::make_unique<SingleCommunicator>(backend));
  const bool device_memory = !absl::IsUnimplemented(backend->MemoryStats().status());
  if (device_memory) {
#ifdef MOESERVE_HAS_NCCL
    return CreateNcclCommunicator({.backend = backend, .host = host_.get(), .timeout = options_.collective_timeout});
#else
    return absl::UnavailableError(
        absl::StrCat("the ", std::string(backend->name()), " backend needs NCCL, which is built only with CUDA"));
#endif
  }
#ifdef MOESERVE_HAS_MPI
  return CreateMpiCommunicator(*mpi_, {.backend = backend, .timeout = options_.collective_timeout});
#else
  return absl::UnavailableError("built without MPI");
#endif
}

}  // namespace moeserve
