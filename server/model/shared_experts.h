#ifndef MOESERVE_SERVER_MODEL_SHARED_EXPERTS_H_
#define MOESERVE_SERVER_MODEL_SHARED_EXPERTS_H_

// DeepSeek's shared experts as extra experts of the routed stack (MoeFfn: MoeExperts runs them in
// the same grouped computation, MoeExpertsExtras::num_shared_experts).

#include <cstdint>
#include <vector>

namespace moeserve {

// Appends a DeepSeek shared MLP split into `n` experts of intermediate `rows`: expert s takes rows
// [s·rows, (s+1)·rows) of gate and of up ([n·rows, cols] each) as its gate|up block and columns
// [s·rows, (s+1)·rows) of down ([cols, n·rows]) as its down block. silu(gate)·up is per channel
// and down is linear, so the n experts' outputs sum to the MLP's. Used on values (rows = I,
// cols = d) and on fp8 bytes and scale grids (rows = I / 128, cols = d / 128 for the scales).
template <class V>
void AppendSharedExperts(const std::vector<V>& gate, const std::vector<V>& up, const std::vector<V>& down, int64_t n,
                         int64_t rows, int64_t cols, std::vector<V>* gate_up_out, std::vector<V>* down_out) {
  for (int64_t s = 0; s < n; ++s) {
    for (const std::vector<V>* w : {&gate, &up}) {
      const auto first = w->begin() + s * rows * cols;
      gate_up_out->insert(gate_up_out->end(), first, first + rows * cols);
    }
    for (int64_t c = 0; c < cols; ++c) {
      const auto first = down.begin() + (c * n + s) * rows;
      down_out->insert(down_out->end(), first, first + rows);
    }
  }
}

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_SHARED_EXPERTS_H_
