#ifndef MOESERVE_SERVER_DIST_LIFELINE_H_
#define MOESERVE_SERVER_DIST_LIFELINE_H_

// Lifelines: how the ranks of a group learn at once that one of them died.
//
// Every rank other than 0 holds one TCP connection to rank 0 that carries nothing but a greeting
// (rank, pid, host) and, at a clean exit, a goodbye. When a process dies, its kernel closes the
// connection before anyone else hears of the death (its launcher reaps it later and, for mpirun,
// waits a second before it signals the survivors), so a thread of rank 0 that polls the
// connections logs "rank 0 of N: lost rank R (pid P on HOST) ..." first, deterministically, and
// `lost()` turns the next collective wait into an error naming that rank (the group then ends
// through Communicator::Abort). The other ranks watch their connection to rank 0 the same way.
// A rank that hangs keeps its connection open: the collective timeout finds it (mpi_communicator.h).
//
// The connections are set up once, when MPI starts (MpiRuntime): rank 0 listens on an ephemeral
// port and broadcasts its IPv4 addresses; the others connect to the first that answers. A rank
// that cannot connect is warned about and left to the collective timeout.
//
// Thread safety: lost() and Quiet() may be called from any thread; the rest from the thread that
// made the object.

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace moeserve {

class Lifelines {
 public:
  // Broadcasts `bytes` from rank 0 to every rank (in place); every rank calls it together.
  using BroadcastFn = std::function<absl::Status(absl::Span<uint8_t> bytes)>;

  // Collective over the group's `world_size` ranks (> 1). Errors of the broadcast are returned;
  // a connection that cannot be made is only warned about.
  static absl::StatusOr<std::unique_ptr<Lifelines>> Connect(int rank, int world_size, const BroadcastFn& broadcast,
                                                            absl::Duration connect_timeout = absl::Seconds(10));
  ~Lifelines();  // says goodbye on every connection, so that a clean exit is not a loss
  Lifelines(const Lifelines&) = delete;
  Lifelines& operator=(const Lifelines&) = delete;

  // The first rank lost, described ("lost rank 1 (pid 123 on host): ..."), or none.
  std::optional<std::string> lost() const;
  // The group is ending by its own decision (an abort): losses are no longer logged.
  void Quiet() { quiet_.store(true); }

 private:
  struct Peer {
    int fd = -1;
    int rank = -1;
    std::string who;  // "rank R (pid P on HOST)"
  };

  Lifelines(int rank, int world_size) : rank_(rank), world_size_(world_size) {}
  void Watch();

  const int rank_;
  const int world_size_;
  std::vector<Peer> peers_;
  int wake_[2] = {-1, -1};  // a pipe that stops the watcher
  std::atomic<bool> quiet_{false};
  mutable absl::Mutex mu_;
  std::optional<std::string> lost_ ABSL_GUARDED_BY(mu_);
  std::thread watcher_;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_DIST_LIFELINE_H_
