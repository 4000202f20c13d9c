// Parity cases for MLA: the latent cache write (plain and fused with the rope of the key part) and
// absorbed attention over latent rows, on both kernels (tensor-core L/R = 512/64 and the generic
// path for other shapes), across split-KV boundaries and long contexts.

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/cuda/parity_harness.h"

namespace moeserve::parity {
namespace {

struct MlaShape {
  int64_t H, L, R;
};

// One PagedMlaAttention case: random cache and queries over layout `seqs`, CPU vs CUDA.
void AttentionCase(Harness& h, const std::string& label, const std::vector<SeqShape>& seqs, MlaShape s, int bs) {
  const std::string name = absl::StrCat("PagedMlaAttention ", label, " H=", s.H, " L=", s.L, " R=", s.R);
  if (!h.Wanted(name)) return;
  Layout l = MakeLayout(h, seqs, bs);
  const int64_t T = l.tokens, NB = l.num_blocks, H = s.H, L = s.L, R = s.R;
  auto cache = h.Rand(NB * bs * (L + R)), ql = h.Rand(T * H * L), qp = h.Rand(T * H * R);
  AttentionMetadata mc = Meta(*h.cpu, l, bs), mg = Meta(*h.gpu, l, bs);
  Tensor cc = Act(*h.cpu, cache, {NB, bs, L + R}), cg = Act(*h.gpu, cache, {NB, bs, L + R});
  const float scale = 1.0f / std::sqrt(static_cast<float>(L + R));
  Tensor oc = Out(*h.cpu, {T, H, L}, DType::kF32), og = Out(*h.gpu, {T, H, L}, DType::kBF16);
  PARITY_CHECK_OK(h.cpu->PagedMlaAttention(Act(*h.cpu, ql, {T, H, L}), Act(*h.cpu, qp, {T, H, R}), cc, mc, scale, oc));
  PARITY_CHECK_OK(h.gpu->PagedMlaAttention(Act(*h.gpu, ql, {T, H, L}), Act(*h.gpu, qp, {T, H, R}), cg, mg, scale, og));
  const auto got = Down(*h.gpu, og);
  // Run it again on the same inputs: a different result is a race.
  PARITY_CHECK_OK(h.gpu->PagedMlaAttention(Act(*h.gpu, ql, {T, H, L}), Act(*h.gpu, qp, {T, H, R}), cg, mg, scale, og));
  const bool same = Down(*h.gpu, og) == got;
  Report(h, name, same ? got : std::vector<float>(got.size(), NAN), Down(*h.cpu, oc), kBf16Bound,
         same ? "" : " (differs between two runs: race)");
}

void CacheWriteCases(Harness& h, const std::string& label, const std::vector<SeqShape>& seqs, MlaShape s, int bs) {
  const std::string suffix = absl::StrCat(label, " L=", s.L, " R=", s.R);
  if (!h.Wanted("WriteMlaCache " + suffix) && !h.Wanted("RopeWriteMlaCache " + suffix)) return;
  Layout l = MakeLayout(h, seqs, bs);
  const int64_t T = l.tokens, NB = l.num_blocks, L = s.L, R = s.R, max_pos = 4096;
  auto cache = h.Rand(NB * bs * (L + R)), kv = h.Rand(T * L), pe = h.Rand(T * R);
  AttentionMetadata mc = Meta(*h.cpu, l, bs), mg = Meta(*h.gpu, l, bs);
  {
    Tensor cc = Act(*h.cpu, cache, {NB, bs, L + R}), cg = Act(*h.gpu, cache, {NB, bs, L + R});
    PARITY_CHECK_OK(h.cpu->WriteMlaCache(Act(*h.cpu, kv, {T, L}), Act(*h.cpu, pe, {T, R}), mc, cc));
    PARITY_CHECK_OK(h.gpu->WriteMlaCache(Act(*h.gpu, kv, {T, L}), Act(*h.gpu, pe, {T, R}), mg, cg));
    Report(h, "WriteMlaCache " + suffix, Down(*h.gpu, cg), Down(*h.cpu, cc), 1e-6);
  }
  // Rope tables hold cos/sin of real angles; positions anywhere in the table.
  std::vector<float> cos_sin(max_pos * R);
  for (int64_t p = 0; p < max_pos; ++p) {
    for (int64_t i = 0; i < R / 2; ++i) {
      const double a = p * std::pow(10000.0, -2.0 * i / R);
      cos_sin[p * R + i] = static_cast<float>(std::cos(a));
      cos_sin[p * R + R / 2 + i] = static_cast<float>(std::sin(a));
    }
  }
  std::vector<int32_t> pos(T);
  for (auto& p : pos) p = static_cast<int32_t>(h.rng() % max_pos);
  for (RopeStyle style : {RopeStyle::kInterleaved, RopeStyle::kNeox}) {
    const std::string name =
        absl::StrCat("RopeWriteMlaCache ", suffix, style == RopeStyle::kNeox ? " neox" : " interleaved");
    Tensor cc = Act(*h.cpu, cache, {NB, bs, L + R}), cg = Act(*h.gpu, cache, {NB, bs, L + R});
    Tensor pe_g = Act(*h.gpu, pe, {T, R});
    PARITY_CHECK_OK(h.cpu->RopeWriteMlaCache(Act(*h.cpu, kv, {T, L}), Act(*h.cpu, pe, {T, R}), I32(*h.cpu, pos, {T}),
                                             F32(*h.cpu, cos_sin, {max_pos, R}), style, mc, cc));
    PARITY_CHECK_OK(h.gpu->RopeWriteMlaCache(Act(*h.gpu, kv, {T, L}), pe_g, I32(*h.gpu, pos, {T}),
                                             F32(*h.gpu, cos_sin, {max_pos, R}), style, mg, cg));
    // One bf16 rounding of the rotated values: ~2e-3 relative.
    Report(h, name, Down(*h.gpu, cg), Down(*h.cpu, cc), 5e-3);
    Report(h, name + " k_pe unchanged", Down(*h.gpu, pe_g), pe, 0.0);
  }
}

}  // namespace

void MlaCases(Harness& h) {
  const int bs = 16;
  const MlaShape tiny{4, 32, 8}, odd{3, 20, 6}, v2lite{16, 512, 64}, v3{128, 512, 64};
  const auto batches = AttentionBatches(h);
  for (const auto& [label, seqs] : batches) {
    for (MlaShape s : {tiny, v2lite}) CacheWriteCases(h, label, seqs, s, bs);
    for (MlaShape s : {tiny, odd, v2lite, v3}) AttentionCase(h, label, seqs, s, bs);
  }
  // Split-KV boundaries: one decode (few CTAs, so the plan splits) with contexts at tile (32) and
  // per-split boundaries ±1; 256/257 rows split in two, 4 tiles each / 5 + 4.
  for (int ctx : {31, 32, 33, 127, 128, 129, 255, 256, 257, 1023, 1024, 1025}) {
    for (MlaShape s : {v2lite, v3}) AttentionCase(h, absl::StrCat("split decode ctx=", ctx), {{ctx, 1}}, s, bs);
  }
  // A long sequence beside a short one: the short one's later splits are empty.
  for (MlaShape s : {v2lite, v3}) AttentionCase(h, "split decode ctx=4000,5", {{4000, 1}, {5, 1}}, s, bs);
  // Long contexts (4k-32k).
  for (MlaShape s : {v2lite, v3}) AttentionCase(h, "long decode ctx=32768", {{32768, 1}}, s, bs);
  {
    std::vector<SeqShape> four;
    for (int i = 0; i < 4; ++i) four.push_back({4096 + static_cast<int>(h.rng() % 4096), 1});
    for (MlaShape s : {v2lite, v3}) AttentionCase(h, "long decode batch=4 ctx 4k-8k", four, s, bs);
  }
  // Chunked prefill over cached context, alone and mixed with decodes.
  for (MlaShape s : {tiny, odd, v2lite, v3}) {
    AttentionCase(h, "chunked prefill 64@300", {{300, 64}}, s, bs);
    AttentionCase(h, "mixed chunk 40@1000 + 3 decodes", {{1000, 40}, {7, 1}, {2049, 1}, {64, 1}}, s, bs);
  }
  // Batch 128 of decodes at short contexts (one wave without splits).
  {
    std::vector<SeqShape> b128;
    for (int i = 0; i < 128; ++i) b128.push_back({1 + static_cast<int>(h.rng() % 300), 1});
    for (MlaShape s : {v2lite, v3}) AttentionCase(h, "decode batch=128 ctx<=300", b128, s, bs);
  }
  // A block size other than 16.
  AttentionCase(h, "bs=64 mixed", {{200, 30}, {65, 1}, {64, 1}}, v2lite, 64);
}

}  // namespace moeserve::parity
