// Paged KV cache writes and paged attention (standard/GQA and MLA) against naive references over
// mixed batches: decode and chunked-prefill sequences with contexts around the block size.

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/cpu/cpu_backend.h"
#include "tests/backend/backend_test_util.h"

namespace moeserve {
namespace {

using ::moeserve::testing::Empty;
using ::moeserve::testing::kTol;
using ::moeserve::testing::MakeF32;
using ::moeserve::testing::MakeI32;
using ::moeserve::testing::Random;
using ::moeserve::testing::ReadF32;
using ::moeserve::testing::RelErr;
using ::testing::HasSubstr;

struct SeqSpec {
  int32_t q_len;
  int32_t ctx;
};

// Sequences of 1 (decode) and several (prefill chunk) query tokens with contexts 1, 15, 16, 17, 33
// for block size 16, all in one batch.
const std::vector<SeqSpec> kMixedBatch = {{1, 1},  {1, 15},  {1, 16}, {1, 17},  {1, 33}, {33, 33},
                                          {5, 33}, {16, 16}, {3, 17}, {15, 15}, {2, 16}};

// A batch laid out over a shuffled paged cache. Every cache slot that no sequence owns, and every
// slot of this step's tokens until WriteKvCache runs, holds NaN: reading one shows in the output.
struct PagedBatch {
  int64_t T = 0, S = 0, NB = 0, BS = 0, max_blocks = 0;
  std::vector<int32_t> qsl, seq_lens, block_tables, slot_mapping, token_seq;
  std::vector<std::vector<float>> k_rows, v_rows;  // per sequence: [ctx, row]
  std::vector<float> k_cache, v_cache;             // [NB, BS, row] host images, cached part only

  PagedBatch(const std::vector<SeqSpec>& specs, int64_t bs, int64_t k_row, int64_t v_row, std::mt19937& rng) {
    BS = bs;
    S = static_cast<int64_t>(specs.size());
    int64_t total_blocks = 0;
    for (const auto& sp : specs) {
      const int64_t nb = (sp.ctx + BS - 1) / BS;
      total_blocks += nb;
      max_blocks = std::max(max_blocks, nb + 1);  // one unused padding entry per row
    }
    NB = total_blocks + 3;
    std::vector<int32_t> phys(NB);
    for (int32_t i = 0; i < NB; ++i) phys[i] = i;
    std::shuffle(phys.begin(), phys.end(), rng);
    block_tables.assign(S * max_blocks, -1);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    k_cache.assign(NB * BS * k_row, nan);
    v_cache.assign(NB * BS * v_row, nan);
    qsl.push_back(0);
    int64_t next_block = 0;
    for (int64_t s = 0; s < S; ++s) {
      const SeqSpec sp = specs[s];
      for (int64_t b = 0; b < (sp.ctx + BS - 1) / BS; ++b) {
        block_tables[s * max_blocks + b] = phys[next_block++];
      }
      k_rows.push_back(Random(rng, sp.ctx * k_row));
      v_rows.push_back(Random(rng, sp.ctx * v_row));
      for (int64_t p = 0; p < sp.ctx; ++p) {
        const int64_t slot = block_tables[s * max_blocks + p / BS] * BS + p % BS;
        if (p < sp.ctx - sp.q_len) {  // already cached
          std::copy_n(k_rows[s].begin() + p * k_row, k_row, k_cache.begin() + slot * k_row);
          std::copy_n(v_rows[s].begin() + p * v_row, v_row, v_cache.begin() + slot * v_row);
        } else {
          slot_mapping.push_back(static_cast<int32_t>(slot));
          token_seq.push_back(static_cast<int32_t>(s));
        }
      }
      qsl.push_back(qsl.back() + sp.q_len);
      seq_lens.push_back(sp.ctx);
    }
    T = qsl.back();
  }

  // This step's rows (the new tokens'), [T, row].
  std::vector<float> NewRows(const std::vector<std::vector<float>>& rows, int64_t row) const {
    std::vector<float> out;
    for (int64_t s = 0; s < S; ++s) {
      const int64_t q = qsl[s + 1] - qsl[s];
      out.insert(out.end(), rows[s].begin() + (seq_lens[s] - q) * row, rows[s].end());
    }
    return out;
  }

  AttentionMetadata Meta(Backend& b) const {
    AttentionMetadata m;
    m.num_seqs = static_cast<int32_t>(S);
    m.num_tokens = static_cast<int32_t>(T);
    for (int64_t s = 0; s < S; ++s) {
      m.max_query_len = std::max(m.max_query_len, qsl[s + 1] - qsl[s]);
      m.max_seq_len = std::max(m.max_seq_len, seq_lens[s]);
    }
    m.block_size = static_cast<int32_t>(BS);
    m.query_start_loc = MakeI32(b, Shape{S + 1}, qsl);
    m.seq_lens = MakeI32(b, Shape{S}, seq_lens);
    m.block_tables = MakeI32(b, Shape{S, max_blocks}, block_tables);
    m.slot_mapping = MakeI32(b, Shape{T}, slot_mapping);
    return m;
  }
};

class CpuAttentionTest : public ::testing::Test {
 protected:
  // Inputs of the fused RoPE + cache-write ops over `pb`: its metadata with slot `skipped` set to -1
  // (no cache write), positions (t * stride) % max_pos, and a random [max_pos, rot] cos/sin table.
  struct RopeInputs {
    AttentionMetadata meta;
    Tensor positions, cos_sin;
  };
  RopeInputs MakeRopeInputs(const PagedBatch& pb, int64_t skipped, int64_t stride, int64_t max_pos, int64_t rot) {
    RopeInputs in{.meta = pb.Meta(b_)};
    auto slots = pb.slot_mapping;
    slots[skipped] = -1;
    in.meta.slot_mapping = MakeI32(b_, Shape{pb.T}, slots);
    std::vector<int32_t> pos(pb.T);
    for (int64_t t = 0; t < pb.T; ++t) pos[t] = static_cast<int32_t>((t * stride) % max_pos);
    in.positions = MakeI32(b_, Shape{pb.T}, pos);
    in.cos_sin = MakeF32(b_, Shape{max_pos, rot}, Random(rng_, max_pos * rot));
    return in;
  }

  CpuBackend b_{3};
  std::mt19937 rng_{99};
};

TEST_F(CpuAttentionTest, PagedAttentionMatchesNaive) {
  const int64_t H = 4, BS = 16;
  for (int64_t Hkv : {4, 2, 1}) {
    for (auto [D, Dv] : {std::pair<int64_t, int64_t>{8, 8}, {12, 5}, {64, 64}}) {
      SCOPED_TRACE(::testing::Message() << "Hkv=" << Hkv << " D=" << D << " Dv=" << Dv);
      PagedBatch pb(kMixedBatch, BS, Hkv * D, Hkv * Dv, rng_);
      const int64_t T = pb.T;
      Tensor k_cache = MakeF32(b_, Shape{pb.NB, BS, Hkv, D}, pb.k_cache);
      Tensor v_cache = MakeF32(b_, Shape{pb.NB, BS, Hkv, Dv}, pb.v_cache);
      AttentionMetadata meta = pb.Meta(b_);
      ASSERT_TRUE(b_.WriteKvCache(MakeF32(b_, Shape{T, Hkv, D}, pb.NewRows(pb.k_rows, Hkv * D)),
                                  MakeF32(b_, Shape{T, Hkv, Dv}, pb.NewRows(pb.v_rows, Hkv * Dv)), meta, k_cache,
                                  v_cache)
                      .ok());
      auto q = Random(rng_, T * H * D);
      const float scale = 1.0f / std::sqrt(static_cast<float>(D));
      Tensor out = Empty(b_, DType::kF32, Shape{T, H, Dv});
      ASSERT_TRUE(b_.PagedAttention(MakeF32(b_, Shape{T, H, D}, q), k_cache, v_cache, meta, scale, out).ok());

      std::vector<double> ref(T * H * Dv);
      for (int64_t t = 0; t < T; ++t) {
        const int64_t s = pb.token_seq[t];
        const int64_t q_len = pb.qsl[s + 1] - pb.qsl[s];
        const int64_t last = pb.seq_lens[s] - q_len + (t - pb.qsl[s]);
        for (int64_t h = 0; h < H; ++h) {
          const int64_t kvh = h / (H / Hkv);
          std::vector<double> sc(last + 1);
          double mx = -INFINITY;
          for (int64_t j = 0; j <= last; ++j) {
            double dot = 0;
            for (int64_t i = 0; i < D; ++i)
              dot += static_cast<double>(q[(t * H + h) * D + i]) * pb.k_rows[s][(j * Hkv + kvh) * D + i];
            sc[j] = dot * scale;
            mx = std::max(mx, sc[j]);
          }
          double sum = 0;
          for (double& v : sc) sum += (v = std::exp(v - mx));
          for (int64_t i = 0; i < Dv; ++i) {
            double acc = 0;
            for (int64_t j = 0; j <= last; ++j) acc += sc[j] * pb.v_rows[s][(j * Hkv + kvh) * Dv + i];
            ref[(t * H + h) * Dv + i] = acc / sum;
          }
        }
      }
      EXPECT_LE(RelErr(ReadF32(b_, out), ref), kTol);
    }
  }
}

TEST_F(CpuAttentionTest, PagedMlaAttentionMatchesNaive) {
  const int64_t H = 3, BS = 16;
  for (auto [L, R] : {std::pair<int64_t, int64_t>{32, 8}, {20, 6}, {16, 0}}) {
    SCOPED_TRACE(::testing::Message() << "L=" << L << " R=" << R);
    PagedBatch pb(kMixedBatch, BS, L + R, 1, rng_);
    const int64_t T = pb.T;
    Tensor cache = MakeF32(b_, Shape{pb.NB, BS, L + R}, pb.k_cache);
    AttentionMetadata meta = pb.Meta(b_);
    auto rows = pb.NewRows(pb.k_rows, L + R);
    std::vector<float> kv_c, k_pe;
    for (int64_t t = 0; t < T; ++t) {
      kv_c.insert(kv_c.end(), rows.begin() + t * (L + R), rows.begin() + t * (L + R) + L);
      k_pe.insert(k_pe.end(), rows.begin() + t * (L + R) + L, rows.begin() + (t + 1) * (L + R));
    }
    ASSERT_TRUE(b_.WriteMlaCache(MakeF32(b_, Shape{T, L}, kv_c), MakeF32(b_, Shape{T, R}, k_pe), meta, cache).ok());
    auto ql = Random(rng_, T * H * L);
    auto qr = Random(rng_, T * H * R);
    const float scale = 0.17f;
    Tensor out = Empty(b_, DType::kF32, Shape{T, H, L});
    ASSERT_TRUE(
        b_.PagedMlaAttention(MakeF32(b_, Shape{T, H, L}, ql), MakeF32(b_, Shape{T, H, R}, qr), cache, meta, scale, out)
            .ok());
    std::vector<double> ref(T * H * L);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t s = pb.token_seq[t];
      const int64_t last = pb.seq_lens[s] - (pb.qsl[s + 1] - pb.qsl[s]) + (t - pb.qsl[s]);
      const auto& kr = pb.k_rows[s];
      for (int64_t h = 0; h < H; ++h) {
        std::vector<double> sc(last + 1);
        double mx = -INFINITY;
        for (int64_t j = 0; j <= last; ++j) {
          double dot = 0;
          for (int64_t i = 0; i < L; ++i) dot += static_cast<double>(ql[(t * H + h) * L + i]) * kr[j * (L + R) + i];
          for (int64_t i = 0; i < R; ++i) dot += static_cast<double>(qr[(t * H + h) * R + i]) * kr[j * (L + R) + L + i];
          sc[j] = dot * scale;
          mx = std::max(mx, sc[j]);
        }
        double sum = 0;
        for (double& v : sc) sum += (v = std::exp(v - mx));
        for (int64_t i = 0; i < L; ++i) {
          double acc = 0;
          for (int64_t j = 0; j <= last; ++j) acc += sc[j] * kr[j * (L + R) + i];
          ref[(t * H + h) * L + i] = acc / sum;
        }
      }
    }
    EXPECT_LE(RelErr(ReadF32(b_, out), ref), kTol);
  }
}

TEST_F(CpuAttentionTest, WriteKvCacheSkipsNegativeSlots) {
  const int64_t NB = 2, BS = 4;
  Tensor kc = MakeF32(b_, Shape{NB, BS, 1, 2}, std::vector<float>(NB * BS * 2, 0.0f));
  Tensor vc = MakeF32(b_, Shape{NB, BS, 1, 2}, std::vector<float>(NB * BS * 2, 0.0f));
  AttentionMetadata meta;
  meta.block_size = BS;
  meta.slot_mapping = MakeI32(b_, Shape{2}, {-1, 5});
  ASSERT_TRUE(b_.WriteKvCache(MakeF32(b_, Shape{2, 1, 2}, {1, 2, 3, 4}), MakeF32(b_, Shape{2, 1, 2}, {5, 6, 7, 8}),
                              meta, kc, vc)
                  .ok());
  std::vector<float> k_expected(NB * BS * 2, 0.0f), v_expected(NB * BS * 2, 0.0f);
  k_expected[10] = 3, k_expected[11] = 4, v_expected[10] = 7, v_expected[11] = 8;
  EXPECT_EQ(ReadF32(b_, kc), k_expected);
  EXPECT_EQ(ReadF32(b_, vc), v_expected);
}

// The fused op is Rope on a copy of k_pe followed by WriteMlaCache, for both rope styles; slots < 0
// are skipped and k_pe is left unchanged.
TEST_F(CpuAttentionTest, RopeWriteMlaCacheIsRopeThenWrite) {
  const int64_t BS = 16, L = 20, R = 6, max_pos = 64;
  for (RopeStyle style : {RopeStyle::kInterleaved, RopeStyle::kNeox}) {
    PagedBatch pb(kMixedBatch, BS, L + R, 1, rng_);
    const int64_t T = pb.T;
    const auto [meta, positions, cos_sin] = MakeRopeInputs(pb, /*skipped=*/2, /*stride=*/7, max_pos, R);
    const auto kv_c = Random(rng_, T * L), k_pe = Random(rng_, T * R);
    const Tensor k_pe_t = MakeF32(b_, Shape{T, R}, k_pe);
    Tensor fused = MakeF32(b_, Shape{pb.NB, BS, L + R}, pb.k_cache);
    ASSERT_TRUE(
        b_.RopeWriteMlaCache(MakeF32(b_, Shape{T, L}, kv_c), k_pe_t, positions, cos_sin, style, meta, fused).ok());
    Tensor ref = MakeF32(b_, Shape{pb.NB, BS, L + R}, pb.k_cache);
    Tensor rotated = MakeF32(b_, Shape{T, 1, R}, k_pe);
    ASSERT_TRUE(b_.Rope(rotated, positions, cos_sin, static_cast<int32_t>(R), style).ok());
    ASSERT_TRUE(b_.WriteMlaCache(MakeF32(b_, Shape{T, L}, kv_c), rotated.View({T, R}), meta, ref).ok());
    const auto got = ReadF32(b_, fused), want = ReadF32(b_, ref);
    for (size_t i = 0; i < got.size(); ++i) {
      if (std::isnan(want[i])) {
        ASSERT_TRUE(std::isnan(got[i])) << i;  // untouched slot (incl. the skipped token's)
      } else {
        ASSERT_EQ(got[i], want[i]) << i;
      }
    }
    EXPECT_EQ(ReadF32(b_, k_pe_t), k_pe);
  }
}

TEST_F(CpuAttentionTest, RopeWriteMlaCacheRejectsBadOperands) {
  const int64_t BS = 16, L = 8, R = 4;
  PagedBatch pb({{2, 2}}, BS, L + R, 1, rng_);
  AttentionMetadata meta = pb.Meta(b_);
  Tensor cache = Empty(b_, DType::kF32, Shape{pb.NB, BS, L + R});
  const Tensor kv_c = Empty(b_, DType::kF32, Shape{2, L}), k_pe = Empty(b_, DType::kF32, Shape{2, R});
  const Tensor cos_sin = MakeF32(b_, Shape{4, R}, Random(rng_, 4 * R));
  absl::Status s =
      b_.RopeWriteMlaCache(kv_c, k_pe, MakeI32(b_, Shape{2}, {0, 4}), cos_sin, RopeStyle::kInterleaved, meta, cache);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("RopeWriteMlaCache: positions[1] = 4"));
  s = b_.RopeWriteMlaCache(kv_c, k_pe, MakeI32(b_, Shape{2}, {0, 1}), MakeF32(b_, Shape{4, 2}, Random(rng_, 8)),
                           RopeStyle::kInterleaved, meta, cache);
  EXPECT_THAT(s.message(), HasSubstr("RopeWriteMlaCache: cos_sin has shape [4, 2]"));
}

TEST_F(CpuAttentionTest, RejectsOutOfRangeMetadata) {
  const int64_t BS = 16, Hkv = 1, D = 4;
  PagedBatch pb({{1, 17}, {2, 5}}, BS, Hkv * D, Hkv * D, rng_);
  const int64_t T = pb.T;
  Tensor kc = MakeF32(b_, Shape{pb.NB, BS, Hkv, D}, pb.k_cache);
  Tensor vc = MakeF32(b_, Shape{pb.NB, BS, Hkv, D}, pb.v_cache);
  Tensor k = Empty(b_, DType::kF32, Shape{T, Hkv, D});
  Tensor q = Empty(b_, DType::kF32, Shape{T, 2, D});
  Tensor out = Empty(b_, DType::kF32, Shape{T, 2, D});
  auto expect_invalid = [&](const AttentionMetadata& m, absl::string_view what) {
    absl::Status s = b_.PagedAttention(q, kc, vc, m, 1.0f, out);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << what;
    EXPECT_THAT(s.message(), HasSubstr(std::string(what)));
  };

  {  // slot past the cache
    AttentionMetadata m = pb.Meta(b_);
    auto slots = pb.slot_mapping;
    slots[1] = static_cast<int32_t>(pb.NB * BS);
    m.slot_mapping = MakeI32(b_, Shape{T}, slots);
    absl::Status s = b_.WriteKvCache(k, k, m, kc, vc);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), HasSubstr("WriteKvCache: meta.slot_mapping[1]"));
    Tensor mla = Empty(b_, DType::kF32, Shape{pb.NB, BS, 6});
    EXPECT_THAT(
        b_.WriteMlaCache(Empty(b_, DType::kF32, Shape{T, 4}), Empty(b_, DType::kF32, Shape{T, 2}), m, mla).message(),
        HasSubstr("WriteMlaCache: meta.slot_mapping[1]"));
  }
  {  // block table entry of a used block out of range
    AttentionMetadata m = pb.Meta(b_);
    auto bt = pb.block_tables;
    bt[1] = static_cast<int32_t>(pb.NB);
    m.block_tables = MakeI32(b_, Shape{pb.S, pb.max_blocks}, bt);
    expect_invalid(m, "PagedAttention: meta.block_tables[0, 1]");
  }
  {  // context longer than the block table can hold
    AttentionMetadata m = pb.Meta(b_);
    m.seq_lens = MakeI32(b_, Shape{2}, {static_cast<int32_t>(pb.max_blocks * BS + 1), 5});
    m.max_seq_len = 1000;
    expect_invalid(m, "meta.seq_lens[0]");
  }
  {  // more query tokens than context
    AttentionMetadata m = pb.Meta(b_);
    m.seq_lens = MakeI32(b_, Shape{2}, {17, 1});
    expect_invalid(m, "meta.seq_lens[1]");
  }
  {  // query_start_loc not covering the batch
    AttentionMetadata m = pb.Meta(b_);
    m.query_start_loc = MakeI32(b_, Shape{3}, {0, 1, 2});
    expect_invalid(m, "meta.query_start_loc");
  }
  {  // block size mismatch
    AttentionMetadata m = pb.Meta(b_);
    m.block_size = 8;
    expect_invalid(m, "meta.block_size");
  }
  {  // heads not a multiple of kv heads
    AttentionMetadata m = pb.Meta(b_);
    Tensor kc2 = Empty(b_, DType::kF32, Shape{pb.NB, BS, 3, D});
    EXPECT_THAT(b_.PagedAttention(Empty(b_, DType::kF32, Shape{T, 4, D}), kc2, kc2, m, 1.0f,
                                  Empty(b_, DType::kF32, Shape{T, 4, D}))
                    .message(),
                HasSubstr("not a multiple"));
  }
  // The valid metadata still works after all that.
  AttentionMetadata m = pb.Meta(b_);
  EXPECT_TRUE(b_.WriteKvCache(k, k, m, kc, vc).ok());
}

// The fused op is Rope(q), Rope(k copy) and WriteKvCache, for both styles and a partial rotary_dim;
// slots < 0 skip the cache write (q is still rotated) and k is left unchanged.
TEST_F(CpuAttentionTest, RopeWriteKvCacheIsRopeThenWrite) {
  const int64_t BS = 16, H = 4, Hkv = 2, D = 12, Dv = 5, max_pos = 64;
  for (RopeStyle style : {RopeStyle::kNeox, RopeStyle::kInterleaved}) {
    for (int32_t rot : {12, 8}) {
      PagedBatch pb(kMixedBatch, BS, Hkv * D, Hkv * Dv, rng_);
      const int64_t T = pb.T;
      const auto [meta, positions, cos_sin] = MakeRopeInputs(pb, /*skipped=*/3, /*stride=*/5, max_pos, rot);
      const auto q = Random(rng_, T * H * D), k = Random(rng_, T * Hkv * D), v = Random(rng_, T * Hkv * Dv);
      const Tensor qf = MakeF32(b_, Shape{T, H, D}, q), kf = MakeF32(b_, Shape{T, Hkv, D}, k);
      Tensor kcf = MakeF32(b_, Shape{pb.NB, BS, Hkv, D}, pb.k_cache);
      Tensor vcf = MakeF32(b_, Shape{pb.NB, BS, Hkv, Dv}, pb.v_cache);
      ASSERT_TRUE(
          b_.RopeWriteKvCache(qf, kf, MakeF32(b_, Shape{T, Hkv, Dv}, v), positions, cos_sin, rot, style, meta, kcf, vcf)
              .ok());
      const Tensor qr = MakeF32(b_, Shape{T, H, D}, q), kr = MakeF32(b_, Shape{T, Hkv, D}, k);
      Tensor kcr = MakeF32(b_, Shape{pb.NB, BS, Hkv, D}, pb.k_cache);
      Tensor vcr = MakeF32(b_, Shape{pb.NB, BS, Hkv, Dv}, pb.v_cache);
      ASSERT_TRUE(b_.Rope(qr, positions, cos_sin, rot, style).ok());
      ASSERT_TRUE(b_.Rope(kr, positions, cos_sin, rot, style).ok());
      ASSERT_TRUE(b_.WriteKvCache(kr, MakeF32(b_, Shape{T, Hkv, Dv}, v), meta, kcr, vcr).ok());
      EXPECT_EQ(ReadF32(b_, qf), ReadF32(b_, qr));
      EXPECT_EQ(ReadF32(b_, kf), k);
      for (auto [got_t, want_t] : {std::pair<Tensor*, Tensor*>{&kcf, &kcr}, {&vcf, &vcr}}) {
        const auto got = ReadF32(b_, *got_t), want = ReadF32(b_, *want_t);
        ASSERT_EQ(got.size(), want.size());
        for (size_t i = 0; i < got.size(); ++i) {
          if (std::isnan(want[i])) {
            ASSERT_TRUE(std::isnan(got[i])) << i;  // untouched (incl. the skipped token's slot)
          } else {
            ASSERT_EQ(got[i], want[i]) << i;
          }
        }
      }
    }
  }
}

TEST_F(CpuAttentionTest, RopeWriteKvCacheRejectsBadOperands) {
  const int64_t BS = 16, H = 4, Hkv = 2, D = 8;
  PagedBatch pb({{2, 2}}, BS, Hkv * D, Hkv * D, rng_);
  const AttentionMetadata meta = pb.Meta(b_);
  const Tensor kc = Empty(b_, DType::kF32, Shape{pb.NB, BS, Hkv, D});
  const Tensor q = Empty(b_, DType::kF32, Shape{2, H, D}), k = Empty(b_, DType::kF32, Shape{2, Hkv, D});
  const Tensor cos_sin = MakeF32(b_, Shape{4, D}, Random(rng_, 4 * D));
  const Tensor pos_ok = MakeI32(b_, Shape{2}, {0, 1});
  absl::Status s =
      b_.RopeWriteKvCache(q, k, k, MakeI32(b_, Shape{2}, {0, 4}), cos_sin, D, RopeStyle::kNeox, meta, kc, kc);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("RopeWriteKvCache: positions[1] = 4"));
  s = b_.RopeWriteKvCache(q, k, k, pos_ok, cos_sin, 6, RopeStyle::kNeox, meta, kc, kc);
  EXPECT_THAT(s.message(), HasSubstr("RopeWriteKvCache: cos_sin has shape [4, 8], expected [max_position, 6]"));
  s = b_.RopeWriteKvCache(q, k, k, pos_ok, cos_sin, 7, RopeStyle::kNeox, meta, kc, kc);
  EXPECT_THAT(s.message(), HasSubstr("rotary_dim 7 must be even"));
  s = b_.RopeWriteKvCache(Empty(b_, DType::kF32, Shape{2, 3, D}), k, k, pos_ok, cos_sin, D, RopeStyle::kNeox, meta, kc,
                          kc);
  EXPECT_THAT(s.message(), HasSubstr("not a multiple"));
  AttentionMetadata bad = meta;
  bad.slot_mapping = MakeI32(b_, Shape{2}, {0, static_cast<int32_t>(pb.NB * BS)});
  s = b_.RopeWriteKvCache(q, k, k, pos_ok, cos_sin, D, RopeStyle::kNeox, bad, kc, kc);
  EXPECT_THAT(s.message(), HasSubstr("RopeWriteKvCache: meta.slot_mapping[1]"));
  EXPECT_TRUE(b_.RopeWriteKvCache(q, k, k, pos_ok, cos_sin, D, RopeStyle::kNeox, meta, kc, kc).ok());
}

}  // namespace
}  // namespace moeserve
