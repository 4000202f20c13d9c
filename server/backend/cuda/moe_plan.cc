#include "server/backend/cuda/moe_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace moeserve {

absl::StatusOr<MoePlan> BuildMoePlan(absl::Span<const int32_t> ids, int64_t tokens, int64_t top_k,
                                     int64_t num_experts) {
  const int64_t n = tokens * top_k;
  if (static_cast<int64_t>(ids.size()) != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("MoeExperts: ", ids.size(), " expert ids for ", tokens, " x ", top_k));
  }
  MoePlan plan;
  plan.expert_start.assign(num_experts + 1, 0);
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= num_experts) {
      return absl::InvalidArgumentError(absl::StrCat("MoeExperts: topk_ids[", i / top_k, ", ",
                                                     i % top_k, "] = ", ids[i], " is outside [0, ",
                                                     num_experts, ")"));
    }
    ++plan.expert_start[ids[i] + 1];
  }
  for (int64_t e = 0; e < num_experts; ++e) {
    plan.max_rows = std::max(plan.max_rows, plan.expert_start[e + 1]);
    plan.expert_start[e + 1] += plan.expert_start[e];
  }
  plan.row_token.resize(n);
  plan.pair_row.resize(n);
  std::vector<int64_t> fill(plan.expert_start.begin(), plan.expert_start.end() - 1);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t row = fill[ids[i]]++;
    plan.row_token[row] = static_cast<int32_t>(i / top_k);
    plan.pair_row[i] = static_cast<int32_t>(row);
  }
  return plan;
}

}  // namespace moeserve
