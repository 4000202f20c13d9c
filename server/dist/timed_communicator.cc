#include "server/dist/timed_communicator.h"

#include <cstdlib>

namespace moeserve {

const char* TimedCommunicator::OpName(Op op) {
  switch (op) {
    case kAllReduce: return "all_reduce";
    case kAllGather: return "all_gather";
    case kReduceScatter: return "reduce_scatter";
    case kAllToAll: return "all_to_all";
    case kBroadcast: return "broadcast";
    case kHost: return "host";
    case kNumOps: break;
  }
  return "?";
}

void TimedCommunicator::Abort(const absl::Status& why) {
  inner_->Abort(why);
  std::abort();  // inner_->Abort does not return
}

absl::Duration TimedCommunicator::total_time() const {
  absl::Duration total;
  for (const Counter& c : stats_) total += c.time;
  return total;
}

absl::Status TimedCommunicator::AllReduce(const Tensor& x) {
  return Timed(kAllReduce, static_cast<int64_t>(x.bytes()), [&] { return inner_->AllReduce(x); });
}

absl::Status TimedCommunicator::AllGather(const Tensor& in, const Tensor& out) {
  return Timed(kAllGather, static_cast<int64_t>(in.bytes()), [&] { return inner_->AllGather(in, out); });
}

absl::Status TimedCommunicator::ReduceScatter(const Tensor& in, const Tensor& out) {
  return Timed(kReduceScatter, static_cast<int64_t>(in.bytes()), [&] { return inner_->ReduceScatter(in, out); });
}

absl::Status TimedCommunicator::AllToAll(const Tensor& in, absl::Span<const int64_t> send_rows, const Tensor& out,
                                         absl::Span<const int64_t> recv_rows) {
  return Timed(kAllToAll, static_cast<int64_t>(in.bytes()),
               [&] { return inner_->AllToAll(in, send_rows, out, recv_rows); });
}

absl::Status TimedCommunicator::Broadcast(const Tensor& x, int root) {
  return Timed(kBroadcast, static_cast<int64_t>(x.bytes()), [&] { return inner_->Broadcast(x, root); });
}

absl::Status TimedCommunicator::BroadcastHost(absl::Span<uint8_t> bytes, int root) {
  return Timed(kHost, static_cast<int64_t>(bytes.size()), [&] { return inner_->BroadcastHost(bytes, root); });
}

absl::Status TimedCommunicator::AllGatherHost(absl::Span<const uint8_t> in, absl::Span<uint8_t> out) {
  return Timed(kHost, static_cast<int64_t>(in.size()), [&] { return inner_->AllGatherHost(in, out); });
}

absl::Status TimedCommunicator::Barrier() {
  return Timed(kHost, 0, [&] { return inner_->Barrier(); });
}

}  // namespace moeserve
