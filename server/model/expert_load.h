#ifndef MOESERVE_SERVER_MODEL_EXPERT_LOAD_H_
#define MOESERVE_SERVER_MODEL_EXPERT_LOAD_H_

#include <cstdint>
#include <vector>

namespace moeserve {

// Routed-expert load of a MoE model: how many (token, slot) pairs each expert of each MoE layer
// received (a token routed to top_k experts counts once for each). Per MoE layer the counts sum to
// tokens_run_through_the_model x top_k. A plain value, copied freely.
struct ExpertLoad {
  std::vector<int32_t> layers;  // model layer index of each MoE layer, ascending
  int32_t num_experts = 0;
  std::vector<int64_t> tokens;  // [layers.size() * num_experts], row = MoE layer

  bool empty() const { return layers.empty(); }
  int64_t at(size_t moe_layer, int32_t expert) const {
    return tokens[moe_layer * static_cast<size_t>(num_experts) + expert];
  }
  // Sum over layers, [num_experts].
  std::vector<int64_t> SumOverLayers() const {
    std::vector<int64_t> sum(num_experts, 0);
    for (size_t l = 0; l < layers.size(); ++l) {
      for (int32_t e = 0; e < num_experts; ++e) sum[e] += at(l, e);
    }
    return sum;
  }
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_EXPERT_LOAD_H_
