#include "server/backend/cpu/moe_w8a8_reference.h"

#include <algorithm>
#include <cmath>

#include "server/common/numeric.h"

namespace moeserve {

void QuantizeDequantizeFp8Blocks(absl::Span<float> x, int64_t k) {
  for (size_t b = 0; b + 128 <= x.size(); b += 128) {
    float amax = 0.0f;
    for (int i = 0; i < 128; ++i) amax = std::max(amax, std::fabs(x[b + i]));
    const float s = std::max(amax, 1e-4f) / 448.0f;
    for (int i = 0; i < 128; ++i) x[b + i] = Fp8E4M3ToFloat(FloatToFp8E4M3(x[b + i] / s)) * s;
  }
  (void)k;  // blocks never straddle rows since k % 128 == 0
}

std::vector<float> MoeExpertsW8A8Reference(const MoeW8A8ReferenceInputs& in) {
  const int64_t T = in.tokens, d = in.hidden, I = in.intermediate, K = in.top_k;
  const int64_t S = in.num_shared, E = in.num_experts;
  std::vector<float> out(T * d, 0.0f);
  if (!in.shared_out.empty()) std::copy(in.shared_out.begin(), in.shared_out.end(), out.begin());
  std::vector<float> xq(d), h(I), y(d);
  for (int64_t t = 0; t < T; ++t) {
    std::copy_n(in.x.begin() + t * d, d, xq.begin());
    QuantizeDequantizeFp8Blocks(absl::MakeSpan(xq), d);
    for (int64_t p = 0; p < K + S; ++p) {
      const int64_t e = p < K ? in.ids[t * K + p] : E - S + (p - K);
      const float w = p < K ? in.weights[t * K + p] : 1.0f;
      const float* gu = in.gate_up.data() + e * 2 * I * d;
      for (int64_t j = 0; j < I; ++j) {
        float g = 0.0f, u = 0.0f;
        for (int64_t c = 0; c < d; ++c) {
          g += gu[j * d + c] * xq[c];
          u += gu[(I + j) * d + c] * xq[c];
        }
        h[j] = Bf16ToFloat(FloatToBf16(g / (1.0f + std::exp(-g)) * u));
      }
      QuantizeDequantizeFp8Blocks(absl::MakeSpan(h), I);
      const float* dn = in.down.data() + e * d * I;
      for (int64_t c = 0; c < d; ++c) {
        float acc = 0.0f;
        for (int64_t j = 0; j < I; ++j) acc += dn[c * I + j] * h[j];
        out[t * d + c] += w * acc;
      }
    }
  }
  return out;
}

}  // namespace moeserve
