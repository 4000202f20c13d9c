#include "server/model/moe_dispatch.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"

namespace moeserve {
namespace {

// A [rows, cols] tensor, rows possibly 0 (allocated with one row, viewed with none).
absl::StatusOr<Tensor> Rows(Backend* backend, DType dtype, int64_t rows, int64_t cols) {
  ASSIGN_OR_RETURN(Tensor t, backend->Allocate(dtype, {std::max<int64_t>(rows, 1), cols}));
  return t.Slice(0, rows);
}

template <class T>
absl::StatusOr<Tensor> Upload(Backend* backend, DType dtype, const std::vector<T>& host, int64_t rows, int64_t cols) {
  ASSIGN_OR_RETURN(Tensor t, Rows(backend, dtype, rows, cols));
  if (rows > 0) RETURN_IF_ERROR(backend->CopyFromHost(HostBytes(host), t));
  return t;
}

}  // namespace

absl::StatusOr<MoeDispatchPlan> PlanMoeDispatch(absl::Span<const int32_t> ids, int64_t rows, int64_t k,
                                                int64_t valid_rows, int64_t num_experts, int ranks) {
  if (ranks < 1 || num_experts % ranks != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("MoE dispatch: ", num_experts, " experts do not split over ", ranks, " ranks"));
  }
  if (static_cast<int64_t>(ids.size()) != rows * k) {
    return absl::InvalidArgumentError(absl::StrCat("MoE dispatch: ", ids.size(), " ids for ", rows, " x ", k));
  }
  const int64_t per_rank = num_experts / ranks;
  valid_rows = std::clamp<int64_t>(valid_rows, 0, rows);
  // wants[t * ranks + p]: token t has an expert on rank p.
  std::vector<uint8_t> wants(static_cast<size_t>(rows * ranks), 0);
  for (int64_t t = 0; t < valid_rows; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      const int32_t e = ids[t * k + j];
      if (e < 0 || e >= num_experts) {
        return absl::InvalidArgumentError(
            absl::StrCat("MoE dispatch: expert id ", e, " of token ", t, " is outside [0, ", num_experts, ")"));
      }
      wants[t * ranks + e / per_rank] = 1;
    }
  }
  MoeDispatchPlan plan;
  plan.send_rows.assign(ranks, 0);
  std::vector<int64_t> seen(rows, 0);  // partial outputs of each token so far
  // (round, row of the returned outputs) of each token's partial outputs.
  std::vector<std::vector<std::pair<int64_t, int32_t>>> visits(rows);
  for (int p = 0; p < ranks; ++p) {
    for (int64_t t = 0; t < valid_rows; ++t) {
      if (!wants[t * ranks + p]) continue;
      visits[t].push_back({seen[t]++, static_cast<int32_t>(plan.send_index.size())});
      plan.send_index.push_back(static_cast<int32_t>(t));
      ++plan.send_rows[p];
    }
  }
  const int32_t none = static_cast<int32_t>(plan.send_index.size());
  const int64_t n_rounds = rows > 0 ? *std::max_element(seen.begin(), seen.end()) : 0;
  plan.rounds.assign(n_rounds, std::vector<int32_t>(rows, none));
  for (int64_t t = 0; t < rows; ++t) {
    for (const auto& [round, row] : visits[t]) plan.rounds[round][t] = row;
  }
  return plan;
}

absl::Status DispatchToExperts(Backend* backend, Communicator* comm, const Tensor& x, const Tensor& ids,
                               const Tensor& weights, int64_t valid_rows, int64_t num_experts,
                               const LocalExpertsFn& local_experts, const Tensor& out) {
  const int ranks = comm->world_size();
  const int64_t rows = x.dim(0), d = x.dim(1), k = ids.dim(1);
  const DType act = x.dtype();
  std::vector<int32_t> host_ids(rows * k);
  std::vector<float> host_weights(rows * k);
  if (rows > 0) {
    RETURN_IF_ERROR(backend->CopyToHost(ids, MutableHostBytes(host_ids)));
    RETURN_IF_ERROR(backend->CopyToHost(weights, MutableHostBytes(host_weights)));
  }
  ASSIGN_OR_RETURN(MoeDispatchPlan plan, PlanMoeDispatch(host_ids, rows, k, valid_rows, num_experts, ranks));

  // Counts first: what each rank receives from every other.
  const std::vector<int64_t> ones(ranks, 1);
  ASSIGN_OR_RETURN(Tensor send_counts, Upload(backend, DType::kI64, plan.send_rows, ranks, 1));
  ASSIGN_OR_RETURN(Tensor recv_counts, Rows(backend, DType::kI64, ranks, 1));
  RETURN_IF_ERROR(comm->AllToAll(send_counts, ones, recv_counts, ones));
  std::vector<int64_t> recv_rows(ranks);
  RETURN_IF_ERROR(backend->CopyToHost(recv_counts, MutableHostBytes(recv_rows)));
  const int64_t sent = static_cast<int64_t>(plan.send_index.size());
  int64_t received = 0;
  for (int64_t r : recv_rows) received += r;

  // Dispatch: the token rows, and each one's whole top-k.
  ASSIGN_OR_RETURN(Tensor send_x, Rows(backend, act, sent, d));
  if (sent > 0) {
    ASSIGN_OR_RETURN(Tensor index, Upload(backend, DType::kI32, plan.send_index, sent, 1));
    RETURN_IF_ERROR(backend->GatherRows(x, index.View({sent}), send_x));
  }
  std::vector<int32_t> sent_ids(sent * k);
  std::vector<float> sent_weights(sent * k);
  for (int64_t i = 0; i < sent; ++i) {
    const int64_t t = plan.send_index[i];
    std::copy_n(host_ids.begin() + t * k, k, sent_ids.begin() + i * k);
    std::copy_n(host_weights.begin() + t * k, k, sent_weights.begin() + i * k);
  }
  ASSIGN_OR_RETURN(Tensor send_ids, Upload(backend, DType::kI32, sent_ids, sent, k));
  ASSIGN_OR_RETURN(Tensor send_weights, Upload(backend, DType::kF32, sent_weights, sent, k));
  ASSIGN_OR_RETURN(Tensor recv_x, Rows(backend, act, received, d));
  ASSIGN_OR_RETURN(Tensor recv_ids, Rows(backend, DType::kI32, received, k));
  ASSIGN_OR_RETURN(Tensor recv_weights, Rows(backend, DType::kF32, received, k));
  RETURN_IF_ERROR(comm->AllToAll(send_x, plan.send_rows, recv_x, recv_rows));
  RETURN_IF_ERROR(comm->AllToAll(send_ids, plan.send_rows, recv_ids, recv_rows));
  RETURN_IF_ERROR(comm->AllToAll(send_weights, plan.send_rows, recv_weights, recv_rows));

  // This rank's experts on what it received, and the partial outputs back to their owners.
  ASSIGN_OR_RETURN(Tensor recv_y, Rows(backend, act, received, d));
  if (received > 0) RETURN_IF_ERROR(local_experts(recv_x, recv_ids, recv_weights, recv_y));
  ASSIGN_OR_RETURN(Tensor back, backend->Allocate(act, {sent + 1, d}));  // + a zero row
  RETURN_IF_ERROR(backend->Zero(back));
  RETURN_IF_ERROR(comm->AllToAll(recv_y, recv_rows, back.Slice(0, sent), plan.send_rows));

  // Combine: out += each token's partial outputs, one round per rank that answered it.
  if (plan.rounds.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(Tensor partial, Rows(backend, act, rows, d));
  for (const std::vector<int32_t>& round : plan.rounds) {
    ASSIGN_OR_RETURN(Tensor index, Upload(backend, DType::kI32, round, rows, 1));
    RETURN_IF_ERROR(backend->GatherRows(back, index.View({rows}), partial));
    RETURN_IF_ERROR(backend->Add(out, partial, out));
  }
  return absl::OkStatus();
}

}  // namespace moeserve
