#ifndef MOESERVE_SERVER_RUNNER_STEP_CHANNEL_H_
#define MOESERVE_SERVER_RUNNER_STEP_CHANNEL_H_

// StepChannel: rank 0's step messages (step_message.h) to every other rank of the group, over the
// host communicator's broadcast. A message travels in one fixed-size broadcast of kInlineBytes
// (length + bytes) when it fits, which covers decode steps of a few hundred requests, else in
// that broadcast plus one for the rest. Counts what it sends (bytes, broadcasts, time spent) so
// the cost per step can be measured.
//
// Requires external synchronization (the engine thread on rank 0, the follower loop elsewhere).

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/dist/communicator.h"

namespace moeserve {

class StepChannel {
 public:
  static constexpr size_t kInlineBytes = 3968;

  // `host` must outlive the channel; rank 0 sends, the others receive.
  explicit StepChannel(Communicator* host) : host_(host), buffer_(kInlineBytes) {}
  StepChannel(const StepChannel&) = delete;
  StepChannel& operator=(const StepChannel&) = delete;

  Communicator* host() const { return host_; }
  bool leader() const { return host_->rank() == 0; }

  // Rank 0: broadcasts `message`.
  absl::Status Send(absl::Span<const uint8_t> message);
  // Other ranks: the next message, valid until the next Receive.
  absl::StatusOr<absl::Span<const uint8_t>> Receive();

  struct Stats {
    int64_t messages = 0;
    int64_t bytes = 0;
    int64_t max_bytes = 0;  // of the largest message
    int64_t broadcasts = 0;
    absl::Duration time;  // spent in Send/Receive, waiting included
  };
  const Stats& stats() const { return stats_; }

 private:
  Communicator* const host_;
  std::vector<uint8_t> buffer_;
  Stats stats_;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_RUNNER_STEP_CHANNEL_H_
