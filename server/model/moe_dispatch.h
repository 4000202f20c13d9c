#ifndef MOESERVE_SERVER_MODEL_MOE_DISPATCH_H_
#define MOESERVE_SERVER_MODEL_MOE_DISPATCH_H_

// Expert-parallel MoE by all-to-all (ModelParallel::ep_all_to_all): each rank owns a slice of the
// step's tokens (after a reduce-scatter of the attention output), routes them, and sends each token
// once to every rank that holds one of its experts, with its whole top-k (ids and weights); that
// rank runs its own experts on what it received (MoeExperts skips the slots of other ranks' experts)
// and sends one partial output row back per token received; the owner adds the rows it gets back.
//
//   dispatch   all-to-all-v of the token rows [S, d], their ids i32 [S, k] and weights f32 [S, k]
//   combine    all-to-all-v of the partial outputs [R, d] back to the owners
// where S is the number of (token, rank) pairs this rank sends (at most tokens · min(k, N)) and R
// what it receives. The counts go first (an all-to-all of one i64 per rank). The plan is made on
// the host from the routed ids, so a step reads them back from the device (no CUDA graph).
//
// Free functions, no state; thread-compatible.

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/backend/backend.h"
#include "server/dist/communicator.h"

namespace moeserve {

// Which rows go where, from the routed ids of one rank's tokens.
struct MoeDispatchPlan {
  std::vector<int64_t> send_rows;   // [N]: tokens sent to each rank
  std::vector<int32_t> send_index;  // [S]: the token (row) of each sent row, rank by rank, in token order
  // The combine: rounds[j][t] is the row of the returned outputs [S] holding token t's j-th
  // partial output (its ranks in rank order), or S (a zero row) when t has fewer than j + 1.
  std::vector<std::vector<int32_t>> rounds;
};

// ids [rows, k] (the model's expert ids, in [0, num_experts)) of this rank's tokens, of which the
// first valid_rows are real (the rest are padding and go nowhere). Rank p holds experts
// [p · E/N, (p + 1) · E/N). InvalidArgument for an id out of range or E not divisible by N.
absl::StatusOr<MoeDispatchPlan> PlanMoeDispatch(absl::Span<const int32_t> ids, int64_t rows, int64_t k,
                                                int64_t valid_rows, int64_t num_experts, int ranks);

// Runs this rank's experts: y [R, d] = its experts' weighted outputs for x [R, d] with ids and
// weights [R, k] (slots of other ranks' experts contribute nothing).
using LocalExpertsFn =
    std::function<absl::Status(const Tensor& x, const Tensor& ids, const Tensor& weights, const Tensor& y)>;

// out [rows, d] += the routed experts' output for this rank's tokens x [rows, d] (ids i32 and
// weights f32 [rows, k] from MoeRoute), every rank calling it together (collective).
absl::Status DispatchToExperts(Backend* backend, Communicator* comm, const Tensor& x, const Tensor& ids,
                               const Tensor& weights, int64_t valid_rows, int64_t num_experts,
                               const LocalExpertsFn& local_experts, const Tensor& out);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_MOE_DISPATCH_H_
