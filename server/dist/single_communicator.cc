#include "server/dist/single_communicator.h"

#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"

namespace moeserve {

absl::Status SingleCommunicator::Copy(const Tensor& in, const Tensor& out) {
  if (in.data() == out.data() || in.bytes() == 0) return absl::OkStatus();
  std::vector<uint8_t> host(in.bytes());
  RETURN_IF_ERROR(backend_->CopyToHost(in, absl::MakeSpan(host)));
  return backend_->CopyFromHost(host, out);
}

absl::Status SingleCommunicator::AllGather(const Tensor& in, const Tensor& out) {
  RETURN_IF_ERROR(dist_checks::AllGatherShapes(in, out, 1));
  return Copy(in, out);
}

absl::Status SingleCommunicator::ReduceScatter(const Tensor& in, const Tensor& out) {
  RETURN_IF_ERROR(dist_checks::ReduceScatterShapes(in, out, 1));
  return Copy(in, out);
}

absl::Status SingleCommunicator::AllToAll(const Tensor& in, absl::Span<const int64_t> send_rows, const Tensor& out,
                                          absl::Span<const int64_t> recv_rows) {
  RETURN_IF_ERROR(dist_checks::AllToAllShapes(in, send_rows, out, recv_rows, 1));
  return Copy(in, out);
}

absl::Status SingleCommunicator::Broadcast(const Tensor& x, int root) {
  return dist_checks::Root("broadcast", root, 1);
}

absl::Status SingleCommunicator::BroadcastHost(absl::Span<uint8_t> bytes, int root) {
  return dist_checks::Root("broadcast", root, 1);
}

absl::Status SingleCommunicator::AllGatherHost(absl::Span<const uint8_t> in, absl::Span<uint8_t> out) {
  if (out.size() != in.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("all_gather: out has ", out.size(), " bytes, in ", in.size(), " (one rank)"));
  }
  if (!in.empty()) std::memmove(out.data(), in.data(), in.size());
  return absl::OkStatus();
}

void SingleCommunicator::Abort(const absl::Status& why) {
  MS_LOG(ERROR) << "rank 0 of 1: ending: " << why.message();
  std::exit(1);
}

}  // namespace moeserve
