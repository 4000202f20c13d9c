// Every compiled kernel level this CPU can run (cpu_kernels.h) against scalar double-precision
// references, over lengths that cover the vector bodies and their tails.

#include "server/backend/cpu/cpu_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/common/numeric.h"

namespace moeserve::cpu {
namespace {

class CpuKernelsTest : public ::testing::TestWithParam<const CpuKernels*> {
 protected:
  const CpuKernels& k() const { return *GetParam(); }
  std::vector<float> Random(int64_t n, float scale = 1.0f) {
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng_);
    return v;
  }
  std::mt19937 rng_{7};
};

INSTANTIATE_TEST_SUITE_P(Levels, CpuKernelsTest, ::testing::ValuesIn(AvailableKernels()),
                         [](const auto& info) { return std::string(info.param->name); });

constexpr int64_t kLengths[] = {0, 1, 7, 8, 15, 16, 17, 31, 33, 64, 100, 896, 1027};

double RelErr(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

TEST(CpuKernelsDispatch, BaselineFirstBestPicked) {
  const std::vector<const CpuKernels*> all = AvailableKernels();
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.front()->name, "baseline");
  EXPECT_EQ(&Kernels(), all.back());
  ForceKernelsForTesting(all.front());
  EXPECT_EQ(&Kernels(), all.front());
  ForceKernelsForTesting(nullptr);
  EXPECT_EQ(&Kernels(), all.back());
}

TEST_P(CpuKernelsTest, WidenRowIsExact) {
  // Every 16-bit pattern: normals, subnormals, zeros, infinities, NaNs.
  std::vector<uint16_t> bits(65536);
  for (int i = 0; i < 65536; ++i) bits[i] = static_cast<uint16_t>(i);
  std::vector<float> out(bits.size());
  for (WeightType t : {WeightType::kBF16, WeightType::kF16}) {
    k().widen_row(t, bits.data(), out.data(), static_cast<int64_t>(bits.size()));
    for (int i = 0; i < 65536; ++i) {
      const float want = t == WeightType::kBF16 ? Bf16ToFloat(bits[i]) : Fp16ToFloat(bits[i]);
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(out[i])) << i;
      } else {
        ASSERT_EQ(std::memcmp(&out[i], &want, 4), 0) << "type " << static_cast<int>(t) << " bits " << i;
      }
    }
  }
}

// The bf16 dot-product GEMM (where the level has one) against a double-precision reference with the
// same rounding: activations rounded to bf16 (nearest even), exact products. Tiles that start
// inside the product, strided rows, K tails (not a multiple of 32) and two K slices (K > 2048).
TEST_P(CpuKernelsTest, GemmBf16DotMatchesRoundedReference) {
  if (k().gemm_bf16_dot == nullptr) GTEST_SKIP() << k().name << " has no bf16 dot product";
  struct Case {
    int64_t T, N, K, t0, t1, n0, n1;
  };
  for (Case c : {Case{1, 1, 1, 0, 1, 0, 1}, Case{1, 9, 31, 0, 1, 0, 9}, Case{1, 17, 33, 0, 1, 2, 17},
                 Case{2, 5, 64, 0, 2, 0, 5}, Case{3, 7, 100, 0, 3, 0, 7}, Case{7, 13, 896, 1, 7, 3, 13},
                 Case{13, 9, 2081, 0, 13, 0, 9}, Case{6, 4, 32, 0, 6, 0, 4}, Case{12, 8, 4130, 0, 12, 0, 8},
                 Case{1, 20, 4099, 0, 1, 0, 20}, Case{25, 11, 47, 3, 24, 1, 10}}) {
    for (bool with_bias : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "T=" << c.T << " N=" << c.N << " K=" << c.K << " bias=" << with_bias);
      const int64_t ldx = c.K + 5, ldw = c.K + 3, ldo = c.N + 2;
      const std::vector<float> x = Random(c.T * ldx), bias = Random(c.N);
      const std::vector<float> wf = Random(c.N * ldw, 0.1f);
      std::vector<uint16_t> w(wf.size());
      for (size_t i = 0; i < w.size(); ++i) w[i] = FloatToBf16(wf[i]);
      std::vector<float> out(c.T * ldo, -7.0f);
      const GemmArgs a{c.T, c.N, c.K, x.data(), ldx, w.data(), ldw, with_bias ? bias.data() : nullptr, out.data(), ldo};
      k().gemm_bf16_dot(a, c.t0, c.t1, c.n0, c.n1);
      for (int64_t t = 0; t < c.T; ++t) {
        for (int64_t n = 0; n < c.N; ++n) {
          const float got = out[t * ldo + n];
          if (t < c.t0 || t >= c.t1 || n < c.n0 || n >= c.n1) {
            ASSERT_EQ(got, -7.0f) << "t " << t << " n " << n << " is outside the tile";
            continue;
          }
          double want = with_bias ? bias[n] : 0.0, magnitude = 0;
          for (int64_t i = 0; i < c.K; ++i) {
            const double p =
                static_cast<double>(Bf16ToFloat(FloatToBf16(x[t * ldx + i]))) * Bf16ToFloat(w[n * ldw + i]);
            want += p;
            magnitude += std::abs(p);
          }
          ASSERT_NEAR(got, want, 1e-5 * magnitude + 1e-6) << "t " << t << " n " << n;
        }
      }
    }
  }
}

TEST_P(CpuKernelsTest, ExpSubSum) {
  for (int64_t n : kLengths) {
    std::vector<float> p = Random(n, 20.0f);
    if (n > 3) p[3] = -std::numeric_limits<float>::infinity();
    const float m = 5.0f;
    std::vector<double> want(n);
    double sum = 0;
    // The argument is rounded to float as every float implementation rounds it.
    for (int64_t i = 0; i < n; ++i) sum += want[i] = std::exp(static_cast<double>(p[i] - m));
    const float got_sum = k().exp_sub_sum(p.data(), m, n);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_NEAR(p[i], want[i], 4e-7 * want[i] + 1e-37) << "n " << n << " i " << i;
    }
    EXPECT_NEAR(got_sum, sum, 1e-6 * sum + 1e-30) << n;
    if (n > 3) EXPECT_EQ(p[3], 0.0f);
  }
}

TEST_P(CpuKernelsTest, SiluMulRow) {
  for (int64_t n : kLengths) {
    std::vector<float> g = Random(n, 6.0f), u = Random(n), out(n);
    k().silu_mul_row(g.data(), u.data(), n, out.data());
    std::vector<double> want(n);
    for (int64_t i = 0; i < n; ++i) want[i] = g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * u[i];
    EXPECT_LE(RelErr(out, want), 1e-6) << n;
  }
}

TEST_P(CpuKernelsTest, NormsDotAxpy) {
  for (int64_t n : kLengths) {
    if (n == 0) continue;
    std::vector<float> x = Random(n), w = Random(n), r = Random(n), out(n);
    double ss = 0, dot = 0;
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i], dot += static_cast<double>(x[i]) * w[i];
    const double inv = 1.0 / std::sqrt(ss / n + 1e-6);
    std::vector<double> want(n);
    for (int64_t i = 0; i < n; ++i) want[i] = w[i] * x[i] * inv;
    k().rms_norm_row(x.data(), w.data(), 1e-6f, n, out.data());
    EXPECT_LE(RelErr(out, want), 1e-6) << n;

    std::vector<float> r2 = r;
    std::vector<double> sum(n);
    double ss2 = 0;
    for (int64_t i = 0; i < n; ++i) sum[i] = static_cast<double>(r[i]) + x[i], ss2 += sum[i] * sum[i];
    const double inv2 = 1.0 / std::sqrt(ss2 / n + 1e-6);
    for (int64_t i = 0; i < n; ++i) want[i] = w[i] * sum[i] * inv2;
    std::vector<float> xin = x;
    k().add_rms_norm_row(r2.data(), xin.data(), w.data(), 1e-6f, n, xin.data());  // out aliases x
    EXPECT_LE(RelErr(xin, want), 1e-6) << n;
    EXPECT_LE(RelErr(r2, sum), 1e-7) << n;

    EXPECT_NEAR(k().dot(x.data(), w.data(), n), dot, 1e-5 * std::sqrt(static_cast<double>(n))) << n;

    std::vector<float> y = r;
    k().axpy_row(0.5f, x.data(), n, y.data());
    for (int64_t i = 0; i < n; ++i) want[i] = r[i] + 0.5 * x[i];
    EXPECT_LE(RelErr(y, want), 1e-7) << n;
  }
}

TEST_P(CpuKernelsTest, AttendBlock) {
  // MLA's shapes (latent + rope parts of each key row, as in the default model and DeepSeek-V3)
  // and ones with tails, over key counts that cover the by-keys body and its remainder.
  const struct { int64_t da, db; } shapes[] = {{32, 16}, {512, 64}, {24, 5}, {7, 0}, {64, 0}};
  for (const auto& shape : shapes) {
    for (int64_t n : {1, 8, 15, 16, 17, 33, 64}) {
      for (int64_t g : {1, 3}) {
        const int64_t dq = shape.da + shape.db, k_stride = dq + 3, dv = shape.da;
        const std::vector<float> q = Random(g * dq), keys = Random(n * k_stride), values = Random(n * k_stride);
        const float scale = 0.2f;
        AttendArgs args{.qa = q.data(),
                        .qb = q.data() + shape.da,
                        .q_stride = dq,
                        .qb_stride = dq,
                        .da = shape.da,
                        .db = shape.db,
                        .dv = dv,
                        .num_queries = g,
                        .scale = scale};
        std::vector<float> scores(g * n), acc(g * dv, 0.0f);
        std::vector<SoftmaxState> state(g, SoftmaxState{-std::numeric_limits<float>::infinity(), 0.0f});
        k().attend_block(args, keys.data(), k_stride, values.data(), k_stride, n, scores.data(), state.data(),
                         acc.data());
        for (int64_t h = 0; h < g; ++h) {
          std::vector<double> s(n);
          double max = -INFINITY, sum = 0;
          for (int64_t j = 0; j < n; ++j) {
            double d = 0;
            for (int64_t i = 0; i < dq; ++i) d += static_cast<double>(q[h * dq + i]) * keys[j * k_stride + i];
            s[j] = d * scale;
            max = std::max(max, s[j]);
          }
          std::vector<double> want(dv, 0.0);
          for (int64_t j = 0; j < n; ++j) {
            const double p = std::exp(s[j] - max);
            sum += p;
            for (int64_t i = 0; i < dv; ++i) want[i] += p * values[j * k_stride + i];
          }
          const std::string where = "da " + std::to_string(shape.da) + " db " + std::to_string(shape.db) + " n " +
                                    std::to_string(n) + " query " + std::to_string(h);
          EXPECT_NEAR(state[h].max, max, 1e-5 * (1 + std::abs(max))) << where;
          EXPECT_NEAR(state[h].sum, sum, 1e-5 * sum) << where;
          EXPECT_LE(RelErr(std::vector<float>(acc.begin() + h * dv, acc.begin() + (h + 1) * dv), want), 1e-5) << where;
        }
      }
    }
  }
}

}  // namespace
}  // namespace moeserve::cpu
