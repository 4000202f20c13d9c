#ifndef MOESERVE_SERVER_DIST_TIMED_COMMUNICATOR_H_
#define MOESERVE_SERVER_DIST_TIMED_COMMUNICATOR_H_

// TimedCommunicator: a Communicator that forwards every call to another one and counts, per kind
// of collective, the calls, the bytes of their operands and the wall time they took (host time:
// on a device backend a collective's time is its queueing unless the caller synchronises). For
// benchmarks and the share of a step spent in collectives.
//
// Thread safety: as every Communicator.

#include <array>
#include <cstdint>

#include "absl/time/time.h"
#include "server/dist/communicator.h"

namespace moeserve {

class TimedCommunicator final : public Communicator {
 public:
  enum Op { kAllReduce, kAllGather, kReduceScatter, kAllToAll, kBroadcast, kHost, kNumOps };
  struct Counter {
    int64_t calls = 0;
    int64_t bytes = 0;  // of the input operand (all-gather: what this rank sends)
    absl::Duration time;
  };
  using Stats = std::array<Counter, kNumOps>;
  static const char* OpName(Op op);

  // `inner` must outlive this communicator.
  explicit TimedCommunicator(Communicator* inner) : inner_(inner) {}

  const Stats& stats() const { return stats_; }
  void Reset() { stats_ = Stats(); }
  absl::Duration total_time() const;

  int rank() const override { return inner_->rank(); }
  int world_size() const override { return inner_->world_size(); }
  std::string_view name() const override { return inner_->name(); }
  absl::Status AllReduce(const Tensor& x) override;
  absl::Status AllGather(const Tensor& in, const Tensor& out) override;
  absl::Status ReduceScatter(const Tensor& in, const Tensor& out) override;
  absl::Status AllToAll(const Tensor& in, absl::Span<const int64_t> send_rows, const Tensor& out,
                        absl::Span<const int64_t> recv_rows) override;
  absl::Status Broadcast(const Tensor& x, int root) override;
  absl::Status BroadcastHost(absl::Span<uint8_t> bytes, int root) override;
  absl::Status AllGatherHost(absl::Span<const uint8_t> in, absl::Span<uint8_t> out) override;
  absl::Status Barrier() override;
  [[noreturn]] void Abort(const absl::Status& why) override;

 private:
  template <typename F>
  absl::Status Timed(Op op, int64_t bytes, F&& call) {
    const absl::Time start = absl::Now();
    absl::Status s = call();
    Counter& c = stats_[op];
    ++c.calls;
    c.bytes += bytes;
    c.time += absl::Now() - start;
    return s;
  }

  Communicator* const inner_;
  Stats stats_;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_DIST_TIMED_COMMUNICATOR_H_
