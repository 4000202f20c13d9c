// Parity cases for paged attention (MHA/GQA): the KV-cache write and decode/prefill attention.

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/cuda/parity_harness.h"

namespace moeserve::parity {

// Rope + WriteKvCache fused: q rotated in place, rotated k and v in the cache (both styles, full and
// partial rotary dims, a skipped slot). The cache starts as random rows so unwritten slots compare.
static void RopeWriteKvCacheCases(Harness& h) {
  if (!h.Wanted("RopeWriteKvCache")) return;
  const int bs = 16;
  const int64_t max_pos = 4096;
  for (auto [H, Hkv, D, rot] : {std::tuple<int64_t, int64_t, int64_t, int32_t>{8, 2, 128, 128},
                                {4, 4, 64, 64}, {8, 1, 128, 64}, {4, 2, 16, 8}}) {
    std::vector<float> cs(max_pos * rot);
    for (int64_t p = 0; p < max_pos; ++p) {
      for (int64_t i = 0; i < rot / 2; ++i) {
        const double a = p * std::pow(500000.0, -2.0 * i / rot);
        cs[p * rot + i] = static_cast<float>(std::cos(a));
        cs[p * rot + rot / 2 + i] = static_cast<float>(std::sin(a));
      }
    }
    for (RopeStyle style : {RopeStyle::kNeox, RopeStyle::kInterleaved}) {
      Layout l = MakeLayout(h, {{33, 33}, {5, 1}, {129, 1}, {3000, 17}}, bs);
      const int64_t T = l.tokens, NB = l.num_blocks;
      l.slots[1] = -1;  // a token whose cache write is skipped
      std::vector<int32_t> pos(T);
      for (int64_t t = 0; t < T; ++t) pos[t] = static_cast<int32_t>(h.rng() % max_pos);
      auto q = h.Rand(T * H * D), k = h.Rand(T * Hkv * D), v = h.Rand(T * Hkv * D);
      auto kc = h.Rand(NB * bs * Hkv * D), vc = h.Rand(NB * bs * Hkv * D);
      Tensor qc = Act(*h.cpu, q, {T, H, D}), qg = Act(*h.gpu, q, {T, H, D});
      Tensor kcc = Act(*h.cpu, kc, {NB, bs, Hkv, D}), vcc = Act(*h.cpu, vc, {NB, bs, Hkv, D});
      Tensor kcg = Act(*h.gpu, kc, {NB, bs, Hkv, D}), vcg = Act(*h.gpu, vc, {NB, bs, Hkv, D});
      Tensor kg = Act(*h.gpu, k, {T, Hkv, D});
      AttentionMetadata mc = Meta(*h.cpu, l, bs), mg = Meta(*h.gpu, l, bs);
      PARITY_CHECK_OK(h.cpu->RopeWriteKvCache(qc, Act(*h.cpu, k, {T, Hkv, D}), Act(*h.cpu, v, {T, Hkv, D}),
                                              I32(*h.cpu, pos, {T}), F32(*h.cpu, cs, {max_pos, rot}), rot, style,
                                              mc, kcc, vcc));
      PARITY_CHECK_OK(h.gpu->RopeWriteKvCache(qg, kg, Act(*h.gpu, v, {T, Hkv, D}), I32(*h.gpu, pos, {T}),
                                              F32(*h.gpu, cs, {max_pos, rot}), rot, style, mg, kcg, vcg));
      const std::string name = absl::StrCat(style == RopeStyle::kNeox ? " neox" : " interleaved", " T=", T,
                                            " H=", H, " Hkv=", Hkv, " D=", D, " rot=", rot);
      Report(h, "RopeWriteKvCache q" + name, Down(*h.gpu, qg), Down(*h.cpu, qc), kBf16Bound);
      Report(h, "RopeWriteKvCache k_cache" + name, Down(*h.gpu, kcg), Down(*h.cpu, kcc), kBf16Bound);
      Report(h, "RopeWriteKvCache v_cache" + name, Down(*h.gpu, vcg), Down(*h.cpu, vcc), 1e-6);
      Report(h, "RopeWriteKvCache k unchanged" + name, Down(*h.gpu, kg), k, 0.0);
    }
  }
}

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
  RopeWriteKvCacheCases(h);
}

}  // namespace moeserve::parity
