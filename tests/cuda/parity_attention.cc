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
                                {4, 4, 64, 64},
                                {8, 1, 128, 64},
                                {4, 2, 16, 8}}) {
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
                                              I32(*h.cpu, pos, {T}), F32(*h.cpu, cs, {max_pos, rot}), rot, style, mc,
                                              kcc, vcc));
      PARITY_CHECK_OK(h.gpu->RopeWriteKvCache(qg, kg, Act(*h.gpu, v, {T, Hkv, D}), I32(*h.gpu, pos, {T}),
                                              F32(*h.gpu, cs, {max_pos, rot}), rot, style, mg, kcg, vcg));
      const std::string name = absl::StrCat(style == RopeStyle::kNeox ? " neox" : " interleaved", " T=", T, " H=", H,
                                            " Hkv=", Hkv, " D=", D, " rot=", rot);
      Report(h, "RopeWriteKvCache q" + name, Down(*h.gpu, qg), Down(*h.cpu, qc), kBf16Bound);
      Report(h, "RopeWriteKvCache k_cache" + name, Down(*h.gpu, kcg), Down(*h.cpu, kcc), kBf16Bound);
      Report(h, "RopeWriteKvCache v_cache" + name, Down(*h.gpu, vcg), Down(*h.cpu, vcc), 1e-6);
      Report(h, "RopeWriteKvCache k unchanged" + name, Down(*h.gpu, kg), k, 0.0);
    }
  }
}

// PagedAttention over a random cache (no write) for the flash kernels: decode at block (16), tile
// (64) and split-partition boundaries ±1, batches 1 to 256, contexts to 32k, GQA ratios 1/4/8 and
// one wider than an mma tile (32), D 64/128, chunked prefill over cached context, mixed batches;
// other power-of-two block sizes (the KV layout's, read by the kernels as a shift).
static void FlashAttentionCases(Harness& h) {
  if (!h.Wanted("PagedAttention")) return;
  struct Case {
    std::string label;
    std::vector<SeqShape> seqs;
    int64_t H, Hkv, D;
    int bs = 16;
  };
  std::vector<Case> cases;
  const std::vector<SeqShape> boundaries = {{1, 1},   {15, 1},  {16, 1},  {17, 1},   {63, 1},   {64, 1},  {65, 1},
                                            {127, 1}, {128, 1}, {129, 1}, {1023, 1}, {1024, 1}, {1025, 1}};
  for (auto [H, Hkv, D] :
       {std::tuple<int64_t, int64_t, int64_t>{8, 8, 64}, {16, 4, 128}, {32, 4, 128}, {16, 2, 64}, {32, 1, 128}}) {
    cases.push_back({"decode ctx=1..1025 boundaries", boundaries, H, Hkv, D});
  }
  // One sequence: the split count is largest, partitions end at 64-multiples.
  for (int ctx : {65, 1000, 1025, 4095, 4097}) {
    cases.push_back({absl::StrCat("decode batch=1 ctx=", ctx), {{ctx, 1}}, 32, 8, 128});
    cases.push_back({absl::StrCat("decode batch=1 ctx=", ctx), {{ctx, 1}}, 8, 8, 64});
  }
  cases.push_back({"decode batch=1 ctx=32768", {{32768, 1}}, 16, 2, 128});
  cases.push_back({"decode batch=2 ctx=32767,32769", {{32767, 1}, {32769, 1}}, 8, 1, 64});
  {
    std::vector<SeqShape> b256, b64;
    for (int i = 0; i < 256; ++i) b256.push_back({1 + static_cast<int>(h.rng() % 2000), 1});
    for (int i = 0; i < 64; ++i) b64.push_back({1 + static_cast<int>(h.rng() % 5000), 1});
    cases.push_back({"decode batch=256 ctx<=2000", b256, 32, 4, 128});
    cases.push_back({"decode batch=64 ctx<=5000", b64, 16, 4, 64});
    cases.push_back({"decode batch=64 ctx<=5000", b64, 8, 8, 128});
  }
  const std::vector<SeqShape> prefill = {{17, 17}, {200, 200}, {64, 16}, {1000, 100}, {129, 65}};
  const std::vector<SeqShape> mixed = {{33, 33}, {5, 1}, {129, 1}, {300, 37}, {16, 1}, {2000, 1}, {80, 2}};
  for (auto [H, Hkv, D] : {std::tuple<int64_t, int64_t, int64_t>{8, 8, 64},
                           {8, 8, 128},
                           {16, 4, 128},
                           {32, 4, 64},
                           {32, 4, 128},
                           {32, 1, 128}}) {
    cases.push_back({"prefill/chunked over cache", prefill, H, Hkv, D});
    cases.push_back({"mixed prefill+decode", mixed, H, Hkv, D});
  }
  cases.push_back({"chunk 64 over ctx=32768", {{32768, 64}, {7, 1}}, 8, 2, 128});
  for (int bs : {1, 8, 32, 128}) {
    cases.push_back({absl::StrCat("block=", bs, " decode boundaries"), boundaries, 16, 4, 128, bs});
    cases.push_back({absl::StrCat("block=", bs, " mixed prefill+decode"), mixed, 8, 8, 64, bs});
  }
  for (const Case& c : cases) {
    const int bs = c.bs;
    Layout l = MakeLayout(h, c.seqs, bs);
    const int64_t T = l.tokens, NB = l.num_blocks, H = c.H, Hkv = c.Hkv, D = c.D;
    const std::string name = absl::StrCat(c.label, " H=", H, " Hkv=", Hkv, " D=", D);
    auto kc = h.Rand(NB * bs * Hkv * D), vc = h.Rand(NB * bs * Hkv * D), q = h.Rand(T * H * D, -2.0f, 2.0f);
    AttentionMetadata mc = Meta(*h.cpu, l, bs), mg = Meta(*h.gpu, l, bs);
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    Tensor oc = Out(*h.cpu, {T, H, D}, DType::kF32), og = Out(*h.gpu, {T, H, D}, DType::kBF16);
    PARITY_CHECK_OK(h.cpu->PagedAttention(Act(*h.cpu, q, {T, H, D}), Act(*h.cpu, kc, {NB, bs, Hkv, D}),
                                          Act(*h.cpu, vc, {NB, bs, Hkv, D}), mc, scale, oc));
    PARITY_CHECK_OK(h.gpu->PagedAttention(Act(*h.gpu, q, {T, H, D}), Act(*h.gpu, kc, {NB, bs, Hkv, D}),
                                          Act(*h.gpu, vc, {NB, bs, Hkv, D}), mg, scale, og));
    const auto got = Down(*h.gpu, og);
    Report(h, "PagedAttention flash " + name, got, Down(*h.cpu, oc), kBf16Bound);
    // Same inputs again: a result that changes between runs is a race.
    Tensor og2 = Out(*h.gpu, {T, H, D}, DType::kBF16);
    PARITY_CHECK_OK(h.gpu->PagedAttention(Act(*h.gpu, q, {T, H, D}), Act(*h.gpu, kc, {NB, bs, Hkv, D}),
                                          Act(*h.gpu, vc, {NB, bs, Hkv, D}), mg, scale, og2));
    Report(h, "PagedAttention flash rerun " + name, Down(*h.gpu, og2), got, 0.0);
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
  FlashAttentionCases(h);
}

}  // namespace moeserve::parity
