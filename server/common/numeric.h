#ifndef MOESERVE_SERVER_COMMON_NUMERIC_H_
#define MOESERVE_SERVER_COMMON_NUMERIC_H_

// Conversions between the storage formats of model weights and fp32. Bit-exact with PyTorch:
// bf16 and fp16 round to nearest even; fp8 e4m3 is the OCP "fn" variant (no infinities, 0x7f/0xff
// are NaN, max finite 448).

#include <cstdint>
#include <cstring>

namespace moeserve {

inline float Bf16ToFloat(uint16_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline uint16_t FloatToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + rounding) >> 16);
}

float Fp16ToFloat(uint16_t bits);
uint16_t FloatToFp16(float f);
float Fp8E4M3ToFloat(uint8_t bits);
uint8_t FloatToFp8E4M3(float f);  // saturates to ±448, round to nearest even

}  // namespace moeserve

#endif  // MOESERVE_SERVER_COMMON_NUMERIC_H_
