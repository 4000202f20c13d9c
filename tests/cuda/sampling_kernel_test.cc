// The sampling kernel's random numbers (cuda/sampling.cuh, compiled for the host) against the host
// sampler's (server/sampling/philox.h).

#include <cstdint>

#include "cuda/sampling.cuh"
#include "gtest/gtest.h"
#include "server/sampling/philox.h"

namespace moeserve {
namespace {

TEST(SamplingKernelTest, PhiloxDrawMatchesTheHostSampler) {
  // cuda/sampling.cuh's Philox (the device code, compiled for the host) vs server/sampling/philox.h.
  for (uint64_t seed : {uint64_t{0}, uint64_t{1}, uint64_t{0xDEADBEEFCAFEF00D}, ~uint64_t{0}}) {
    for (uint64_t step : {uint64_t{0}, uint64_t{1}, uint64_t{4095}, uint64_t{1} << 33}) {
      EXPECT_EQ(kernels::SamplingUniformKernel(static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                                               static_cast<uint32_t>(step), static_cast<uint32_t>(step >> 32)),
                SamplingUniform(seed, step))
          << seed << " " << step;
    }
  }
}

}  // namespace
}  // namespace moeserve
