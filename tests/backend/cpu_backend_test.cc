// CPU backend ops against naive double-precision references, plus error cases.

#include "server/backend/cpu/cpu_backend.h"
#include "server/common/numeric.h"

#include <cmath>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/cpu/cpu_internal.h"
#include "server/backend/cpu/host_allocator.h"
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

class CpuBackendTest : public ::testing::Test {
 protected:
  CpuBackend b_{3};  // more threads than cores: exercises the parallel paths
  std::mt19937 rng_{1234};
};

TEST_F(CpuBackendTest, AllocateIsAlignedAndOutlivesViews) {
  auto t = b_.Allocate(DType::kF32, Shape{3, 5});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data()) % 64, 0u);
  auto empty = b_.Allocate(DType::kF32, Shape{0, 5});
  ASSERT_TRUE(empty.ok());
  EXPECT_NE(empty->data(), nullptr);
  Tensor slice = t->Slice(1, 2);
  t = absl::InternalError("drop");  // the slice keeps the storage alive
  ASSERT_TRUE(b_.Zero(slice).ok());
  EXPECT_EQ(ReadF32(b_, slice), std::vector<float>(10, 0.0f));
}

TEST(CpuHostAllocatorTest, ReusesFreedBlocksUpToTheCap) {
  auto alloc = cpu::HostAllocator::Create(/*max_cached_bytes=*/1 << 20);
  void* first = nullptr;
  {
    std::shared_ptr<void> a = alloc->Allocate(300000);
    first = a.get();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % 64, 0u);
  }
  EXPECT_GT(alloc->cached_bytes(), 0);
  std::shared_ptr<void> b = alloc->Allocate(310000);  // same size class (rounded to 1/8 of 2^18)
  EXPECT_EQ(b.get(), first);
  EXPECT_EQ(alloc->system_allocations(), 1);
  b.reset();
  {
    std::shared_ptr<void> big = alloc->Allocate(2 << 20);  // over the cap: back to the system
  }
  EXPECT_LE(alloc->cached_bytes(), 1 << 20);
  alloc->Release();
  EXPECT_EQ(alloc->cached_bytes(), 0);
  // Blocks outlive the allocator's last other owner.
  std::shared_ptr<void> c = alloc->Allocate(100);
  alloc.reset();
  c.reset();
}

TEST_F(CpuBackendTest, CreateWeightAndCopies) {
  std::vector<float> v = {1, 2, 3, 4, 5, 6};
  auto w = b_.CreateWeight(v, Shape{2, 3});
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->dtype(), DType::kF32);
  EXPECT_EQ(ReadF32(b_, *w), v);
  EXPECT_EQ(b_.CreateWeight(v, Shape{2, 2}).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<float> small(5);
  EXPECT_EQ(b_.CopyToHostF32(*w, absl::MakeSpan(small)).code(), absl::StatusCode::kInvalidArgument);
  // bf16 -> f32 on the way out.
  Tensor h = Empty(b_, DType::kBF16, Shape{2});
  const uint16_t bits[2] = {0x3f80, 0xc000};  // 1.0, -2.0
  ASSERT_TRUE(b_.CopyFromHost({reinterpret_cast<const uint8_t*>(bits), 4}, h).ok());
  EXPECT_EQ(ReadF32(b_, h), (std::vector<float>{1.0f, -2.0f}));
}

TEST_F(CpuBackendTest, CreateWeightFromHostKeepsSixteenBitWeightsInPlace) {
  auto bits = std::make_shared<std::vector<uint16_t>>(std::vector<uint16_t>{0x3f80, 0xc000, 0x4040, 0x0000});
  const absl::Span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(bits->data()), 8);
  // Rank 2 with keep_alive: the same bytes, no copy, and the tensor keeps them alive.
  Tensor w = *b_.CreateWeightFromHost({DType::kBF16, Shape{2, 2}, bytes, bits});
  EXPECT_EQ(w.dtype(), DType::kBF16);
  EXPECT_EQ(w.data(), bits->data());
  EXPECT_EQ(ReadF32(b_, w), (std::vector<float>{1, -2, 3, 0}));
  // Without keep_alive: a copy.
  Tensor c = *b_.CreateWeightFromHost({DType::kBF16, Shape{2, 2}, bytes, nullptr});
  EXPECT_NE(c.data(), bits->data());
  EXPECT_EQ(ReadF32(b_, c), (std::vector<float>{1, -2, 3, 0}));
  // Rank 1 (norms, biases) and the fp32 reference backend widen.
  EXPECT_EQ(b_.CreateWeightFromHost({DType::kBF16, Shape{4}, bytes, bits})->dtype(), DType::kF32);
  CpuBackend ref(CpuBackendOptions{.num_threads = 1, .f32_weights = true});
  Tensor r = *ref.CreateWeightFromHost({DType::kBF16, Shape{2, 2}, bytes, bits});
  EXPECT_EQ(r.dtype(), DType::kF32);
  EXPECT_EQ(ReadF32(ref, r), (std::vector<float>{1, -2, 3, 0}));
  // Wrong byte counts and dtypes are refused.
  EXPECT_EQ(b_.CreateWeightFromHost({DType::kBF16, Shape{2, 3}, bytes, bits}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b_.CreateWeightFromHost({DType::kI32, Shape{2}, bytes, bits}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- Linear / HeadwiseLinear ----------------------------------------------------------------

std::vector<double> NaiveLinear(const std::vector<float>& x, const std::vector<float>& w,
                                const std::vector<float>* bias, int64_t T, int64_t in, int64_t out) {
  std::vector<double> y(T * out);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < out; ++o) {
      double s = bias ? (*bias)[o] : 0.0;
      for (int64_t i = 0; i < in; ++i) s += static_cast<double>(x[t * in + i]) * w[o * in + i];
      y[t * out + o] = s;
    }
  return y;
}

// Every kernel level this CPU runs (baseline, AVX2, AVX-512, AVX512_BF16), each against the naive
// reference: b_ on the exact path (fp32 activations in every product), fast_ with the defaults.
class CpuLinearTest : public ::testing::TestWithParam<const cpu::CpuKernels*> {
 protected:
  void SetUp() override { cpu::ForceKernelsForTesting(GetParam()); }
  void TearDown() override { cpu::ForceKernelsForTesting(nullptr); }

  // A weight of `dtype` holding `w` rounded to it; *w becomes the rounded values.
  Tensor MakeWeight(DType dtype, std::vector<float>* w, Shape shape) {
    if (dtype == DType::kF32) return *b_.CreateWeight(*w, shape);
    std::vector<uint16_t> bits(w->size());
    for (size_t i = 0; i < w->size(); ++i) {
      bits[i] = dtype == DType::kBF16 ? FloatToBf16((*w)[i]) : FloatToFp16((*w)[i]);
      (*w)[i] = dtype == DType::kBF16 ? Bf16ToFloat(bits[i]) : Fp16ToFloat(bits[i]);
    }
    HostWeight hw{dtype, shape, {reinterpret_cast<const uint8_t*>(bits.data()), bits.size() * 2}};
    Tensor t = *b_.CreateWeightFromHost(hw);
    EXPECT_EQ(t.dtype(), dtype);  // kept 16-bit
    return t;
  }

  // More threads than cores: exercises the parallel paths.
  CpuBackend b_{CpuBackendOptions{.num_threads = 3, .exact_gemm = true}};
  CpuBackend fast_{3};
  std::mt19937 rng_{1234};
};

INSTANTIATE_TEST_SUITE_P(Isa, CpuLinearTest, ::testing::ValuesIn(cpu::AvailableKernels()),
                         [](const auto& info) { return std::string(info.param->name); });

TEST_P(CpuLinearTest, LinearMatchesNaive) {
  struct Case {
    int64_t T, in, out;
  };
  // Odd sizes, the 8-wide vector tail, the 256-long k slices, 64-row and 48-column tiles.
  for (Case c : {Case{1, 1, 1}, Case{1, 64, 172}, Case{1, 512, 64}, Case{2, 7, 3}, Case{3, 17, 5}, Case{5, 9, 33},
                 Case{7, 300, 13}, Case{70, 257, 50}, Case{129, 64, 97}, Case{4, 0, 6}, Case{3, 1100, 20},
                 Case{1, 2050, 9}, Case{6, 2080, 14}, Case{1, 896, 17}}) {
    for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
      for (bool with_bias : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "T=" << c.T << " in=" << c.in << " out=" << c.out << " bias=" << with_bias
                                          << " w " << DTypeName(dtype));
        auto x = Random(rng_, c.T * c.in);
        auto w = Random(rng_, c.out * c.in);
        auto bias = Random(rng_, c.out);
        Tensor tx = MakeF32(b_, Shape{c.T, c.in}, x);
        Tensor tw = MakeWeight(dtype, &w, Shape{c.out, c.in});
        Tensor tb = with_bias ? *b_.CreateWeight(bias, Shape{c.out}) : Tensor();
        Tensor ty = Empty(b_, DType::kF32, Shape{c.T, c.out});
        ASSERT_TRUE(b_.Linear(tx, tw, tb, ty).ok());
        EXPECT_LE(RelErr(ReadF32(b_, ty), NaiveLinear(x, w, with_bias ? &bias : nullptr, c.T, c.in, c.out)), kTol);
      }
    }
  }
}

// With the defaults, products with bf16 weights round the activations to bf16 at a level with a bf16
// dot product (the reference rounds them too, and they differ from the exact products); every other
// product is the exact one.
TEST_P(CpuLinearTest, DefaultsRoundActivationsOnlyForTheBf16DotProduct) {
  struct Case {
    int64_t T, in, out;
  };
  for (Case c :
       {Case{1, 896, 17}, Case{5, 9, 33}, Case{16, 300, 13}, Case{70, 257, 50}, Case{129, 64, 97}, Case{3, 2100, 20}}) {
    for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
      SCOPED_TRACE(::testing::Message() << "T=" << c.T << " in=" << c.in << " out=" << c.out << " w "
                                        << DTypeName(dtype));
      const bool rounds = dtype == DType::kBF16 && GetParam()->gemm_bf16_dot != nullptr;
      auto x = Random(rng_, c.T * c.in);
      auto w = Random(rng_, c.out * c.in);
      Tensor ty = Empty(fast_, DType::kF32, Shape{c.T, c.out});
      ASSERT_TRUE(
          fast_.Linear(MakeF32(fast_, Shape{c.T, c.in}, x), MakeWeight(dtype, &w, Shape{c.out, c.in}), Tensor(), ty)
              .ok());
      std::vector<float> xr = x;
      if (rounds) {
        for (float& v : xr) v = Bf16ToFloat(FloatToBf16(v));
        EXPECT_GT(RelErr(ReadF32(fast_, ty), NaiveLinear(x, w, nullptr, c.T, c.in, c.out)), 1e-4);
      }
      EXPECT_LE(RelErr(ReadF32(fast_, ty), NaiveLinear(xr, w, nullptr, c.T, c.in, c.out)), kTol);
    }
  }
}

TEST_P(CpuLinearTest, HeadwiseLinearMatchesNaive) {
  struct Case {
    int64_t T, H, in, out;
  };
  for (Case c : {Case{1, 3, 10, 7}, Case{9, 4, 65, 40}, Case{20, 2, 128, 64}}) {
    for (DType dtype : {DType::kF32, DType::kBF16}) {
      auto x = Random(rng_, c.T * c.H * c.in);
      auto w = Random(rng_, c.H * c.out * c.in);
      Tensor ty = Empty(b_, DType::kF32, Shape{c.T, c.H, c.out});
      ASSERT_TRUE(
          b_.HeadwiseLinear(MakeF32(b_, Shape{c.T, c.H, c.in}, x), MakeWeight(dtype, &w, Shape{c.H, c.out, c.in}), ty)
              .ok());
      std::vector<double> ref(c.T * c.H * c.out);
      for (int64_t t = 0; t < c.T; ++t)
        for (int64_t h = 0; h < c.H; ++h)
          for (int64_t o = 0; o < c.out; ++o) {
            double s = 0;
            for (int64_t i = 0; i < c.in; ++i)
              s += static_cast<double>(x[(t * c.H + h) * c.in + i]) * w[(h * c.out + o) * c.in + i];
            ref[(t * c.H + h) * c.out + o] = s;
          }
      EXPECT_LE(RelErr(ReadF32(b_, ty), ref), kTol) << "T=" << c.T << " H=" << c.H;
    }
  }
}

TEST_F(CpuBackendTest, LinearRejectsBadShapes) {
  Tensor x = Empty(b_, DType::kF32, Shape{2, 4});
  Tensor w = Empty(b_, DType::kF32, Shape{3, 5});
  Tensor y = Empty(b_, DType::kF32, Shape{2, 3});
  absl::Status s = b_.Linear(x, w, Tensor(), y);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("Linear: w has shape [3, 5], expected [out, 4]"));
  Tensor w2 = Empty(b_, DType::kF32, Shape{3, 4});
  EXPECT_THAT(b_.Linear(x, w2, Empty(b_, DType::kF32, Shape{4}), y).message(),
              HasSubstr("Linear: bias has shape [4], expected [3]"));
  EXPECT_THAT(b_.Linear(x, w2, Tensor(), Empty(b_, DType::kF32, Shape{2, 4})).message(), HasSubstr("Linear: out"));
  EXPECT_THAT(b_.Linear(Empty(b_, DType::kBF16, Shape{2, 4}), w2, Tensor(), y).message(),
              HasSubstr("Linear: x has dtype bf16, expected f32"));
  EXPECT_THAT(b_.HeadwiseLinear(Empty(b_, DType::kF32, Shape{2, 3, 4}), Empty(b_, DType::kF32, Shape{2, 5, 4}),
                                Empty(b_, DType::kF32, Shape{2, 3, 5}))
                  .message(),
              HasSubstr("HeadwiseLinear: w has shape [2, 5, 4], expected [3, out, 4]"));
}

// ---- Row ops ---------------------------------------------------------------------------------

TEST_F(CpuBackendTest, EmbeddingWidensSixteenBitTables) {
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    std::vector<float> v = Random(rng_, 5 * 19);
    std::vector<uint16_t> bits(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      bits[i] = dtype == DType::kBF16 ? FloatToBf16(v[i]) : FloatToFp16(v[i]);
      v[i] = dtype == DType::kBF16 ? Bf16ToFloat(bits[i]) : Fp16ToFloat(bits[i]);
    }
    Tensor table = *b_.CreateWeightFromHost(
        {dtype, Shape{5, 19}, {reinterpret_cast<const uint8_t*>(bits.data()), bits.size() * 2}});
    ASSERT_EQ(table.dtype(), dtype);
    Tensor out = Empty(b_, DType::kF32, Shape{3, 19});
    ASSERT_TRUE(b_.Embedding(table, MakeI32(b_, Shape{3}, {4, 0, 4}), out).ok());
    std::vector<float> want;
    for (int row : {4, 0, 4}) want.insert(want.end(), v.begin() + row * 19, v.begin() + (row + 1) * 19);
    EXPECT_EQ(ReadF32(b_, out), want);
  }
}

TEST_F(CpuBackendTest, EmbeddingAndGatherRows) {
  const int64_t V = 11, d = 13;
  auto table = Random(rng_, V * d);
  std::vector<int32_t> ids = {0, 10, 3, 3, 7};
  Tensor out = Empty(b_, DType::kF32, Shape{5, d});
  Tensor tt = *b_.CreateWeight(table, Shape{V, d});
  ASSERT_TRUE(b_.Embedding(tt, MakeI32(b_, Shape{5}, ids), out).ok());
  std::vector<double> ref;
  for (int32_t id : ids)
    for (int64_t i = 0; i < d; ++i) ref.push_back(table[id * d + i]);
  EXPECT_EQ(RelErr(ReadF32(b_, out), ref), 0.0);

  Tensor g = Empty(b_, DType::kF32, Shape{3, d});
  ASSERT_TRUE(b_.GatherRows(tt, MakeI32(b_, Shape{3}, {10, 0, 10}), g).ok());
  ref.clear();
  for (int32_t id : {10, 0, 10})
    for (int64_t i = 0; i < d; ++i) ref.push_back(table[id * d + i]);
  EXPECT_EQ(RelErr(ReadF32(b_, g), ref), 0.0);

  absl::Status s = b_.Embedding(tt, MakeI32(b_, Shape{5}, {0, 1, 11, 2, 3}), out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("Embedding: ids[2] = 11 is outside [0, 11)"));
  EXPECT_EQ(b_.Embedding(tt, MakeI32(b_, Shape{5}, {0, -1, 1, 2, 3}), out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(b_.GatherRows(tt, MakeI32(b_, Shape{3}, {0, 1, 99}), g).message(),
              HasSubstr("GatherRows: indices[2] = 99"));
}

// Two ranks' slices of one vocabulary: each gives its own rows and zeros elsewhere; their sum is
// the whole-table embedding.
TEST_F(CpuBackendTest, EmbeddingShardsSumToTheEmbedding) {
  const int64_t V = 10, d = 7;
  auto table = Random(rng_, V * d);
  const std::vector<int32_t> ids = {0, 9, 4, 5, 3};
  std::vector<float> sum(ids.size() * d, 0.0f);
  for (int64_t first : {0, 5}) {
    std::vector<float> rows(table.begin() + first * d, table.begin() + (first + 5) * d);
    Tensor out = Empty(b_, DType::kF32, Shape{5, d});
    ASSERT_TRUE(b_.EmbeddingShard(*b_.CreateWeight(rows, Shape{5, d}), MakeI32(b_, Shape{5}, ids), first, out).ok());
    const auto got = ReadF32(b_, out);
    for (size_t t = 0; t < ids.size(); ++t) {
      const bool mine = ids[t] >= first && ids[t] < first + 5;
      for (int64_t i = 0; i < d; ++i) {
        EXPECT_EQ(got[t * d + i], mine ? table[ids[t] * d + i] : 0.0f);
        sum[t * d + i] += got[t * d + i];
      }
    }
  }
  std::vector<double> ref;
  for (int32_t id : ids)
    for (int64_t i = 0; i < d; ++i) ref.push_back(table[id * d + i]);
  EXPECT_EQ(RelErr(sum, ref), 0.0);
  Tensor out = Empty(b_, DType::kF32, Shape{5, d});
  EXPECT_THAT(b_.EmbeddingShard(*b_.CreateWeight(table, Shape{V, d}), MakeI32(b_, Shape{5}, ids), -1, out).message(),
              HasSubstr("first_id"));
}

TEST_F(CpuBackendTest, RmsNormAndAddRmsNorm) {
  for (int64_t d : {1, 7, 64, 333}) {
    const int64_t T = 5;
    const float eps = 1e-6f;
    auto x = Random(rng_, T * d);
    auto r = Random(rng_, T * d);
    auto w = Random(rng_, d);
    Tensor tw = *b_.CreateWeight(w, Shape{d});
    std::vector<double> norm_ref(T * d), res_ref(T * d), add_ref(T * d);
    auto naive = [&](const std::vector<double>& in, std::vector<double>& out) {
      for (int64_t t = 0; t < T; ++t) {
        double ss = 0;
        for (int64_t i = 0; i < d; ++i) ss += in[t * d + i] * in[t * d + i];
        const double inv = 1.0 / std::sqrt(ss / d + eps);
        for (int64_t i = 0; i < d; ++i) out[t * d + i] = in[t * d + i] * inv * w[i];
      }
    };
    naive(std::vector<double>(x.begin(), x.end()), norm_ref);
    for (int64_t i = 0; i < T * d; ++i) res_ref[i] = static_cast<double>(x[i]) + r[i];
    naive(res_ref, add_ref);

    Tensor tx = MakeF32(b_, Shape{T, d}, x);
    Tensor out = Empty(b_, DType::kF32, Shape{T, d});
    ASSERT_TRUE(b_.RmsNorm(tx, tw, eps, out).ok());
    EXPECT_LE(RelErr(ReadF32(b_, out), norm_ref), kTol) << d;
    ASSERT_TRUE(b_.RmsNorm(tx, tw, eps, tx).ok());  // in place
    EXPECT_LE(RelErr(ReadF32(b_, tx), norm_ref), kTol) << d;

    Tensor tx2 = MakeF32(b_, Shape{T, d}, x);
    Tensor tr = MakeF32(b_, Shape{T, d}, r);
    ASSERT_TRUE(b_.AddRmsNorm(tx2, tr, tw, eps, tx2).ok());  // out aliases x
    EXPECT_LE(RelErr(ReadF32(b_, tr), res_ref), kTol) << d;
    EXPECT_LE(RelErr(ReadF32(b_, tx2), add_ref), kTol) << d;
  }
  EXPECT_THAT(b_.RmsNorm(Empty(b_, DType::kF32, Shape{2, 4}), Empty(b_, DType::kF32, Shape{5}), 1e-6f,
                         Empty(b_, DType::kF32, Shape{2, 4}))
                  .message(),
              HasSubstr("RmsNorm: w has shape [5], expected [4]"));
}

TEST_F(CpuBackendTest, AddAndSiluMul) {
  const int64_t T = 3, I = 37;
  auto a = Random(rng_, T * I);
  auto c = Random(rng_, T * I);
  Tensor ta = MakeF32(b_, Shape{T, I}, a);
  ASSERT_TRUE(b_.Add(ta, MakeF32(b_, Shape{T, I}, c), ta).ok());  // out aliases a
  std::vector<double> ref(T * I);
  for (int64_t i = 0; i < T * I; ++i) ref[i] = static_cast<double>(a[i]) + c[i];
  EXPECT_LE(RelErr(ReadF32(b_, ta), ref), kTol);
  EXPECT_THAT(b_.Add(ta, Empty(b_, DType::kF32, Shape{T, I + 1}), ta).message(),
              HasSubstr("Add: b is f32[3, 38], expected f32[3, 37]"));

  auto gu = Random(rng_, T * 2 * I, 3.0f);
  Tensor out = Empty(b_, DType::kF32, Shape{T, I});
  ASSERT_TRUE(b_.SiluMul(MakeF32(b_, Shape{T, 2 * I}, gu), out).ok());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < I; ++i) {
      const double g = gu[t * 2 * I + i], u = gu[t * 2 * I + I + i];
      ref[t * I + i] = g / (1.0 + std::exp(-g)) * u;
    }
  EXPECT_LE(RelErr(ReadF32(b_, out), ref), kTol);
  EXPECT_EQ(b_.SiluMul(MakeF32(b_, Shape{1, 3}, {1, 2, 3}), Empty(b_, DType::kF32, Shape{1, 1})).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CpuBackendTest, RopeBothStyles) {
  const int64_t T = 4, H = 3, D = 10, max_pos = 9;
  for (int32_t rot : {4, 10}) {
    for (RopeStyle style : {RopeStyle::kNeox, RopeStyle::kInterleaved}) {
      auto x = Random(rng_, T * H * D);
      std::vector<float> cs(max_pos * rot);
      for (int64_t p = 0; p < max_pos; ++p)
        for (int64_t i = 0; i < rot / 2; ++i) {
          const double ang = p * std::pow(10000.0, -2.0 * i / rot);
          cs[p * rot + i] = static_cast<float>(std::cos(ang));
          cs[p * rot + rot / 2 + i] = static_cast<float>(std::sin(ang));
        }
      std::vector<int32_t> pos = {0, 8, 3, 3};
      Tensor tx = MakeF32(b_, Shape{T, H, D}, x);
      ASSERT_TRUE(b_.Rope(tx, MakeI32(b_, Shape{T}, pos), *b_.CreateWeight(cs, Shape{max_pos, rot}), rot, style).ok());
      std::vector<double> ref(x.begin(), x.end());
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t i = 0; i < rot / 2; ++i) {
            const double c = cs[pos[t] * rot + i], s = cs[pos[t] * rot + rot / 2 + i];
            const int64_t a = style == RopeStyle::kNeox ? i : 2 * i;
            const int64_t bb = style == RopeStyle::kNeox ? i + rot / 2 : 2 * i + 1;
            const double x1 = x[(t * H + h) * D + a], x2 = x[(t * H + h) * D + bb];
            ref[(t * H + h) * D + a] = x1 * c - x2 * s;
            ref[(t * H + h) * D + bb] = x2 * c + x1 * s;
          }
      EXPECT_LE(RelErr(ReadF32(b_, tx), ref), kTol) << rot;
    }
  }
  Tensor tx = Empty(b_, DType::kF32, Shape{2, 1, 4});
  Tensor cs = Empty(b_, DType::kF32, Shape{5, 4});
  absl::Status s = b_.Rope(tx, MakeI32(b_, Shape{2}, {1, 5}), cs, 4, RopeStyle::kNeox);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("Rope: positions[1] = 5 is outside [0, 5)"));
  EXPECT_EQ(b_.Rope(tx, MakeI32(b_, Shape{2}, {1, -1}), cs, 4, RopeStyle::kNeox).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b_.Rope(tx, MakeI32(b_, Shape{2}, {1, 1}), cs, 3, RopeStyle::kNeox).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b_.Rope(tx, MakeI32(b_, Shape{2}, {1, 1}), cs, 2, RopeStyle::kNeox).code(),
            absl::StatusCode::kInvalidArgument);  // cos_sin has rotary_dim 4
}

// ---- MoeExperts ------------------------------------------------------------------------------

TEST_F(CpuBackendTest, MoeExpertsMatchesNaive) {
  // The exact path: the reference multiplies fp32 activations (CpuLinearTest covers the rounding).
  CpuBackend exact(CpuBackendOptions{.num_threads = 3, .exact_gemm = true});
  struct Case {
    int64_t T, d, I, E, k;
  };
  for (Case c : {Case{1, 24, 10, 5, 2}, Case{7, 24, 10, 5, 2}, Case{13, 33, 17, 8, 3}, Case{70, 64, 48, 4, 2}}) {
    // fp32 weights, and bf16 weights kept 16-bit (the reference uses their exact values).
    for (bool bf16 : {false, true}) {
      auto x = Random(rng_, c.T * c.d);
      auto gu = Random(rng_, c.E * 2 * c.I * c.d, 0.3f);
      auto dn = Random(rng_, c.E * c.d * c.I, 0.3f);
      auto weight = [&](std::vector<float>& v, Shape shape) {
        if (!bf16) return *exact.CreateWeight(v, shape);
        std::vector<uint16_t> bits(v.size());
        for (size_t i = 0; i < v.size(); ++i) v[i] = Bf16ToFloat(bits[i] = FloatToBf16(v[i]));
        Tensor t = *exact.CreateWeightFromHost(
            {DType::kBF16, shape, {reinterpret_cast<const uint8_t*>(bits.data()), bits.size() * 2}});
        EXPECT_EQ(t.dtype(), DType::kBF16);
        return t;
      };
      Tensor gu_w = weight(gu, Shape{c.E, 2 * c.I, c.d});
      Tensor dn_w = weight(dn, Shape{c.E, c.d, c.I});
      std::vector<int32_t> ids(c.T * c.k);
      std::vector<float> wts = Random(rng_, c.T * c.k);
      // Experts E-1 stays unused; a token never repeats an expert.
      for (int64_t t = 0; t < c.T; ++t) {
        std::vector<int32_t> perm(c.E - 1);
        for (int32_t e = 0; e < c.E - 1; ++e) perm[e] = e;
        std::shuffle(perm.begin(), perm.end(), rng_);
        for (int64_t j = 0; j < c.k; ++j) ids[t * c.k + j] = perm[j];
      }
      Tensor out = Empty(exact, DType::kF32, Shape{c.T, c.d});
      ASSERT_TRUE(exact
                      .MoeExperts(MakeF32(exact, Shape{c.T, c.d}, x), MakeI32(exact, Shape{c.T, c.k}, ids),
                                  MakeF32(exact, Shape{c.T, c.k}, wts), gu_w, dn_w, out, {})
                      .ok());
      std::vector<double> ref(c.T * c.d, 0.0);
      for (int64_t t = 0; t < c.T; ++t)
        for (int64_t j = 0; j < c.k; ++j) {
          const int64_t e = ids[t * c.k + j];
          std::vector<double> act(c.I);
          for (int64_t i = 0; i < c.I; ++i) {
            double g = 0, u = 0;
            for (int64_t m = 0; m < c.d; ++m) {
              g += static_cast<double>(gu[(e * 2 * c.I + i) * c.d + m]) * x[t * c.d + m];
              u += static_cast<double>(gu[(e * 2 * c.I + c.I + i) * c.d + m]) * x[t * c.d + m];
            }
            act[i] = g / (1.0 + std::exp(-g)) * u;
          }
          for (int64_t m = 0; m < c.d; ++m) {
            double y = 0;
            for (int64_t i = 0; i < c.I; ++i) y += dn[(e * c.d + m) * c.I + i] * act[i];
            ref[t * c.d + m] += wts[t * c.k + j] * y;
          }
        }
      EXPECT_LE(RelErr(ReadF32(exact, out), ref), kTol) << "T=" << c.T << " bf16=" << bf16;
    }
  }
}

TEST_F(CpuBackendTest, MoeExpertsRejectsBadIds) {
  Tensor x = Empty(b_, DType::kF32, Shape{2, 4});
  Tensor gu = Empty(b_, DType::kF32, Shape{3, 6, 4});
  Tensor dn = Empty(b_, DType::kF32, Shape{3, 4, 3});
  Tensor w = MakeF32(b_, Shape{2, 1}, {1, 1});
  Tensor out = Empty(b_, DType::kF32, Shape{2, 4});
  absl::Status s = b_.MoeExperts(x, MakeI32(b_, Shape{2, 1}, {0, 3}), w, gu, dn, out, {});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("MoeExperts: topk_ids[1, 0] = 3 is outside [0, 3)"));
  EXPECT_EQ(b_.MoeExperts(x, MakeI32(b_, Shape{2, 1}, {-1, 0}), w, gu, dn, out, {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(b_.MoeExperts(x, MakeI32(b_, Shape{2, 1}, {0, 0}), w, gu, Empty(b_, DType::kF32, Shape{3, 4, 4}), out, {})
                  .message(),
              HasSubstr("MoeExperts: down has shape [3, 4, 4], expected [3, 4, 3]"));
}

// The shared output is added to the routed sum (also in place), and the per-expert pair counts
// accumulate across calls.
TEST_F(CpuBackendTest, MoeExpertsExtrasAddSharedOutputAndCountExperts) {
  const int64_t T = 3, d = 4, E = 3, I = 2, K = 2;
  std::vector<float> x(T * d), gu(E * 2 * I * d), dn(E * d * I), sh(T * d);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto* v : {&x, &gu, &dn, &sh}) {
    for (float& f : *v) f = u(rng_);
  }
  const std::vector<int32_t> ids = {0, 2, 2, 0, 2, 1};
  Tensor xt = MakeF32(b_, Shape{T, d}, x), it = MakeI32(b_, Shape{T, K}, ids);
  Tensor wt = MakeF32(b_, Shape{T, K}, {0.5f, 0.25f, 1.0f, 2.0f, 0.75f, 0.125f});
  Tensor gut = *b_.CreateWeight(gu, Shape{E, 2 * I, d}), dnt = *b_.CreateWeight(dn, Shape{E, d, I});
  Tensor plain = Empty(b_, DType::kF32, Shape{T, d});
  ASSERT_TRUE(b_.MoeExperts(xt, it, wt, gut, dnt, plain, {}).ok());
  MoeExpertsExtras extras;
  extras.shared_out = MakeF32(b_, Shape{T, d}, sh);
  extras.expert_counts = Empty(b_, DType::kI64, Shape{E});
  ASSERT_TRUE(b_.Zero(extras.expert_counts).ok());
  Tensor fused = Empty(b_, DType::kF32, Shape{T, d});
  ASSERT_TRUE(b_.MoeExperts(xt, it, wt, gut, dnt, fused, extras).ok());
  // In place: out is the shared output.
  Tensor inplace = MakeF32(b_, Shape{T, d}, sh);
  extras.shared_out = inplace;
  ASSERT_TRUE(b_.MoeExperts(xt, it, wt, gut, dnt, inplace, extras).ok());
  const std::vector<float> p = ReadF32(b_, plain), f = ReadF32(b_, fused), ip = ReadF32(b_, inplace);
  for (int64_t i = 0; i < T * d; ++i) {
    EXPECT_NEAR(f[i], p[i] + sh[i], 1e-5f) << i;
    EXPECT_NEAR(ip[i], p[i] + sh[i], 1e-5f) << i;
  }
  const int64_t* counts = extras.expert_counts.data_as<int64_t>();
  EXPECT_EQ(counts[0], 4);  // two calls × {0, 0}
  EXPECT_EQ(counts[1], 2);
  EXPECT_EQ(counts[2], 6);
  EXPECT_EQ(b_.MoeExperts(xt, it, wt, gut, dnt, fused, MoeExpertsExtras{Tensor(), Empty(b_, DType::kI64, Shape{E + 1})})
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// Expert parallelism: two ranks holding experts [0, 3) and [3, 6) of 6; each skips the pairs
// routed to the other's experts and counts only its own, and their outputs sum to the whole MoE.
TEST_F(CpuBackendTest, MoeExpertsSlicesSumToTheWholeMoe) {
  const int64_t T = 5, d = 6, E = 6, I = 3, K = 2;
  auto x = Random(rng_, T * d), gu = Random(rng_, E * 2 * I * d, 0.3f), dn = Random(rng_, E * d * I, 0.3f);
  auto w = Random(rng_, T * K);
  const std::vector<int32_t> ids = {0, 5, 1, 2, 3, 4, 5, 0, 2, 2};
  Tensor xt = MakeF32(b_, Shape{T, d}, x), it = MakeI32(b_, Shape{T, K}, ids), wt = MakeF32(b_, Shape{T, K}, w);
  Tensor whole = Empty(b_, DType::kF32, Shape{T, d});
  ASSERT_TRUE(b_.MoeExperts(xt, it, wt, *b_.CreateWeight(gu, Shape{E, 2 * I, d}), *b_.CreateWeight(dn, Shape{E, d, I}),
                            whole, {})
                  .ok());
  std::vector<float> sum(T * d, 0.0f);
  for (int64_t first : {0, 3}) {
    std::vector<float> gus(gu.begin() + first * 2 * I * d, gu.begin() + (first + 3) * 2 * I * d);
    std::vector<float> dns(dn.begin() + first * d * I, dn.begin() + (first + 3) * d * I);
    MoeExpertsExtras extras;
    extras.first_expert = first;
    extras.num_routed_experts = E;
    extras.expert_counts = Empty(b_, DType::kI64, Shape{3});
    ASSERT_TRUE(b_.Zero(extras.expert_counts).ok());
    Tensor part = Empty(b_, DType::kF32, Shape{T, d});
    ASSERT_TRUE(b_.MoeExperts(xt, it, wt, *b_.CreateWeight(gus, Shape{3, 2 * I, d}),
                              *b_.CreateWeight(dns, Shape{3, d, I}), part, extras)
                    .ok());
    const auto p = ReadF32(b_, part);
    for (int64_t i = 0; i < T * d; ++i) sum[i] += p[i];
    const int64_t* counts = extras.expert_counts.data_as<int64_t>();
    for (int64_t e = 0; e < 3; ++e) {
      EXPECT_EQ(counts[e], std::count(ids.begin(), ids.end(), static_cast<int32_t>(first + e))) << first + e;
    }
  }
  const auto ref = ReadF32(b_, whole);
  for (int64_t i = 0; i < T * d; ++i) EXPECT_NEAR(sum[i], ref[i], 1e-5f) << i;
  MoeExpertsExtras bad;
  bad.first_expert = 4;
  bad.num_routed_experts = E;
  const std::vector<float> three(gu.begin(), gu.begin() + 3 * 2 * I * d);
  EXPECT_THAT(b_.MoeExperts(xt, it, wt, *b_.CreateWeight(three, Shape{3, 2 * I, d}),
                            Empty(b_, DType::kF32, Shape{3, d, I}), whole, bad)
                  .message(),
              HasSubstr("outside the model's 6 routed experts"));
}

// num_valid_tokens = n: rows [n, T) are padding. The output is unchanged, and expert_counts
// grows by what the first n rows alone would add (with fused shared experts too); n is clamped
// to [0, T].
TEST_F(CpuBackendTest, MoeExpertsCountsOnlyValidTokens) {
  const int64_t T = 5, d = 4, E = 4, I = 2, K = 2, S = 1;
  std::vector<float> x(T * d), gu((E + S) * 2 * I * d), dn((E + S) * d * I), w(T * K);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto* v : {&x, &gu, &dn, &w}) {
    for (float& f : *v) f = u(rng_);
  }
  const std::vector<int32_t> ids = {0, 1, 2, 3, 1, 1, 3, 0, 2, 2};
  Tensor gut = *b_.CreateWeight(gu, Shape{E + S, 2 * I, d});
  Tensor dnt = *b_.CreateWeight(dn, Shape{E + S, d, I});
  // Counts and output of rows [0, rows) run with num_valid_tokens `valid` (nullopt: undefined).
  auto run = [&](int64_t rows, std::optional<int32_t> valid, std::vector<float>* out_values) {
    MoeExpertsExtras extras;
    extras.num_shared_experts = S;
    extras.expert_counts = Empty(b_, DType::kI64, Shape{E});
    EXPECT_TRUE(b_.Zero(extras.expert_counts).ok());
    if (valid) extras.num_valid_tokens = MakeI32(b_, Shape{1}, {*valid});
    Tensor out = Empty(b_, DType::kF32, Shape{rows, d});
    EXPECT_TRUE(b_.MoeExperts(MakeF32(b_, Shape{rows, d}, std::vector<float>(x.begin(), x.begin() + rows * d)),
                              MakeI32(b_, Shape{rows, K}, std::vector<int32_t>(ids.begin(), ids.begin() + rows * K)),
                              MakeF32(b_, Shape{rows, K}, std::vector<float>(w.begin(), w.begin() + rows * K)), gut,
                              dnt, out, extras)
                    .ok());
    if (out_values != nullptr) *out_values = ReadF32(b_, out);
    const int64_t* c = extras.expert_counts.data_as<int64_t>();
    return std::vector<int64_t>(c, c + E);
  };
  std::vector<float> all_rows, padded;
  const std::vector<int64_t> all = run(T, std::nullopt, &all_rows);
  EXPECT_EQ(all, (std::vector<int64_t>{2, 3, 3, 2}));
  for (int32_t n = 0; n <= T; ++n) {
    EXPECT_EQ(run(T, n, &padded), run(n, std::nullopt, nullptr)) << n;
    EXPECT_EQ(padded, all_rows) << n;  // bit for bit: every row is still computed
  }
  EXPECT_EQ(run(T, T + 3, nullptr), all);
  EXPECT_EQ(run(T, -1, nullptr), (std::vector<int64_t>(E, 0)));
  MoeExpertsExtras wrong;
  wrong.num_valid_tokens = MakeI32(b_, Shape{2}, {1, 1});
  Tensor out = Empty(b_, DType::kF32, Shape{T, d});
  EXPECT_THAT(
      b_.MoeExperts(MakeF32(b_, Shape{T, d}, x), MakeI32(b_, Shape{T, K}, ids), MakeF32(b_, Shape{T, K}, w),
                    *b_.CreateWeight(std::vector<float>(gu.begin(), gu.begin() + E * 2 * I * d), Shape{E, 2 * I, d}),
                    *b_.CreateWeight(std::vector<float>(dn.begin(), dn.begin() + E * d * I), Shape{E, d, I}), out,
                    wrong)
          .message(),
      HasSubstr("num_valid_tokens"));
}

// A DeepSeek shared MLP of intermediate S·I, split into S experts of intermediate I stacked after
// the routed ones (gate and up rows [s·I, (s+1)·I), down columns likewise) and fused with
// num_shared_experts = S, equals the dense MLP added through shared_out; counts stay routed-only.
TEST_F(CpuBackendTest, MoeExpertsFusedSharedExpertsEqualDenseMlp) {
  struct Case {
    int64_t T, d, I, E, K, S;
  };
  for (Case c :
       {Case{1, 24, 10, 5, 2, 1}, Case{9, 24, 10, 5, 2, 2}, Case{70, 32, 16, 6, 3, 2}, Case{5, 16, 8, 3, 0, 1}}) {
    const int64_t T = c.T, d = c.d, I = c.I, E = c.E, K = c.K, S = c.S;
    auto x = Random(rng_, T * d);
    auto gu = Random(rng_, E * 2 * I * d, 0.3f), dn = Random(rng_, E * d * I, 0.3f);
    auto sg = Random(rng_, S * I * d, 0.3f), su = Random(rng_, S * I * d, 0.3f);
    auto sd = Random(rng_, d * S * I, 0.3f);
    std::vector<float> wts = Random(rng_, T * K);
    std::vector<int32_t> ids(T * K);
    for (int64_t i = 0; i < T * K; ++i) ids[i] = static_cast<int32_t>((i * 7 + i / 3) % E);
    Tensor xt = MakeF32(b_, Shape{T, d}, x), it = MakeI32(b_, Shape{T, K}, ids);
    Tensor wt = MakeF32(b_, Shape{T, K}, wts);

    // Reference: the dense shared MLP (Linear, SiluMul, Linear) added through shared_out.
    std::vector<float> sgu = sg;
    sgu.insert(sgu.end(), su.begin(), su.end());
    Tensor h = Empty(b_, DType::kF32, Shape{T, 2 * S * I}), act = Empty(b_, DType::kF32, Shape{T, S * I});
    Tensor ref = Empty(b_, DType::kF32, Shape{T, d});
    ASSERT_TRUE(b_.Linear(xt, *b_.CreateWeight(sgu, Shape{2 * S * I, d}), Tensor(), h).ok());
    ASSERT_TRUE(b_.SiluMul(h, act).ok());
    ASSERT_TRUE(b_.Linear(act, *b_.CreateWeight(sd, Shape{d, S * I}), Tensor(), ref).ok());
    MoeExpertsExtras dense;
    dense.shared_out = ref;
    dense.expert_counts = Empty(b_, DType::kI64, Shape{E});
    ASSERT_TRUE(b_.Zero(dense.expert_counts).ok());
    ASSERT_TRUE(b_.MoeExperts(xt, it, wt, *b_.CreateWeight(gu, Shape{E, 2 * I, d}),
                              *b_.CreateWeight(dn, Shape{E, d, I}), ref, dense)
                    .ok());

    // Fused: shared expert s = gate rows, up rows and down columns [s·I, (s+1)·I).
    for (int64_t s = 0; s < S; ++s) {
      gu.insert(gu.end(), sg.begin() + s * I * d, sg.begin() + (s + 1) * I * d);
      gu.insert(gu.end(), su.begin() + s * I * d, su.begin() + (s + 1) * I * d);
      for (int64_t m = 0; m < d; ++m) {
        dn.insert(dn.end(), sd.begin() + m * S * I + s * I, sd.begin() + m * S * I + (s + 1) * I);
      }
    }
    MoeExpertsExtras fused;
    fused.num_shared_experts = S;
    fused.expert_counts = Empty(b_, DType::kI64, Shape{E});
    ASSERT_TRUE(b_.Zero(fused.expert_counts).ok());
    Tensor gut = *b_.CreateWeight(gu, Shape{E + S, 2 * I, d}), dnt = *b_.CreateWeight(dn, Shape{E + S, d, I});
    Tensor out = Empty(b_, DType::kF32, Shape{T, d});
    ASSERT_TRUE(b_.MoeExperts(xt, it, wt, gut, dnt, out, fused).ok());
    const std::vector<float> r = ReadF32(b_, ref), o = ReadF32(b_, out);
    EXPECT_LE(RelErr(o, std::vector<double>(r.begin(), r.end())), 1e-5) << "T=" << T << " S=" << S;
    for (int64_t e = 0; e < E; ++e) {
      EXPECT_EQ(fused.expert_counts.data_as<int64_t>()[e], dense.expert_counts.data_as<int64_t>()[e]);
    }

    // A routed id naming a shared expert, S ≥ E + S and counts over the shared experts are errors.
    if (K > 0) {
      std::vector<int32_t> bad = ids;
      bad[0] = static_cast<int32_t>(E);
      EXPECT_THAT(b_.MoeExperts(xt, MakeI32(b_, Shape{T, K}, bad), wt, gut, dnt, out, fused).message(),
                  HasSubstr(absl::StrCat("is outside [0, ", E, ")")));
    }
    MoeExpertsExtras wrong = fused;
    wrong.num_shared_experts = E + S;
    EXPECT_EQ(b_.MoeExperts(xt, it, wt, gut, dnt, out, wrong).code(), absl::StatusCode::kInvalidArgument);
    wrong = fused;
    wrong.expert_counts = Empty(b_, DType::kI64, Shape{E + S});
    EXPECT_EQ(b_.MoeExperts(xt, it, wt, gut, dnt, out, wrong).code(), absl::StatusCode::kInvalidArgument);
  }
}

// The CPU backend dequantizes fp8 block weights: value = e4m3(byte) · scale of its 128×128 block.
TEST_F(CpuBackendTest, CreateFp8BlockWeightDequantizes) {
  const int64_t E = 2, R = 130, C = 129;  // partial blocks in both dimensions
  std::vector<uint8_t> bytes(E * R * C);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>((i * 37) % 0x7e);  // no NaN
  std::vector<float> scales(E * 2 * 2);
  for (size_t i = 0; i < scales.size(); ++i) scales[i] = 0.5f + static_cast<float>(i);
  auto w = b_.CreateFp8BlockWeight(bytes, scales, Shape{E, R, C});
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->dtype(), DType::kF32);
  const float* v = w->data_as<float>();
  for (int64_t e = 0; e < E; ++e) {
    for (int64_t r : {int64_t{0}, int64_t{127}, int64_t{128}, int64_t{129}}) {
      for (int64_t c : {int64_t{0}, int64_t{127}, int64_t{128}}) {
        const int64_t i = (e * R + r) * C + c;
        EXPECT_EQ(v[i], Fp8E4M3ToFloat(bytes[i]) * scales[(e * 2 + r / 128) * 2 + c / 128]);
      }
    }
  }
  EXPECT_EQ(b_.CreateFp8BlockWeight(bytes, std::vector<float>(3), Shape{E, R, C}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moeserve
