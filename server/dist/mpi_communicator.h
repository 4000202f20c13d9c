#ifndef MOESERVE_SERVER_DIST_MPI_COMMUNICATOR_H_
#define MOESERVE_SERVER_DIST_MPI_COMMUNICATOR_H_

// MPI (Open MPI) for CPU ranks, and the host side of GPU ranks (NCCL's bootstrap, step
// broadcasts). The only file that includes mpi.h is mpi_communicator.cc.
//
// MpiRuntime initialises MPI once per process (MPI_THREAD_SERIALIZED: any one thread at a time may
// call it, which is how the engine thread uses it after main initialised it) and finalises it
// when destroyed; create it in main before any thread starts. Errors are returned, not fatal
// (MPI_ERRORS_RETURN).
//
// MpiCommunicator runs every collective non-blocking and polls it (MPI_Test, spinning briefly,
// then yielding and sleeping), so that a collective that outlives `timeout` turns into an error
// instead of a hang. While it polls, it answers liveness pings from other ranks on a private
// duplicate of the world communicator; a rank whose collective times out pings every peer and
// names those that stay silent for a grace period (hung, or dead without the launcher noticing).
// A rank whose process ended is known sooner, from the group's lifelines (lifeline.h, made by
// MpiRuntime): the wait then fails at once, naming it.
// Tensor collectives need host memory: the backend must have no device memory (the CPU backend).
//
// Thread safety: as every Communicator; one MpiRuntime per process.

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/backend/backend.h"
#include "server/dist/communicator.h"
#include "server/dist/lifeline.h"

namespace moeserve {

class MpiRuntime {
 public:
  // Initialises MPI (under mpirun, or as a singleton without it). Internal when MPI cannot
  // provide MPI_THREAD_SERIALIZED; FailedPrecondition when called twice in a process.
  static absl::StatusOr<std::unique_ptr<MpiRuntime>> Init();
  ~MpiRuntime();  // MPI_Finalize
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  int local_rank() const { return local_rank_; }  // among the ranks on this node (GPU = local rank)
  int local_size() const { return local_size_; }
  // The connections that tell rank 0 at once which rank died (and the others that rank 0 did);
  // null for a group of one.
  Lifelines* lifelines() const { return lifelines_.get(); }

 private:
  MpiRuntime() = default;
  int rank_ = 0, world_size_ = 1, local_rank_ = 0, local_size_ = 1;
  std::unique_ptr<Lifelines> lifelines_;  // closed before MPI_Finalize
};

struct MpiCommunicatorOptions {
  // Backend of the tensor operands (host memory), or null for a host-only communicator (tensor
  // collectives then fail with FailedPrecondition).
  Backend* backend = nullptr;
  absl::Duration timeout = absl::Seconds(300);
  // How long a rank whose collective timed out waits for its peers' answers.
  absl::Duration liveness_grace = absl::Seconds(3);
};

// A communicator over every rank of `runtime` (MPI_COMM_WORLD), which must outlive it.
// InvalidArgument for a backend with device memory or a non-positive timeout.
absl::StatusOr<std::unique_ptr<Communicator>> CreateMpiCommunicator(const MpiRuntime& runtime,
                                                                    const MpiCommunicatorOptions& options);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_DIST_MPI_COMMUNICATOR_H_
