#ifndef MOESERVE_SERVER_DIST_REGISTRY_H_
#define MOESERVE_SERVER_DIST_REGISTRY_H_

// DistContext: this process's place in a tensor/expert-parallel group and the communicators it
// talks through. The one place that knows which transports were built (MPI when Open MPI was
// found, NCCL in CUDA builds); the rest of the server holds `Communicator*`.
//
//   auto dist = DistContext::Create({.tensor_parallel_size = n});   // in main, before threads
//   auto backend = CreateBackend({.device = ..., .device_index = (*dist)->local_rank()});
//   auto comm = (*dist)->CreateCommunicator(backend->get());       // every rank together
//
// A group of one needs no MPI and no launcher. A group of N > 1 runs one process per rank under
// mpirun (or any launcher that starts an MPI job: a hostfile across nodes, a LeaderWorkerSet).
// Communicators must be destroyed before the context (it finalises MPI).
//
// Thread safety: create and destroy on the main thread; otherwise as Communicator.

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/backend/backend.h"
#include "server/dist/communicator.h"

namespace moeserve {

struct DistOptions {
  int tensor_parallel_size = 1;
  // A collective that does not complete within this ends the group (communicator.h).
  absl::Duration collective_timeout = absl::Seconds(300);
};

class MpiRuntime;

class DistContext {
 public:
  // InvalidArgument for a size < 1 or a timeout <= 0; FailedPrecondition when the launcher
  // started a different number of ranks than tensor_parallel_size; Unavailable when N > 1 and
  // moeserve was built without MPI.
  static absl::StatusOr<std::unique_ptr<DistContext>> Create(const DistOptions& options);
  ~DistContext();
  DistContext(const DistContext&) = delete;
  DistContext& operator=(const DistContext&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  int local_rank() const { return local_rank_; }  // the GPU a rank uses
  const DistOptions& options() const { return options_; }

  // The communicator for `backend`'s tensors: single for one rank, MPI for host memory (the CPU
  // backend), NCCL for the CUDA backend. Collective: every rank calls it together.
  absl::StatusOr<std::unique_ptr<Communicator>> CreateCommunicator(Backend* backend);
  // Host collectives (the step broadcast, start-up agreement); valid while the context lives.
  Communicator* host() const { return host_.get(); }

 private:
  explicit DistContext(const DistOptions& options);

  DistOptions options_;
  int rank_ = 0, world_size_ = 1, local_rank_ = 0;
  std::unique_ptr<MpiRuntime> mpi_;     // null for a group of one
  std::unique_ptr<Communicator> host_;  // destroyed before mpi_
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_DIST_REGISTRY_H_
