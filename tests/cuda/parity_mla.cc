// Parity cases for MLA: the latent cache write and absorbed attention over latent rows.

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/cuda/parity_harness.h"

namespace moeserve::parity {

void MlaCases(Harness& h) {
  const int bs = 16;
  const auto batches = AttentionBatches(h);
  for (const auto& [label, seqs] : batches) {
    Layout l = MakeLayout(h, seqs, bs);
    const int64_t T = l.tokens, NB = l.num_blocks;
    for (auto [H, L, R] : {std::tuple<int64_t, int64_t, int64_t>{4, 32, 8}, {16, 512, 64}}) {
      if (!h.Wanted("Mla")) break;
      const std::string name = absl::StrCat(label, " H=", H, " L=", L, " R=", R);
      auto cache = h.Rand(NB * bs * (L + R)), ql = h.Rand(T * H * L), qp = h.Rand(T * H * R);
      auto kv = h.Rand(T * L), pe = h.Rand(T * R);
      AttentionMetadata mc = Meta(*h.cpu, l, bs), mg = Meta(*h.gpu, l, bs);
      Tensor cc = Act(*h.cpu, cache, {NB, bs, L + R}), cg = Act(*h.gpu, cache, {NB, bs, L + R});
      PARITY_CHECK_OK(h.cpu->WriteMlaCache(Act(*h.cpu, kv, {T, L}), Act(*h.cpu, pe, {T, R}), mc, cc));
      PARITY_CHECK_OK(h.gpu->WriteMlaCache(Act(*h.gpu, kv, {T, L}), Act(*h.gpu, pe, {T, R}), mg, cg));
      Report(h, "WriteMlaCache " + name, Down(*h.gpu, cg), Down(*h.cpu, cc), 1e-6);
      const float scale = 1.0f / std::sqrt(static_cast<float>(L + R));
      Tensor oc = Out(*h.cpu, {T, H, L}, DType::kF32), og = Out(*h.gpu, {T, H, L}, DType::kBF16);
      PARITY_CHECK_OK(h.cpu->PagedMlaAttention(Act(*h.cpu, ql, {T, H, L}), Act(*h.cpu, qp, {T, H, R}), cc, mc, scale, oc));
      PARITY_CHECK_OK(h.gpu->PagedMlaAttention(Act(*h.gpu, ql, {T, H, L}), Act(*h.gpu, qp, {T, H, R}), cg, mg, scale, og));
      Report(h, "PagedMlaAttention " + name, Down(*h.gpu, og), Down(*h.cpu, oc), kBf16Bound);
    }
  }
}

}  // namespace moeserve::parity
