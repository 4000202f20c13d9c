#ifndef MOESERVE_SERVER_DIST_NCCL_COMMUNICATOR_H_
#define MOESERVE_SERVER_DIST_NCCL_COMMUNICATOR_H_

// NCCL (the CUDA toolkit's) for GPU ranks: tensor collectives on the CUDA backend's stream, in
// its order with the ops around them (and capturable into CUDA graphs); host collectives and
// Abort go to the host communicator, over which the NCCL unique id is bootstrapped (rank 0 makes
// it, every rank receives it). Only nccl_communicator.cc includes nccl.h; this header has no CUDA
// types, so the registry names it in every build and it exists in CUDA builds.
//
// Timeout: each collective queued outside a graph recording is followed by an event; a watchdog
// thread polls the oldest pending one and, past the timeout (or on an asynchronous NCCL error),
// aborts the NCCL communicator and ends this process non-zero with a message naming the rank and
// the collective, which makes the launcher end the group. Collectives replayed inside CUDA graphs
// are covered only by NCCL's own error reporting.
//
// Thread safety: as every Communicator (the watchdog is internal).

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/backend/backend.h"
#include "server/dist/communicator.h"

namespace moeserve {

struct NcclCommunicatorOptions {
  Backend* backend = nullptr;    // a CUDA backend, which must outlive the communicator
  Communicator* host = nullptr;  // same ranks; bootstrap and host collectives; must outlive it
  absl::Duration timeout = absl::Seconds(300);
};

// Collective over every rank of `host` (all of them call it together). InvalidArgument for a
// backend that is not CUDA; Internal naming the failed NCCL or CUDA call.
absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(const NcclCommunicatorOptions& options);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_DIST_NCCL_COMMUNICATOR_H_
