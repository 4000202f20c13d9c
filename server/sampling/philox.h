#ifndef MOESERVE_SERVER_SAMPLING_PHILOX_H_
#define MOESERVE_SERVER_SAMPLING_PHILOX_H_

// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
// counter-based generator that cuRAND also implements. A pure function of (counter, key): the
// sampler keys it by the request's seed and counts by the output position, so a request's draws
// depend on nothing else and a CUDA kernel reproduces them bit for bit with the same few lines.
//
// Sampling draw for output position `step` of a request with 64-bit key `seed`:
//   key     = {lo32(seed), hi32(seed)}
//   counter = {lo32(step), hi32(step), 0 (sample index, for n > 1 later), 0 (draw index)}
//   r       = Philox4x32_10(counter, key)
//   u       = ((uint64(r[1]) << 32 | r[0]) >> 11) * 2^-53        // double in [0, 1)
// Each round: (hi0, lo0) = mulhilo(0xD2511F53, c0); (hi1, lo1) = mulhilo(0xCD9E8D57, c2);
//   c = {hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0}; then k0 += 0x9E3779B9, k1 += 0xBB67AE85.
// Ten rounds, the key bumped between rounds. Known-answer tests are in tests/sampling.

#include <array>
#include <cstdint>

namespace moeserve {

using Philox4x32 = std::array<uint32_t, 4>;

constexpr Philox4x32 Philox4x32_10(Philox4x32 c, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    const uint64_t p0 = uint64_t{kM0} * c[0];
    const uint64_t p1 = uint64_t{kM1} * c[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c = {hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0};
  }
  return c;
}

// The uniform double in [0, 1) that drives the token draw at output position `step`.
constexpr double SamplingUniform(uint64_t seed, uint64_t step) {
  const Philox4x32 r = Philox4x32_10({static_cast<uint32_t>(step), static_cast<uint32_t>(step >> 32), 0u, 0u},
                                     static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  const uint64_t bits = (uint64_t{r[1]} << 32 | r[0]) >> 11;
  return static_cast<double>(bits) * 0x1.0p-53;
}

}  // namespace moeserve

#endif  // MOESERVE_SERVER_SAMPLING_PHILOX_H_
