#include "server/tokenizer/template/budget.h"

#include "absl/strings/str_cat.h"

namespace moeserve::jinja {

Budget::Budget(const RenderLimits& limits) : limits_(limits), start_(absl::Now()) {}

absl::Status Budget::Check() {
  if (!failed_.ok()) return failed_;
  if (used_ > limits_.max_steps) {
    failed_ = absl::InvalidArgumentError(
        absl::StrCat("chat template evaluation exceeded its budget of ", limits_.max_steps, " steps"));
    return failed_;
  }
  const absl::Time now = absl::Now();
  if (now >= limits_.deadline) {
    failed_ = absl::DeadlineExceededError("deadline expired while rendering the chat template");
  } else if (now - start_ >= limits_.max_time) {
    failed_ = absl::InvalidArgumentError(
        absl::StrCat("chat template rendering exceeded its time limit of ", absl::FormatDuration(limits_.max_time)));
  } else if (limits_.cancelled && limits_.cancelled()) {
    failed_ = absl::CancelledError("request cancelled while rendering the chat template");
  }
  if (!failed_.ok()) {
    next_check_ = 0;
    return failed_;
  }
  next_check_ = std::min(used_ + kPollUnits, limits_.max_steps + 1);
  return absl::OkStatus();
}

}  // namespace moeserve::jinja
