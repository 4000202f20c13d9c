#include "server/dist/communicator.h"

#include "absl/strings/str_cat.h"

namespace moeserve::dist_checks {
namespace {

absl::Status Bad(absl::string_view op, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(op, ": ", what));
}

// Same dtype and trailing dimensions; rows may differ.
bool SameRowShape(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.rank() != b.rank() || a.rank() < 1) return false;
  for (int i = 1; i < a.rank(); ++i) {
    if (a.dim(i) != b.dim(i)) return false;
  }
  return true;
}

}  // namespace

absl::Status AllGatherShapes(const Tensor& in, const Tensor& out, int world_size) {
  if (!SameRowShape(in, out) || out.dim(0) != in.dim(0) * world_size) {
    return Bad("all_gather", absl::StrCat("out ", out.DebugString(), " must be in ", in.DebugString(), " with ",
                                          world_size, "x the rows"));
  }
  return absl::OkStatus();
}

absl::Status ReduceScatterShapes(const Tensor& in, const Tensor& out, int world_size) {
  if (!SameRowShape(in, out) || in.dim(0) != out.dim(0) * world_size) {
    return Bad("reduce_scatter", absl::StrCat("in ", in.DebugString(), " must be out ", out.DebugString(), " with ",
                                              world_size, "x the rows"));
  }
  return absl::OkStatus();
}

absl::Status AllToAllShapes(const Tensor& in, absl::Span<const int64_t> send_rows, const Tensor& out,
                            absl::Span<const int64_t> recv_rows, int world_size) {
  if (static_cast<int>(send_rows.size()) != world_size || static_cast<int>(recv_rows.size()) != world_size) {
    return Bad("all_to_all", absl::StrCat("send_rows and recv_rows need ", world_size, " counts, got ",
                                          send_rows.size(), " and ", recv_rows.size()));
  }
  if (!SameRowShape(in, out)) {
    return Bad("all_to_all",
               absl::StrCat("in ", in.DebugString(), " and out ", out.DebugString(), " differ in dtype or row shape"));
  }
  int64_t sent = 0, received = 0;
  for (int p = 0; p < world_size; ++p) {
    if (send_rows[p] < 0 || recv_rows[p] < 0) return Bad("all_to_all", "negative row count");
    sent += send_rows[p];
    received += recv_rows[p];
  }
  if (sent != in.dim(0) || received != out.dim(0)) {
    return Bad("all_to_all", absl::StrCat("counts sum to ", sent, " sent / ", received, " received rows; in has ",
                                          in.dim(0), ", out ", out.dim(0)));
  }
  return absl::OkStatus();
}

absl::Status Root(absl::string_view op, int root, int world_size) {
  if (root < 0 || root >= world_size) {
    return Bad(op, absl::StrCat("root ", root, " is outside [0, ", world_size, ")"));
  }
  return absl::OkStatus();
}

std::string Describe(absl::string_view op, uint64_t sequence, const Tensor& x) {
  return absl::StrCat(op, " #", sequence, x.defined() ? absl::StrCat(" ", x.DebugString()) : "");
}

}  // namespace moeserve::dist_checks
