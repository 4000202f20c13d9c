#include "server/model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace moeserve {
namespace {

double YarnMscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

// Dimension index at which a frequency completes `rotations` turns over `max_pos` positions.
double YarnCorrectionDim(double rotations, int64_t dim, double base, int64_t max_pos) {
  return (static_cast<double>(dim) * std::log(static_cast<double>(max_pos) / (rotations * 2.0 * std::numbers::pi))) /
         (2.0 * std::log(base));
}

}  // namespace

RopeFrequencies ComputeRopeFrequencies(const RopeConfig& rope, int64_t rotary_dim) {
  const int64_t half = rotary_dim / 2;
  RopeFrequencies out;
  out.inv_freq.resize(half);
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(rotary_dim);
    const float pos_freq = std::pow(static_cast<float>(rope.theta), exponent);
    out.inv_freq[i] = 1.0f / pos_freq;
  }
  switch (rope.type) {
    case RopeConfig::Type::kDefault: break;
    case RopeConfig::Type::kLinear:
      for (float& f : out.inv_freq) f = f / static_cast<float>(rope.factor);
      break;
    case RopeConfig::Type::kLlama3: {
      const double old_len = static_cast<double>(rope.original_max_position_embeddings);
      const double low_wavelen = old_len / rope.low_freq_factor;
      const double high_wavelen = old_len / rope.high_freq_factor;
      const float factor = static_cast<float>(rope.factor);
      for (float& f : out.inv_freq) {
        const float wavelen = 2.0f * static_cast<float>(std::numbers::pi) / f;
        if (wavelen > low_wavelen) {
          f = f / factor;  // low frequencies: fully interpolated
        } else if (wavelen >= high_wavelen) {
          const float smooth = static_cast<float>((old_len / wavelen - rope.low_freq_factor) /
                                                  (rope.high_freq_factor - rope.low_freq_factor));
          f = (1.0f - smooth) * f / factor + smooth * f;
        }
      }
      break;
    }
    case RopeConfig::Type::kYarn: {
      const double factor = rope.factor;
      if (rope.attention_factor) {
        out.attention_factor = *rope.attention_factor;
      } else if (rope.mscale != 0.0 && rope.mscale_all_dim != 0.0) {
        out.attention_factor = YarnMscale(factor, rope.mscale) / YarnMscale(factor, rope.mscale_all_dim);
      } else {
        out.attention_factor = YarnMscale(factor, 1.0);
      }
      double low = YarnCorrectionDim(rope.beta_fast, rotary_dim, rope.theta, rope.original_max_position_embeddings);
      double high = YarnCorrectionDim(rope.beta_slow, rotary_dim, rope.theta, rope.original_max_position_embeddings);
      if (rope.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, static_cast<double>(rotary_dim - 1));
      if (low == high) high += 0.001;
      for (int64_t i = 0; i < half; ++i) {
        const float ramp = std::clamp(static_cast<float>((static_cast<double>(i) - low) / (high - low)), 0.0f, 1.0f);
        const float extrapolation_weight = 1.0f - ramp;
        const float extrapolated = out.inv_freq[i];
        const float interpolated = extrapolated / static_cast<float>(factor);
        out.inv_freq[i] = interpolated * (1.0f - extrapolation_weight) + extrapolated * extrapolation_weight;
      }
      break;
    }
  }
  return out;
}

std::vector<float> BuildRopeCosSinTable(const RopeFrequencies& freqs, int64_t max_position) {
  const int64_t half = static_cast<int64_t>(freqs.inv_freq.size());
  std::vector<float> table(static_cast<size_t>(max_position * half * 2));
  for (int64_t p = 0; p < max_position; ++p) {
    float* row = table.data() + p * half * 2;
    for (int64_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(p) * freqs.inv_freq[i];  // fp32 product, as transformers
      row[i] = static_cast<float>(std::cos(static_cast<double>(angle)) * freqs.attention_factor);
      row[half + i] = static_cast<float>(std::sin(static_cast<double>(angle)) * freqs.attention_factor);
    }
  }
  return table;
}

}  // namespace moeserve
