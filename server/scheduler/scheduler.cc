#include "server/scheduler/scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"

namespace moeserve {
namespace {

bool Contains(const std::vector<int32_t>& ids, int32_t token) {
  return std::find(ids.begin(), ids.end(), token) != ids.end();
}

absl::Status Positive(const char* name, int64_t value) {
  if (value >= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(name, " must be at least 1, got ", value));
}

absl::Status NonNegative(const char* name, int64_t value) {
  if (value >= 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(name, " must not be negative, got ", value));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(const SchedulerConfig& config, KvCacheManager* kv_cache) {
  if (kv_cache == nullptr) return absl::InvalidArgumentError("scheduler needs a KV cache");
  for (absl::Status status :
       {Positive("max_num_batched_tokens", config.max_num_batched_tokens),
        Positive("max_num_seqs", config.max_num_seqs), Positive("max_model_len", config.max_model_len),
        NonNegative("long_prefill_token_threshold", config.long_prefill_token_threshold),
        NonNegative("max_queued_requests", config.max_queued_requests),
        NonNegative("max_queued_tokens", config.max_queued_tokens),
        NonNegative("num_lookahead_tokens", config.num_lookahead_tokens)}) {
    if (!status.ok()) return status;
  }
  if (config.max_num_batched_tokens < config.max_num_seqs) {
    return absl::InvalidArgumentError(absl::StrCat("max_num_batched_tokens (", config.max_num_batched_tokens,
                                                   ") must be at least max_num_seqs (", config.max_num_seqs,
                                                   ") so every decode fits a step"));
  }
  const int32_t blocks_needed = kv_cache->NumBlocksFor(config.max_model_len);
  if (blocks_needed > kv_cache->num_usable_blocks()) {
    return absl::InvalidArgumentError(absl::StrCat("the KV cache holds ", kv_cache->num_usable_blocks(), " blocks of ",
                                                   kv_cache->block_size(), " tokens, fewer than the ", blocks_needed,
                                                   " one request of max_model_len=", config.max_model_len,
                                                   " tokens needs"));
  }
  return std::unique_ptr<Scheduler>(new Scheduler(config, kv_cache));
}

Scheduler::Scheduler(const SchedulerConfig& config, KvCacheManager* kv_cache) : config_(config), kv_(kv_cache) {}

absl::Status Scheduler::AddRequest(RequestSpec spec) {
  const int64_t num_prompt = static_cast<int64_t>(spec.prompt_token_ids.size());
  if (num_prompt == 0) return absl::InvalidArgumentError("prompt is empty");
  if (num_prompt > config_.max_model_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt has ", num_prompt, " tokens, more than max_model_len=", config_.max_model_len));
  }
  if (spec.max_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens must be at least 1, got ", spec.max_tokens));
  }
  if (spec.min_tokens < 0 || spec.min_tokens > spec.max_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_tokens must be in [0, max_tokens=", spec.max_tokens, "], got ", spec.min_tokens));
  }
  if (requests_.contains(spec.id)) {
    return absl::AlreadyExistsError(absl::StrCat("request id ", spec.id, " is already in use"));
  }
  Request* parent = nullptr;
  if (spec.fork_parent.has_value()) {
    auto it = requests_.find(*spec.fork_parent);
    if (it == requests_.end() || IsFinished(it->second->status())) {
      return absl::InvalidArgumentError(absl::StrCat("fork_parent ", *spec.fork_parent, " is not a live request"));
    }
    parent = it->second.get();
    const absl::Span<const int32_t> parent_prompt = parent->prompt_token_ids();
    if (!std::equal(parent_prompt.begin(), parent_prompt.end(), spec.prompt_token_ids.begin(),
                    spec.prompt_token_ids.end())) {
      return absl::InvalidArgumentError(
          absl::StrCat("fork_parent ", *spec.fork_parent, " has a different prompt than request ", spec.id));
    }
  }
  if (config_.max_queued_requests > 0 && num_waiting() >= config_.max_queued_requests) {
    return absl::ResourceExhaustedError(
        absl::StrCat("request queue is full: ", num_waiting(),
                     " requests waiting (max_queued_requests=", config_.max_queued_requests, ")"));
  }
  if (config_.max_queued_tokens > 0 && queued_tokens_ + num_prompt > config_.max_queued_tokens) {
    return absl::ResourceExhaustedError(absl::StrCat("request queue is full: ", queued_tokens_, " tokens waiting plus ",
                                                     num_prompt,
                                                     " would exceed max_queued_tokens=", config_.max_queued_tokens));
  }
  if (spec.arrival_time == absl::InfinitePast()) spec.arrival_time = absl::Now();
  const RequestId id = spec.id;
  auto request = std::make_unique<Request>(std::move(spec), next_arrival_seq_++);
  if (parent != nullptr) {
    request->fork_parent_ = parent;
    parent->unforked_children_.push_back(request.get());
  }
  Enqueue(request.get());
  requests_.emplace(id, std::move(request));
  return absl::OkStatus();
}

bool Scheduler::Finish(RequestId id, RequestStatus reason) {
  MS_CHECK(IsFinished(reason)) << "Finish with status " << RequestStatusName(reason);
  auto it = requests_.find(id);
  if (it == requests_.end() || IsFinished(it->second->status())) return false;
  Request* request = it->second.get();
  if (request->status_ == RequestStatus::kRunning) {
    RemoveRunning(request);
  } else {
    Dequeue(request);
  }
  request->status_ = reason;
  DetachFromParent(request);
  to_release_.push_back(request);
  return true;
}

void Scheduler::DetachFromParent(Request* child) {
  Request* parent = child->fork_parent_;
  if (parent == nullptr) return;
  auto& siblings = parent->unforked_children_;
  siblings.erase(std::find(siblings.begin(), siblings.end(), child));
  child->fork_parent_ = nullptr;
}

void Scheduler::DetachChildren(Request* parent) {
  for (Request* child : parent->unforked_children_) child->fork_parent_ = nullptr;
  parent->unforked_children_.clear();
}

bool Scheduler::ForkReady(Request* request, ComputedBlocks* fork) const {
  const Request* parent = request->fork_parent_;
  if (parent == nullptr) return true;
  const int32_t shared = request->num_prompt_tokens();
  *fork = kv_->GetForkedBlocks(parent->id(), parent->num_computed_tokens_, shared, request->kv_sequence());
  const int32_t block_size = kv_->block_size();
  const int32_t wanted = std::min(shared, request->num_tokens() - 1) / block_size * block_size;
  return fork->num_tokens >= wanted || IsFinished(parent->status_);
}

void Scheduler::Release(Request* request, SchedulerOutput* out) {
  kv_->Free(request->kv_sequence());
  DetachChildren(request);
  out->finished_request_ids.push_back(request->id());
  requests_.erase(request->id());
}

void Scheduler::Enqueue(Request* request) {
  waiting_.insert(request);
  queued_tokens_ += request->num_tokens();
}

void Scheduler::Dequeue(Request* request) {
  MS_CHECK(waiting_.erase(request) == 1);
  queued_tokens_ -= request->num_tokens();
}

void Scheduler::InsertRunning(Request* request) {
  running_.insert(std::upper_bound(running_.begin(), running_.end(), request, QueueOrder()), request);
}

void Scheduler::RemoveRunning(Request* request) {
  auto it = std::find(running_.begin(), running_.end(), request);
  MS_CHECK(it != running_.end());
  running_.erase(it);
}

int32_t Scheduler::SetDraftTokens(RequestId id, absl::Span<const int32_t> draft_token_ids) {
  MS_CHECK(in_flight_.empty()) << "SetDraftTokens while a step is in flight";
  auto it = requests_.find(id);
  if (it == requests_.end()) return 0;
  Request* request = it->second.get();
  request->ClearDrafts();
  if (request->status_ != RequestStatus::kRunning || request->num_tokens() - request->num_computed_tokens_ != 1) {
    return 0;
  }
  // The drafts and the token sampled after them must fit both limits.
  const int64_t room = std::min<int64_t>(request->spec().max_tokens - request->num_output_tokens(),
                                         config_.max_model_len - request->num_tokens()) -
                       1;
  const int32_t n = static_cast<int32_t>(
      std::clamp<int64_t>(static_cast<int64_t>(draft_token_ids.size()), 0, std::max<int64_t>(room, 0)));
  request->token_ids_.insert(request->token_ids_.end(), draft_token_ids.begin(), draft_token_ids.begin() + n);
  request->num_draft_tokens_ = n;
  return n;
}

void Scheduler::Preempt(Request* request, SchedulerOutput* out) {
  RemoveRunning(request);
  request->ClearDrafts();
  kv_->Free(request->kv_sequence());
  request->num_computed_tokens_ = 0;
  request->status_ = RequestStatus::kPreempted;
  ++request->num_preemptions_;
  Enqueue(request);
  out->preempted_request_ids.push_back(request->id());
}

int32_t Scheduler::PrefillChunk(int32_t remaining, int32_t room) const {
  int32_t n = remaining;
  if (config_.long_prefill_token_threshold > 0) {
    n = std::min(n, config_.long_prefill_token_threshold);
  }
  return std::min(n, room);
}

SchedulerOutput Scheduler::Schedule() {
  MS_CHECK(in_flight_.empty()) << "Schedule() called again before UpdateFromOutput()";
  SchedulerOutput out;
  out.trimmed_request_ids.swap(trimmed_);
  // A finished parent whose children still wait keeps its blocks until they were admitted.
  std::vector<Request*> release_after_admission;
  for (Request* request : to_release_) {
    if (!request->unforked_children_.empty() && kv_->HoldsBlocks(request->id())) {
      release_after_admission.push_back(request);
    } else {
      Release(request, &out);
    }
  }
  to_release_.clear();

  out.scheduled.reserve(running_.size() + 8);
  in_flight_.reserve(running_.size() + 8);
  int32_t budget = config_.max_num_batched_tokens;
  auto is_decode = [](const Request* r) { return r->num_tokens() - r->num_computed_tokens() == 1; };
  // Decodes not yet visited: prefill chunks leave room for them.
  int32_t pending_decodes = static_cast<int32_t>(std::count_if(running_.begin(), running_.end(), is_decode));
  bool preempted = false;
  size_t i = 0;
  while (i < running_.size() && budget > 0) {
    Request* request = running_[i];
    const int32_t remaining = request->num_tokens() - request->num_computed_tokens_;
    int32_t num_new = 1;
    int32_t num_drafts = 0;
    if (is_decode(request)) {
      --pending_decodes;
      // Drafts take what the decodes behind this one leave of the budget.
      num_drafts = std::min(request->num_draft_tokens_, std::max(0, budget - 1 - pending_decodes));
      if (num_drafts < request->num_draft_tokens_) {
        request->token_ids_.resize(request->num_tokens() + num_drafts);
        request->num_draft_tokens_ = num_drafts;
      }
      if (num_drafts > 0) {
        // Lookahead slots, but never past max_model_len.
        const int32_t lookahead =
            std::max(0, std::min(config_.num_lookahead_tokens,
                                 config_.max_model_len - remaining - request->num_computed_tokens_ - num_drafts));
        if (kv_->AllocateSlots(request->kv_sequence(), 1 + num_drafts + lookahead)) {
          num_new = 1 + num_drafts;
        } else {
          request->ClearDrafts();  // run without drafts rather than preempt for them
          num_drafts = 0;
        }
      }
    } else {
      num_new = PrefillChunk(remaining, budget - pending_decodes);
      if (num_new <= 0) {
        ++i;
        continue;
      }
    }
    bool allocated = num_drafts > 0;  // allocated above
    while (!allocated && !(allocated = kv_->AllocateSlots(request->kv_sequence(), num_new))) {
      // Out of blocks: the lowest-priority newest running request (the back) goes. It has not
      // been scheduled this step, unless it is `request` itself.
      Request* victim = running_.back();
      if (victim != request && is_decode(victim)) --pending_decodes;
      Preempt(victim, &out);
      preempted = true;
      if (victim == request) break;
    }
    if (!allocated) break;  // `request` was the last running one
    out.scheduled.push_back({request->id(), request->num_computed_tokens_, num_new, {}, {}, false});
    in_flight_.push_back({request, num_new, num_new == remaining + num_drafts, num_drafts});
    budget -= num_new;
    ++i;
  }

  // Admitting while preempting would only thrash the cache.
  auto next = waiting_.begin();
  while (!preempted && next != waiting_.end() && budget > 0 && num_running() < config_.max_num_seqs) {
    Request* request = *next++;
    ComputedBlocks hit;
    if (!ForkReady(request, &hit)) continue;  // its parent is still computing the prompt
    if (hit.block_ids.empty() && !request->spec().skip_prefix_cache_lookup) {
      hit = kv_->GetComputedBlocks(request->kv_sequence());
    }
    const int32_t remaining = request->num_tokens() - hit.num_tokens;
    const int32_t num_new = PrefillChunk(remaining, budget);
    if (!kv_->AllocateSlots(request->kv_sequence(), num_new, hit)) break;
    Dequeue(request);
    DetachFromParent(request);
    request->num_computed_tokens_ = hit.num_tokens;
    if (request->num_cached_prompt_tokens_ < 0) {
      request->num_cached_prompt_tokens_ = hit.forked ? 0 : std::min(hit.num_tokens, request->num_prompt_tokens());
    }
    request->status_ = RequestStatus::kRunning;
    InsertRunning(request);
    out.scheduled.push_back({request->id(), hit.num_tokens, num_new, {}, {}, false});
    in_flight_.push_back({request, num_new, num_new == remaining, 0});
    budget -= num_new;
  }

  for (Request* request : release_after_admission) Release(request, &out);

  // Spans last: no block table or token vector changes after this point until the next call.
  for (size_t k = 0; k < out.scheduled.size(); ++k) {
    ScheduledRequest& s = out.scheduled[k];
    // Drafts follow the request's tokens in the same vector.
    s.token_ids = absl::MakeConstSpan(in_flight_[k].request->token_ids_).subspan(s.start_position, s.num_new_tokens);
    s.block_ids = kv_->GetBlockIds(s.id);
    s.samples = in_flight_[k].samples;
    s.num_draft_tokens = in_flight_[k].num_draft_tokens;
    out.total_num_scheduled_tokens += s.num_new_tokens;
  }
  return out;
}

RequestStatus Scheduler::CheckStop(const Request& request, int32_t token) const {
  const RequestSpec& spec = request.spec();
  if (request.num_output_tokens() >= spec.min_tokens) {  // the token is already appended
    if (!spec.ignore_eos && Contains(spec.eos_token_ids, token)) {
      return RequestStatus::kFinishedStopped;
    }
    if (Contains(spec.stop_token_ids, token)) return RequestStatus::kFinishedStopped;
  }
  if (request.num_output_tokens() >= spec.max_tokens || request.num_tokens() >= config_.max_model_len) {
    return RequestStatus::kFinishedLength;
  }
  return RequestStatus::kRunning;
}

std::vector<RequestUpdate> Scheduler::UpdateFromOutput(absl::Span<const int32_t> sampled_token_ids,
                                                       absl::Span<const int32_t> num_accepted_drafts) {
  MS_CHECK(sampled_token_ids.size() == in_flight_.size())
      << sampled_token_ids.size() << " sampled tokens for " << in_flight_.size() << " scheduled requests";
  MS_CHECK(num_accepted_drafts.empty() || num_accepted_drafts.size() == in_flight_.size());
  std::vector<RequestUpdate> updates;
  updates.reserve(in_flight_.size());
  for (size_t k = 0; k < in_flight_.size(); ++k) {
    const InFlight& step = in_flight_[k];
    Request* request = step.request;
    if (IsFinished(request->status_)) continue;  // finished or aborted while in flight
    const int32_t accepted = num_accepted_drafts.empty() ? 0 : num_accepted_drafts[k];
    MS_CHECK(accepted >= 0 && accepted <= step.num_draft_tokens)
        << accepted << " of " << step.num_draft_tokens << " drafts accepted for request " << request->id();
    // The KV of rejected drafts was written but does not count: it is overwritten later.
    request->num_computed_tokens_ += step.num_new_tokens - (step.num_draft_tokens - accepted);
    if (!step.samples) continue;
    const int32_t token = sampled_token_ids[k];
    MS_CHECK(token >= 0) << "no token sampled for request " << request->id();
    const absl::Span<const int32_t> drafts = request->draft_token_ids();
    appended_.assign(drafts.begin(), drafts.begin() + accepted);
    appended_.push_back(token);
    request->ClearDrafts();
    RequestStatus status = RequestStatus::kRunning;
    for (size_t j = 0; j < appended_.size() && !IsFinished(status); ++j) {
      request->token_ids_.push_back(appended_[j]);
      status = CheckStop(*request, appended_[j]);
      updates.push_back({request->id(), appended_[j], status, static_cast<int32_t>(j)});
    }
    // Stopped at an accepted draft: the drafts after it were computed but are not tokens.
    request->num_computed_tokens_ = std::min(request->num_computed_tokens_, request->num_tokens());
    if (IsFinished(status)) {
      RemoveRunning(request);
      request->status_ = status;
      // Children still to be admitted fork its blocks first (released by the next Schedule()).
      if (request->unforked_children_.empty()) kv_->Free(request->kv_sequence());
      to_release_.push_back(request);
    } else if (step.num_draft_tokens > 0) {
      // Blocks past the last token held only rejected drafts or lookahead slots.
      if (kv_->TrimSlots(request->kv_sequence(), request->num_tokens()) > 0) {
        trimmed_.push_back(request->id());
      }
    }
  }
  in_flight_.clear();
  return updates;
}

const Request* Scheduler::GetRequest(RequestId id) const {
  auto it = requests_.find(id);
  return it == requests_.end() ? nullptr : it->second.get();
}

absl::Status Scheduler::CheckIntegrity() const {
  if (absl::Status status = kv_->CheckIntegrity(); !status.ok()) return status;
  if (requests_.size() != waiting_.size() + running_.size() + to_release_.size()) {
    return absl::InternalError(absl::StrCat(requests_.size(), " requests but ", waiting_.size(), " waiting + ",
                                            running_.size(), " running + ", to_release_.size(), " to release"));
  }
  if (num_running() > config_.max_num_seqs) {
    return absl::InternalError(absl::StrCat(num_running(), " running > max_num_seqs"));
  }
  int64_t queued_tokens = 0;
  for (const Request* r : waiting_) {
    if (!r->draft_token_ids().empty()) {
      return absl::InternalError(absl::StrCat("queued request ", r->id(), " has drafts"));
    }
    if (r->status() != RequestStatus::kWaiting && r->status() != RequestStatus::kPreempted) {
      return absl::InternalError(absl::StrCat("queued request ", r->id(), " is ", RequestStatusName(r->status())));
    }
    if (kv_->HoldsBlocks(r->id()) || r->num_computed_tokens() != 0) {
      return absl::InternalError(absl::StrCat("queued request ", r->id(), " holds KV state"));
    }
    queued_tokens += r->num_tokens();
  }
  if (queued_tokens != queued_tokens_) {
    return absl::InternalError(absl::StrCat("queued tokens ", queued_tokens, " but counter says ", queued_tokens_));
  }
  int32_t holders = 0;
  for (size_t k = 0; k < running_.size(); ++k) {
    const Request* r = running_[k];
    if (r->status() != RequestStatus::kRunning) {
      return absl::InternalError(absl::StrCat("running request ", r->id(), " is ", RequestStatusName(r->status())));
    }
    if (k > 0 && !QueueOrder()(running_[k - 1], r)) {
      return absl::InternalError("running requests are out of priority order");
    }
    const int64_t covered = int64_t{kv_->block_size()} * kv_->GetBlockIds(r->id()).size();
    if (!kv_->HoldsBlocks(r->id()) || covered < r->num_computed_tokens() ||
        r->num_computed_tokens() >= r->num_tokens()) {
      return absl::InternalError(absl::StrCat("running request ", r->id(), " has ", r->num_computed_tokens(), " of ",
                                              r->num_tokens(), " tokens computed and blocks for ", covered));
    }
    ++holders;
  }
  for (const Request* r : to_release_) {
    if (!IsFinished(r->status())) {
      return absl::InternalError(absl::StrCat("released request ", r->id(), " is not finished"));
    }
    if (kv_->HoldsBlocks(r->id())) ++holders;
  }
  for (const auto& [id, r] : requests_) {
    if (const Request* parent = r->fork_parent_; parent != nullptr) {
      const bool linked =
          std::count(parent->unforked_children_.begin(), parent->unforked_children_.end(), r.get()) == 1;
      if (!linked || r->status() != RequestStatus::kWaiting || !requests_.contains(parent->id())) {
        return absl::InternalError(absl::StrCat("request ", id, " has a stale fork link"));
      }
    }
    for (const Request* child : r->unforked_children_) {
      if (child->fork_parent_ != r.get()) {
        return absl::InternalError(absl::StrCat("request ", id, " lists a child it does not own"));
      }
    }
  }
  if (holders != kv_->num_requests()) {
    return absl::InternalError(
        absl::StrCat("the KV cache tracks ", kv_->num_requests(), " requests, the scheduler ", holders));
  }
  return absl::OkStatus();
}

}  // namespace moeserve
