#ifndef MOESERVE_SERVER_SCHEDULER_REQUEST_H_
#define MOESERVE_SERVER_SCHEDULER_REQUEST_H_

// Request: the sampling-independent state of one generation request as the scheduler tracks it.
// Tokens are the prompt followed by the outputs so far; num_computed_tokens of them have their KV
// written. There are no prefill and decode phases: a request with num_tokens() -
// num_computed_tokens() > 1 still has prompt (or, after preemption, output) tokens to compute.
// A decoding request may also carry draft tokens (speculative decoding): proposed continuations
// that the next step verifies. They are not tokens of the request (num_tokens() excludes them, the
// KV cache manager never sees them) until the step accepts them.
//
// Owned and mutated by the Scheduler; others read it. Requires external synchronization.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/kv/kv_cache_manager.h"

namespace moeserve {

enum class RequestStatus {
  kWaiting,          // queued, never scheduled
  kRunning,          // holds blocks, scheduled in turn
  kPreempted,        // lost its blocks to a higher-priority or older request; queued to recompute
  kFinishedStopped,  // sampled an EOS or stop token id (or the engine matched a stop string)
  kFinishedLength,   // reached max_tokens or max_model_len
  kFinishedAborted,  // cancelled by the client, a deadline or shutdown
  kFinishedError,    // failed alone (e.g. NaN logits)
};

bool IsFinished(RequestStatus status);
const char* RequestStatusName(RequestStatus status);

// What the caller specifies when adding a request.
struct RequestSpec {
  RequestId id = 0;
  std::vector<int32_t> prompt_token_ids;
  int32_t max_tokens = 16;              // output tokens, >= 1
  int32_t min_tokens = 0;               // stop token ids do not finish the request before this many outputs
  int32_t priority = 0;                 // lower is served first
  std::string cache_salt;               // separates prefix caches (per tenant); empty: shared
  std::vector<int32_t> eos_token_ids;   // ignored when ignore_eos
  std::vector<int32_t> stop_token_ids;  // always honoured
  bool ignore_eos = false;
  absl::Time arrival_time = absl::InfinitePast();  // InfinitePast: set by AddRequest to now
  // Parallel sampling: a live request with the same prompt (the first sample of the group). This
  // one waits until the parent has computed the prompt, then holds the parent's full prompt
  // blocks by reference instead of computing them (KvCacheManager::GetForkedBlocks).
  std::optional<RequestId> fork_parent;
  // Reads no blocks from the prefix cache: every prompt position is computed (prompt_logprobs
  // need the logits of each one). The request still caches its own full blocks for others.
  bool skip_prefix_cache_lookup = false;
};

class Request {
 public:
  Request(RequestSpec spec, uint64_t arrival_seq);

  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;

  RequestId id() const { return spec_.id; }
  const RequestSpec& spec() const { return spec_; }
  int32_t priority() const { return spec_.priority; }
  uint64_t arrival_seq() const { return arrival_seq_; }  // FCFS order among equal priorities
  absl::Time arrival_time() const { return spec_.arrival_time; }
  RequestStatus status() const { return status_; }

  int32_t num_prompt_tokens() const { return num_prompt_tokens_; }
  int32_t num_output_tokens() const { return num_tokens() - num_prompt_tokens_; }
  int32_t num_tokens() const { return static_cast<int32_t>(token_ids_.size()) - num_draft_tokens_; }
  int32_t num_computed_tokens() const { return num_computed_tokens_; }
  absl::Span<const int32_t> token_ids() const { return absl::MakeConstSpan(token_ids_).first(num_tokens()); }
  absl::Span<const int32_t> prompt_token_ids() const {
    return absl::MakeConstSpan(token_ids_).first(num_prompt_tokens_);
  }
  absl::Span<const int32_t> output_token_ids() const { return token_ids().subspan(num_prompt_tokens_); }
  // Draft tokens to verify after the last token (Scheduler::SetDraftTokens); empty when none.
  absl::Span<const int32_t> draft_token_ids() const { return absl::MakeConstSpan(token_ids_).subspan(num_tokens()); }
  // The outputs followed by the drafts, in one span: the context of the verify position after
  // draft j is its first num_output_tokens() + j entries.
  absl::Span<const int32_t> output_and_draft_token_ids() const {
    return absl::MakeConstSpan(token_ids_).subspan(num_prompt_tokens_);
  }

  // Prompt tokens served from the prefix cache at first admission (usage reporting).
  int32_t num_cached_prompt_tokens() const { return num_cached_prompt_tokens_; }
  int32_t num_preemptions() const { return num_preemptions_; }

 private:
  friend class Scheduler;

  KvSequence kv_sequence() {
    return KvSequence{spec_.id, token_ids(), num_computed_tokens_, spec_.cache_salt, &block_hashes_};
  }
  void ClearDrafts() {
    token_ids_.resize(token_ids_.size() - num_draft_tokens_);
    num_draft_tokens_ = 0;
  }

  RequestSpec spec_;  // prompt_token_ids moved into token_ids_
  const uint64_t arrival_seq_;
  std::vector<int32_t> token_ids_;  // prompt, outputs, then num_draft_tokens_ drafts
  const int32_t num_prompt_tokens_;
  int32_t num_draft_tokens_ = 0;
  int32_t num_computed_tokens_ = 0;
  RequestStatus status_ = RequestStatus::kWaiting;
  int32_t num_cached_prompt_tokens_ = -1;  // -1 until first admitted
  int32_t num_preemptions_ = 0;
  std::vector<BlockHash> block_hashes_;  // memo for the KV cache manager
  // Fork links, set only until the child's first admission (or until either finishes): the
  // child's parent, and the parent's children that have not taken their fork yet.
  Request* fork_parent_ = nullptr;
  std::vector<Request*> unforked_children_;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_SCHEDULER_REQUEST_H_
