#ifndef MOESERVE_TESTS_CUDA_PARITY_HARNESS_H_
#define MOESERVE_TESTS_CUDA_PARITY_HARNESS_H_

// Shared pieces of the CPU vs CUDA parity harness (backend_parity): the case context, input
// builders for both backends, and the one-line report. Each parity_*.cc file holds the cases of one
// area of ops; parity_main.cc runs them all.
//
// Inputs are fresh random values rounded to bf16 so both backends see identical numbers; outputs
// are poisoned with NaN first so unwritten elements show; Report prints
//   PASS|FAIL  <op> <shape>  err=<‖out − ref‖ / ‖ref‖>  (bound)
// and NaN never passes.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "server/backend/backend.h"

namespace moeserve::parity {

// fp32 CPU reference vs bf16 activations with fp32 accumulation (GPU.md).
constexpr double kBf16Bound = 1e-2;

struct Harness {
  std::unique_ptr<Backend> cpu, gpu;
  std::mt19937 rng{1234};
  std::string filter;
  int passed = 0, failed = 0;

  bool Wanted(const std::string& name) const { return filter.empty() || name.find(filter) != std::string::npos; }
  // n values uniform in [lo, hi), rounded to bf16.
  std::vector<float> Rand(int64_t n, float lo = -1.0f, float hi = 1.0f);
};

[[noreturn]] void Die(const absl::Status& s, const std::string& where);
#define PARITY_CHECK_OK(expr)                         \
  do {                                                \
    absl::Status _s = (expr);                         \
    if (!_s.ok()) ::moeserve::parity::Die(_s, #expr); \
  } while (0)

// An activation-dtype tensor holding `v` (f32 on the CPU, bf16 on CUDA).
Tensor Act(Backend& b, const std::vector<float>& v, Shape shape);
Tensor F32(Backend& b, const std::vector<float>& v, Shape shape);
Tensor I32(Backend& b, const std::vector<int32_t>& v, Shape shape);
Tensor Weight(Backend& b, const std::vector<float>& v, Shape shape);
// Uninitialised output, poisoned with NaN (0xff bytes) so unwritten elements show.
Tensor Out(Backend& b, Shape shape, DType dtype);
std::vector<float> Down(Backend& b, const Tensor& t);

void Report(Harness& h, const std::string& name, const std::vector<float>& out, const std::vector<float>& ref,
            double bound, const std::string& extra = "");

// A batch of sequences (context length, query length) over shuffled physical blocks.
struct Layout {
  std::vector<int32_t> qsl, seq_lens, block_tables, slots;
  int32_t max_q = 0, max_len = 0, max_blocks = 0, tokens = 0, num_blocks = 0;
};
Layout MakeLayout(Harness& h, const std::vector<std::pair<int, int>>& seqs, int bs);
AttentionMetadata Meta(Backend& b, const Layout& l, int bs);
// Labelled (context, query) batches for attention cases: decodes at block boundaries ±1, chunked
// prefill over cached context, a mixed batch, and 256 decodes.
using SeqShape = std::pair<int, int>;
std::vector<std::pair<std::string, std::vector<SeqShape>>> AttentionBatches(Harness& h);

// The case groups, one per parity_*.cc file.
void RowOpCases(Harness& h);      // parity_row_ops.cc: norms, add, SiLU, gathers, RoPE, GEMMs
void AttentionCases(Harness& h);  // parity_attention.cc: KV write + paged attention
void MlaCases(Harness& h);        // parity_mla.cc: latent cache write + MLA attention
void MoeCases(Harness& h);        // parity_moe.cc: routing + experts
void MoeW8A8Cases(Harness& h);    // parity_moe_w8a8.cc: fp8 x fp8 experts (prefill batches)
void SamplingCases(Harness& h);   // parity_sampling.cc: device sampling vs the host Sampler

}  // namespace moeserve::parity

#endif  // MOESERVE_TESTS_CUDA_PARITY_HARNESS_H_
