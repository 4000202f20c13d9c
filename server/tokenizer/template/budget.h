#ifndef MOESERVE_SERVER_TOKENIZER_TEMPLATE_BUDGET_H_
#define MOESERVE_SERVER_TOKENIZER_TEMPLATE_BUDGET_H_

// The limits of one chat-template render and the meter that enforces them. Every evaluation step
// is charged to the meter: each statement and expression evaluated, each loop iteration, each
// container item a built-in creates, copies or compares, and each 64 bytes of string it builds or
// scans. So a template's cost is bounded whatever it computes, printed or not, and a render also
// stops at a wall-clock limit, at the caller's deadline and when the caller cancels.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace moeserve::jinja {

// The defaults leave real templates ~10x room: a 10,000-message conversation (3 MB) costs about
// 1M steps in the DeepSeek-V3 and Qwen3 templates.
struct RenderLimits {
  int64_t max_steps = 10'000'000;  // work units (see above): ~1 s of CPU at most
  // The prompt, and any one string built on the way: 4x the text of a million-token context.
  size_t max_output_bytes = size_t{1} << 24;
  int max_call_depth = 100;                      // macro recursion
  int max_value_depth = 256;                     // lists and dicts nested in one another
  absl::Duration max_time = absl::Seconds(10);   // wall clock per render
  absl::Time deadline = absl::InfiniteFuture();  // the caller's (e.g. an RPC's) deadline
  std::function<bool()> cancelled;               // polled; true stops the render
};

// Meters one render. Errors: InvalidArgument when the template needs more than max_steps or
// max_time (the same input would fail again), DeadlineExceeded past `deadline`, Cancelled when
// `cancelled` returns true. Once failed it stays failed. The clock and `cancelled` are polled every
// kPollUnits units (well under a millisecond of work).
// Not thread-safe: one render owns it.
class Budget {
 public:
  static constexpr int64_t kPollUnits = 1024;

  explicit Budget(const RenderLimits& limits);
  Budget(const Budget&) = delete;
  Budget& operator=(const Budget&) = delete;

  absl::Status Charge(int64_t units = 1) {
    used_ = units >= kMaxCharge - used_ ? kMaxCharge : used_ + units;  // REQUIRES: units >= 0
    if (used_ < next_check_) return absl::OkStatus();
    return Check();
  }
  // One unit per 64 bytes, at least one.
  absl::Status ChargeBytes(size_t bytes) {
    return Charge(1 + static_cast<int64_t>(std::min<size_t>(bytes / 64, kMaxCharge)));
  }

  const RenderLimits& limits() const { return limits_; }
  int64_t used() const { return used_; }

 private:
  static constexpr int64_t kMaxCharge = int64_t{1} << 60;

  absl::Status Check();

  const RenderLimits& limits_;
  const absl::Time start_;
  int64_t used_ = 0;
  int64_t next_check_ = 0;  // 0: check at the next charge
  absl::Status failed_;
};

}  // namespace moeserve::jinja

#endif  // MOESERVE_SERVER_TOKENIZER_TEMPLATE_BUDGET_H_
