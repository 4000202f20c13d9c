#include "clients/bench/arrivals.h"

#include <cmath>

namespace moeserve::bench {

// Gamma(shape k, scale theta) has mean k*theta and variance k*theta^2: theta = 1/(rate*k) keeps
// the mean at 1/rate, and the variance is 1/(k*rate^2).
ArrivalGenerator::ArrivalGenerator(double rate, double burstiness, uint64_t seed)
    : infinite_(std::isinf(rate)), rng_(seed), gamma_(burstiness, infinite_ ? 1.0 : 1.0 / (rate * burstiness)) {}

double ArrivalGenerator::NextGap() { return infinite_ ? 0.0 : gamma_(rng_); }

}  // namespace moeserve::bench
