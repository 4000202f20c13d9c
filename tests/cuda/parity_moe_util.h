#ifndef MOESERVE_TESTS_CUDA_PARITY_MOE_UTIL_H_
#define MOESERVE_TESTS_CUDA_PARITY_MOE_UTIL_H_

// MoE pieces shared by parity_moe.cc and parity_moe_w8a8.cc: routed ids, random fp8 block-scaled
// expert weights, and one MoeExperts call on a backend with its output and expert counts read back.

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "server/common/numeric.h"
#include "tests/cuda/parity_harness.h"

namespace moeserve::parity {

// T x K expert ids over E experts. routing: "spread" (pseudo-random, uneven), "two" (every token
// on experts 3 and 5: most experts empty, the busy ones span several 64-row tiles; with K = 4 a
// token repeats them, which the kernels take as separate pairs all the same).
inline std::vector<int32_t> RouteIds(Harness& h, const std::string& routing, int64_t T, int64_t K, int64_t E) {
  std::vector<int32_t> ids(T * K);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t k = 0; k < K; ++k) {
      ids[t * K + k] =
          routing == "two" ? (k % 2 == 0 ? 3 : 5) : static_cast<int32_t>((t * 7 + k * 3 + h.rng() % 2) % E);
    }
  }
  return ids;
}

// ES stacked experts' fp8 weights: e4m3 bytes of values in [-1, 1) with per-128x128-block scales
// around 0.1 / 448 · 4. gate_up is [ES, 2I, d], down [ES, d, I].
struct Fp8Experts {
  Shape gate_up_shape, down_shape;
  std::vector<uint8_t> gate_up, down;
  std::vector<float> gate_up_scales, down_scales;

  Tensor GateUpOn(Backend& b) const { return Fp8Weight(b, gate_up, gate_up_scales, gate_up_shape); }
  Tensor DownOn(Backend& b) const { return Fp8Weight(b, down, down_scales, down_shape); }

 private:
  static Tensor Fp8Weight(Backend& b, const std::vector<uint8_t>& v, const std::vector<float>& scales, Shape shape) {
    auto w = b.CreateFp8BlockWeight(v, scales, shape);
    PARITY_CHECK_OK(w.status());
    return *w;
  }
};

inline Fp8Experts RandFp8Experts(Harness& h, int64_t ES, int64_t d, int64_t I) {
  auto bytes = [&](int64_t n) {
    std::vector<uint8_t> b(n);
    for (auto& v : b) v = FloatToFp8E4M3(std::uniform_real_distribution<float>(-448.0f, 448.0f)(h.rng));
    return b;
  };
  auto scales = [&](int64_t n) {
    std::vector<float> v(n);
    for (auto& f : v) f = std::uniform_real_distribution<float>(0.5f, 2.0f)(h.rng) * 0.1f / 448.0f;
    return v;
  };
  Fp8Experts w;
  w.gate_up_shape = {ES, 2 * I, d};
  w.down_shape = {ES, d, I};
  w.gate_up = bytes(ES * 2 * I * d);
  w.down = bytes(ES * d * I);
  w.gate_up_scales = scales(ES * (2 * I / 128) * (d / 128));
  w.down_scales = scales(ES * (d / 128) * (I / 128));
  return w;
}

// One MoeExperts call's host inputs (T tokens of width d, top-K over E routed experts, S fused
// shared experts). shared: the shared experts' output, added in place into out (nullptr: none).
// valid >= 0 sets num_valid_tokens. Expert parallelism: with total > 0 the E routed experts are
// [first, first + E) of the model's `total`, which ids name.
struct MoeExpertsInputs {
  int64_t T, E, K, d, S = 0;
  int32_t valid = -1;
  int64_t first = 0, total = 0;
  const std::vector<float>& x;
  const std::vector<int32_t>& ids;
  const std::vector<float>& weights;
  const std::vector<float>* shared = nullptr;
};

struct MoeExpertsResult {
  std::vector<float> out;
  std::vector<int64_t> counts;  // expert_counts, E of them
};

// Runs MoeExperts on `b` with zeroed expert_counts and returns what it wrote.
inline MoeExpertsResult RunMoeExperts(Backend& b, const MoeExpertsInputs& in, const Tensor& gate_up,
                                      const Tensor& down) {
  const int64_t T = in.T, d = in.d;
  MoeExpertsExtras extras;
  extras.num_shared_experts = in.S;
  extras.first_expert = in.first;
  extras.num_routed_experts = in.total;
  extras.expert_counts = Out(b, {in.E}, DType::kI64);
  PARITY_CHECK_OK(b.Zero(extras.expert_counts));
  if (in.valid >= 0) extras.num_valid_tokens = I32(b, {in.valid}, {1});
  Tensor out = Out(b, {T, d}, b.activation_dtype());
  if (in.shared != nullptr) {  // in place, as the model calls it
    out = Act(b, *in.shared, {T, d});
    extras.shared_out = out;
  }
  PARITY_CHECK_OK(b.MoeExperts(Act(b, in.x, {T, d}), I32(b, in.ids, {T, in.K}), F32(b, in.weights, {T, in.K}), gate_up,
                               down, out, extras));
  MoeExpertsResult r{.out = Down(b, out), .counts = std::vector<int64_t>(in.E)};
  PARITY_CHECK_OK(
      b.CopyToHost(extras.expert_counts, {reinterpret_cast<uint8_t*>(r.counts.data()), r.counts.size() * 8}));
  return r;
}

}  // namespace moeserve::parity

#endif  // MOESERVE_TESTS_CUDA_PARITY_MOE_UTIL_H_
