// Parity cases for paged attention (MHA/GQA): the KV-cache write and decode/prefill attention.

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/cuda/parity_harness.h"

namespace moeserve::parity {

void AttentionCases(Harness& h) {
  const int bs = 16;
  const auto batches = AttentionBatches(h);
  for (const auto& [label, seqs] : batches) {
    Layout l = MakeLayout(h, seqs, bs);
    const int64_t T = l.tokens, NB = l.num_blocks;
    for (auto [H, Hkv, D] : {std::tuple<int64_t, int64_t, int64_t>{4, 4, 64}, {8, 2, 128}, {4, 2, 16}}) {
      if (!h.Wanted("PagedAttention") && !h.Wanted("WriteKvCache")) break;
      const std::string name = absl::StrCat(label, " H=", H, " Hkv=", Hkv, " D=", D);
      auto kc = h.Rand(NB * bs * Hkv * D), vc = h.Rand(NB * bs * Hkv * D), q = h.Rand(T * H * D);
      auto kn = h.Rand(T * Hkv * D), vn = h.Rand(T * Hkv * D);
      AttentionMetadata mc = Meta(*h.cpu, l, bs), mg = Meta(*h.gpu, l, bs);
      Tensor kcc = Act(*h.cpu, kc, {NB, bs, Hkv, D}), vcc = Act(*h.cpu, vc, {NB, bs, Hkv, D});
      Tensor kcg = Act(*h.gpu, kc, {NB, bs, Hkv, D}), vcg = Act(*h.gpu, vc, {NB, bs, Hkv, D});
      PARITY_CHECK_OK(h.cpu->WriteKvCache(Act(*h.cpu, kn, {T, Hkv, D}), Act(*h.cpu, vn, {T, Hkv, D}), mc, kcc, vcc));
      PARITY_CHECK_OK(h.gpu->WriteKvCache(Act(*h.gpu, kn, {T, Hkv, D}), Act(*h.gpu, vn, {T, Hkv, D}), mg, kcg, vcg));
      Report(h, "WriteKvCache k " + name, Down(*h.gpu, kcg), Down(*h.cpu, kcc), 1e-6);
      Report(h, "WriteKvCache v " + name, Down(*h.gpu, vcg), Down(*h.cpu, vcc), 1e-6);
      const float scale = 1.0f / std::sqrt(static_cast<float>(D));
      Tensor oc = Out(*h.cpu, {T, H, D}, DType::kF32), og = Out(*h.gpu, {T, H, D}, DType::kBF16);
      PARITY_CHECK_OK(h.cpu->PagedAttention(Act(*h.cpu, q, {T, H, D}), kcc, vcc, mc, scale, oc));
      PARITY_CHECK_OK(h.gpu->PagedAttention(Act(*h.gpu, q, {T, H, D}), kcg, vcg, mg, scale, og));
      Report(h, "PagedAttention " + name, Down(*h.gpu, og), Down(*h.cpu, oc), kBf16Bound);
    }
  }
}

}  // namespace moeserve::parity
