#ifndef MOESERVE_SERVER_SCHEDULER_SCHEDULER_H_
#define MOESERVE_SERVER_SCHEDULER_SCHEDULER_H_

// Scheduler: continuous batching under a token budget, with chunked prefill, priorities,
// preemption by recompute and admission control. Bookkeeping only: it hands the model runner
// token ranges and block tables, and reads back one sampled token per request.
//
// One engine step:
//   SchedulerOutput out = scheduler.Schedule();
//   ... forward pass over out.scheduled, sample where `samples` ...
//   std::vector<RequestUpdate> updates = scheduler.UpdateFromOutput(sampled);
//
// Policy of Schedule():
//   1. Requests finished or aborted since the last step release their blocks (finished_request_ids).
//   2. Running requests, highest priority (lowest value) and oldest first, each get their next
//      tokens: 1 for a decode, a chunk for an unfinished prefill. Prefill chunks leave budget for
//      the running decodes behind them, so a long prompt never delays anyone's next token.
//   3. When the KV cache is full, the lowest-priority, most recently arrived running request is
//      preempted: its blocks are freed (computed full blocks stay in the prefix cache), its
//      num_computed_tokens drops to 0 and it is queued again to recompute prompt + outputs; its
//      outputs are kept, so it continues exactly where it stopped.
//   4. If nothing was preempted, waiting requests in (priority, arrival) order are admitted while
//      budget, max_num_seqs and blocks last, each starting after its cached prefix
//      (RequestSpec::skip_prefix_cache_lookup: from position 0).
//   5. Speculative decoding: a decoding request given draft tokens (SetDraftTokens) is scheduled
//      with its last token followed by the drafts, so the step computes all of them and samples at
//      every one of those positions (verification). Its blocks cover the drafts plus
//      num_lookahead_tokens more (slots a drafter writes ahead, e.g. MTP's chained positions).
//      Drafts that do not fit the budget are dropped; when the drafts' blocks do not fit, the
//      request runs without drafts rather than preempting anyone. UpdateFromOutput appends the
//      accepted drafts and the token sampled after them, counts only those as computed (the KV of
//      rejected drafts is overwritten later, and the prefix cache never sees it), and frees the
//      blocks that held nothing but rejected drafts or lookahead slots.
//   6. Parallel sampling: a request with a fork_parent is skipped at admission (others pass it)
//      until its live parent has computed the prompt's full blocks, then admitted holding those
//      blocks by reference (KvCacheManager::GetForkedBlocks), computing only its tail. A parent
//      that finishes before its children were admitted keeps its blocks until the admission
//      phase of the next Schedule(). A child whose parent is gone, or that was preempted after
//      its fork, is admitted like any request (prefix cache or full recompute).
//
// Requires external synchronization: one engine thread calls every method.

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/kv/kv_cache_manager.h"
#include "server/scheduler/request.h"

namespace moeserve {

struct SchedulerConfig {
  int32_t max_num_batched_tokens = 2048;     // token budget of one step; >= max_num_seqs
  int32_t max_num_seqs = 256;                // running requests at most
  int32_t max_model_len = 4096;              // prompt + output tokens at most
  int32_t long_prefill_token_threshold = 0;  // > 0: a prefill chunk takes at most this many
  int32_t max_queued_requests = 0;           // > 0: AddRequest refuses beyond this many waiting requests
  int64_t max_queued_tokens = 0;             // > 0: ... or beyond this many tokens waiting to be computed
  // Slots past the verified drafts that a step with drafts also reserves (see policy 5).
  int32_t num_lookahead_tokens = 0;
};

struct ScheduledRequest {
  RequestId id = 0;
  int32_t start_position = 0;  // position of the first new token == its num_computed_tokens
  int32_t num_new_tokens = 0;
  // The new tokens, positions [start_position, start_position + num_new_tokens), and the
  // request's full block table. Both valid until the next non-const Scheduler call.
  absl::Span<const int32_t> token_ids;
  absl::Span<const int32_t> block_ids;
  // The step computes the request's last known token: sample the next one from its logits.
  bool samples = false;
  // Draft tokens verified by this step: the last num_draft_tokens of token_ids (after the last
  // known token). The step samples at each of the 1 + num_draft_tokens positions.
  int32_t num_draft_tokens = 0;
};

struct SchedulerOutput {
  std::vector<ScheduledRequest> scheduled;  // running requests first, then newly admitted ones
  int32_t total_num_scheduled_tokens = 0;
  // Lost their blocks this step (the model runner drops any per-request state it keeps).
  std::vector<RequestId> preempted_request_ids;
  // Finished, stopped or aborted since the last Schedule(); their blocks are now released.
  std::vector<RequestId> finished_request_ids;
  // Still running, but their block tables lost tail blocks since the last Schedule() (blocks that
  // held only rejected drafts): a copy of an earlier table must be rewritten, not extended.
  std::vector<RequestId> trimmed_request_ids;
};

// One token a step appended to a request. A request that verified drafts gets one update per
// accepted draft and one for the token sampled after them, in order (fewer when it finished on
// the way).
struct RequestUpdate {
  RequestId id = 0;
  int32_t new_token = 0;
  RequestStatus status = RequestStatus::kRunning;  // kRunning or the reason it finished
  int32_t offset = 0;  // which of the entry's verify positions sampled it (0 without drafts)
};

class Scheduler {
 public:
  // Fails with InvalidArgument naming the field when the config is inconsistent, including a
  // KV cache too small to hold one max_model_len request. `kv_cache` must outlive the scheduler.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(const SchedulerConfig& config, KvCacheManager* kv_cache);

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request. InvalidArgument (naming the field or limit) for an empty or too long
  // prompt or bad max_tokens/min_tokens; AlreadyExists for a live id; ResourceExhausted, saying
  // which limit and its value, when the queue is full.
  absl::Status AddRequest(RequestSpec spec);

  // Ends a live request in any state with `reason` (a finished status). Its blocks are released
  // and its id reported by the next Schedule(); a token sampled for it in the step in flight is
  // dropped. Returns false for an unknown or already finished id.
  bool Finish(RequestId id, RequestStatus reason);
  bool Abort(RequestId id) { return Finish(id, RequestStatus::kFinishedAborted); }

  // Gives a running, decoding request draft tokens for the next Schedule(), replacing any it had;
  // kept at most as many as fit before max_tokens and max_model_len with the token sampled after
  // them. Returns how many were kept: 0 (nothing set) for an unknown, waiting or prefilling
  // request. REQUIRES: no step in flight (between UpdateFromOutput() and Schedule()).
  int32_t SetDraftTokens(RequestId id, absl::Span<const int32_t> draft_token_ids);

  // REQUIRES: UpdateFromOutput() was called for the previous Schedule().
  SchedulerOutput Schedule();

  // `sampled_token_ids[i]` is the token sampled for the i-th entry of the last Schedule()'s
  // `scheduled`; entries with samples == false are ignored. For an entry with drafts,
  // `num_accepted_drafts[i]` of them were accepted (empty span: none anywhere) and
  // sampled_token_ids[i] is the token sampled after the last accepted one. Advances
  // num_computed_tokens, appends tokens, and finishes requests on an EOS (unless ignore_eos) or
  // stop token id after min_tokens, on max_tokens or on max_model_len, checked token by token
  // (later accepted tokens are dropped). Finished requests free their blocks now.
  std::vector<RequestUpdate> UpdateFromOutput(absl::Span<const int32_t> sampled_token_ids,
                                              absl::Span<const int32_t> num_accepted_drafts = {});

  // A live request, or one finished since the last Schedule(); null otherwise.
  const Request* GetRequest(RequestId id) const;

  const SchedulerConfig& config() const { return config_; }
  int32_t num_waiting() const { return static_cast<int32_t>(waiting_.size()); }
  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  int64_t num_queued_tokens() const { return queued_tokens_; }
  bool HasUnfinishedRequests() const { return !waiting_.empty() || !running_.empty(); }

  // KvCacheManager::CheckIntegrity() plus: every request is in exactly one of waiting, running
  // and to-release; only running and to-release requests hold blocks, running ones enough for
  // their computed tokens; queue counters match.
  absl::Status CheckIntegrity() const;

 private:
  struct QueueOrder {
    bool operator()(const Request* a, const Request* b) const {
      if (a->priority() != b->priority()) return a->priority() < b->priority();
      return a->arrival_seq() < b->arrival_seq();
    }
  };
  struct InFlight {
    Request* request;
    int32_t num_new_tokens;
    bool samples;
    int32_t num_draft_tokens;
  };

  Scheduler(const SchedulerConfig& config, KvCacheManager* kv_cache);

  void Enqueue(Request* request);
  void Dequeue(Request* request);
  void InsertRunning(Request* request);
  void RemoveRunning(Request* request);
  void Preempt(Request* request, SchedulerOutput* out);
  // Unlinks a child from its parent's unforked children (first admission or finish), or a parent
  // from all its unforked children (release).
  static void DetachFromParent(Request* child);
  static void DetachChildren(Request* parent);
  // A child's fork of its parent's prompt blocks in *fork (empty when none). False while a child
  // never admitted should rather wait for its live parent to compute more of the prompt.
  bool ForkReady(Request* request, ComputedBlocks* fork) const;
  void Release(Request* request, SchedulerOutput* out);
  int32_t PrefillChunk(int32_t remaining, int32_t room) const;
  RequestStatus CheckStop(const Request& request, int32_t token) const;

  const SchedulerConfig config_;
  KvCacheManager* const kv_;
  uint64_t next_arrival_seq_ = 0;
  absl::flat_hash_map<RequestId, std::unique_ptr<Request>> requests_;
  std::set<Request*, QueueOrder> waiting_;  // waiting and preempted
  std::vector<Request*> running_;           // sorted by QueueOrder
  std::vector<Request*> to_release_;        // finished; reported by the next Schedule()
  std::vector<InFlight> in_flight_;         // the last Schedule()'s requests, until updated
  std::vector<int32_t> appended_;           // UpdateFromOutput scratch: one entry's new tokens
  std::vector<RequestId> trimmed_;          // reported by the next Schedule()
  int64_t queued_tokens_ = 0;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_SCHEDULER_SCHEDULER_H_
