// Request arrival times for an open-loop load: gaps drawn from a gamma distribution with mean
// 1/rate and shape `burstiness` (1 = exponential gaps, a Poisson process; < 1 burstier, > 1 more
// regular). Rate +inf sends everything at once (all gaps 0). Seeded: equal seeds give equal gaps.
// Requires external synchronization.
#ifndef MOESERVE_CLIENTS_BENCH_ARRIVALS_H_
#define MOESERVE_CLIENTS_BENCH_ARRIVALS_H_

#include <cstdint>
#include <random>

namespace moeserve::bench {

class ArrivalGenerator {
 public:
  // REQUIRES: rate > 0 (may be +inf), burstiness > 0.
  ArrivalGenerator(double rate, double burstiness, uint64_t seed);

  // Seconds from the previous arrival to the next one.
  double NextGap();

 private:
  bool infinite_;
  std::mt19937_64 rng_;
  std::gamma_distribution<double> gamma_;
};

}  // namespace moeserve::bench

#endif  // MOESERVE_CLIENTS_BENCH_ARRIVALS_H_
