#include "server/backend/cuda/moe_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "cuda/moe_layout.h"

namespace moeserve {
namespace {

int64_t Align256(int64_t b) { return (b + 255) / 256 * 256; }

}  // namespace

MoeWorkspaceLayout PlanMoeWorkspace(int64_t tokens, int64_t top_k, int64_t num_experts, int64_t hidden,
                                    int64_t intermediate, int64_t num_shared) {
  MoeWorkspaceLayout w;
  const int64_t pairs = tokens * (top_k + num_shared);
  w.max_m_tiles = kernels::MoeMaxMTiles(pairs, num_experts);
  w.max_rows = kernels::MoeMaxRows(pairs, num_experts);
  int64_t at = 0;
  auto take = [&at](int64_t bytes) {
    const int64_t off = at;
    at += Align256(bytes);
    return off;
  };
  w.row_token = take(w.max_rows * 4);
  w.pair_row = take(pairs * 4);
  w.tile_expert = take(w.max_m_tiles * 4);
  w.num_m_tiles = take(4);
  w.act = take(w.max_rows * intermediate * 2);
  w.expert_out = take(w.max_rows * hidden * 2);
  w.total_bytes = at;
  return w;
}

absl::StatusOr<MoeTileSchedule> BuildMoeTileSchedule(absl::Span<const int32_t> ids, int64_t tokens, int64_t top_k,
                                                     int64_t num_experts, int64_t num_shared) {
  const int64_t n = tokens * top_k;
  if (static_cast<int64_t>(ids.size()) != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("MoeExperts: ", ids.size(), " expert ids for ", tokens, " x ", top_k));
  }
  if (num_shared < 0 || num_shared >= num_experts) {
    return absl::InvalidArgumentError(absl::StrCat("MoeExperts: ", num_shared, " shared experts of ", num_experts));
  }
  const int64_t routed = num_experts - num_shared;
  MoeTileSchedule s;
  s.count.assign(num_experts, 0);
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= routed) {
      return absl::InvalidArgumentError(absl::StrCat("MoeExperts: topk_ids[", i / top_k, ", ", i % top_k,
                                                     "] = ", ids[i], " is outside [0, ", routed, ")"));
    }
    ++s.count[ids[i]];
  }
  for (int64_t e = routed; e < num_experts; ++e) s.count[e] = tokens;
  s.start.assign(num_experts + 1, 0);
  for (int64_t e = 0; e < num_experts; ++e) {
    const int64_t padded = kernels::MoePaddedRows(s.count[e]);
    for (int64_t t = 0; t < padded / kernels::kMoeTileM; ++t) {
      s.tile_expert.push_back(static_cast<int32_t>(e));
    }
    s.start[e + 1] = s.start[e] + padded;
  }
  s.num_m_tiles = static_cast<int64_t>(s.tile_expert.size());
  return s;
}

}  // namespace moeserve
