#include "server/scheduler/request.h"

#include <utility>

namespace moeserve {

bool IsFinished(RequestStatus status) {
  switch (status) {
    case RequestStatus::kWaiting:
    case RequestStatus::kRunning:
    case RequestStatus::kPreempted: return false;
    default: return true;
  }
}

const char* RequestStatusName(RequestStatus status) {
  switch (status) {
    case RequestStatus::kWaiting: return "waiting";
    case RequestStatus::kRunning: return "running";
    case RequestStatus::kPreempted: return "preempted";
    case RequestStatus::kFinishedStopped: return "finished_stopped";
    case RequestStatus::kFinishedLength: return "finished_length";
    case RequestStatus::kFinishedAborted: return "finished_aborted";
    case RequestStatus::kFinishedError: return "finished_error";
  }
  return "unknown";
}

Request::Request(RequestSpec spec, uint64_t arrival_seq)
    : spec_(std::move(spec)),
      arrival_seq_(arrival_seq),
      token_ids_(std::move(spec_.prompt_token_ids)),
      num_prompt_tokens_(static_cast<int32_t>(token_ids_.size())) {
  spec_.prompt_token_ids.clear();
}

}  // namespace moeserve
