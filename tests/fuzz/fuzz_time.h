#ifndef MOESERVE_TESTS_FUZZ_FUZZ_TIME_H_
#define MOESERVE_TESTS_FUZZ_FUZZ_TIME_H_

// The per-input time limits of the fuzz targets are on CPU time: what an input costs, whatever
// the load of the (shared) machine, so that a slow input fails the same way everywhere. Hangs are
// caught on the wall clock by libFuzzer's -timeout (scripts/fuzz.sh --timeout).

#include <ctime>

#include "absl/time/time.h"

namespace moeserve::fuzz {

// The CPU time this process has used, all threads together.
inline absl::Duration ProcessCpuTime() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return absl::DurationFromTimespec(ts);
}

}  // namespace moeserve::fuzz

#endif  // MOESERVE_TESTS_FUZZ_FUZZ_TIME_H_
