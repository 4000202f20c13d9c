#ifndef MOESERVE_TESTS_SCHEDULER_FAKE_MODEL_H_
#define MOESERVE_TESTS_SCHEDULER_FAKE_MODEL_H_

// A deterministic stand-in for the model runner that exercises the block tables for real: every
// computed position writes a value into its KV slot, computed from the value in the slot of the
// previous position and of position p / 2, read through the request's block table. A wrong
// block table, a block reused while still held, or a prefix hit on wrong content changes the
// values and hence the sampled tokens. ReferenceOutput() computes the same chain without any
// cache: what the request produces alone.
//
// Speculative decoding: an entry with drafts samples at each of its positions and accepts the
// drafts while the sampled token equals the next draft (greedy verification). The rejected
// drafts' slots and every slot of the entry's blocks past its tokens (lookahead slots a drafter
// may write) are poisoned, so a step that later reads one of them without recomputing it
// produces wrong tokens.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "server/common/logging.h"
#include "server/kv/kv_cache_manager.h"
#include "server/scheduler/scheduler.h"

namespace moeserve::testing {

inline uint64_t Mix(uint64_t a, uint64_t b, int32_t token, int32_t position) {
  uint64_t x = a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull) ^
               (static_cast<uint64_t>(static_cast<uint32_t>(token)) << 20) ^ static_cast<uint64_t>(position);
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 29;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 32);
}

constexpr uint64_t kSeedValue = 12345;

inline int32_t TokenFromValue(uint64_t value, int32_t vocab_size) {
  return static_cast<int32_t>((value >> 17) % static_cast<uint64_t>(vocab_size));
}

class FakeModel {
 public:
  FakeModel(int32_t num_blocks, int32_t block_size, int32_t vocab_size)
      : block_size_(block_size), vocab_size_(vocab_size), slots_(size_t(num_blocks) * block_size) {}

  // One forward pass; returns a token per scheduled request (0 where it does not sample) and,
  // when `accepted` is given, the number of drafts each entry accepted.
  std::vector<int32_t> Run(const SchedulerOutput& out, std::vector<int32_t>* accepted = nullptr) {
    std::vector<int32_t> sampled;
    if (accepted != nullptr) accepted->clear();
    for (const ScheduledRequest& s : out.scheduled) {
      uint64_t value = 0;
      std::vector<int32_t> at;  // the token sampled at each position
      for (int32_t k = 0; k < s.num_new_tokens; ++k) {
        const int32_t p = s.start_position + k;
        const uint64_t prev = p == 0 ? kSeedValue : Read(s, p - 1);
        const uint64_t half = p == 0 ? 0 : Read(s, p / 2);
        value = Mix(prev, half, s.token_ids[k], p);
        Slot(s, p) = value;
        at.push_back(TokenFromValue(value, vocab_size_));
      }
      // Verify: position j's token must equal draft j + 1 to go on.
      const int32_t first = s.num_new_tokens - 1 - s.num_draft_tokens;
      int32_t n = 0;
      while (n < s.num_draft_tokens && at[first + n] == s.token_ids[first + n + 1]) ++n;
      if (s.num_draft_tokens > 0) {
        const int32_t end = static_cast<int32_t>(s.block_ids.size()) * block_size_;
        for (int32_t p = s.start_position + first + n + 1; p < end; ++p) Slot(s, p) = kPoison;
      }
      sampled.push_back(s.samples ? at[first + n] : 0);
      if (accepted != nullptr) accepted->push_back(n);
    }
    return sampled;
  }

  static constexpr uint64_t kPoison = 0xdeadbeefdeadbeefull;

 private:
  uint64_t& Slot(const ScheduledRequest& s, int32_t position) {
    const size_t index = position / block_size_;
    MS_CHECK(index < s.block_ids.size()) << "position " << position << " beyond the block table";
    MS_CHECK(s.block_ids[index] != 0) << "null block in a block table";
    return slots_[size_t(s.block_ids[index]) * block_size_ + position % block_size_];
  }
  uint64_t Read(const ScheduledRequest& s, int32_t position) { return Slot(s, position); }

  const int32_t block_size_;
  const int32_t vocab_size_;
  std::vector<uint64_t> slots_;
};

// The tokens `spec` produces alone, with the same stopping rules as the Scheduler (max_model_len
// given separately).
inline std::vector<int32_t> ReferenceOutput(const RequestSpec& spec, int32_t vocab_size, int32_t max_model_len) {
  std::vector<int32_t> tokens = spec.prompt_token_ids;
  std::vector<uint64_t> values;
  std::vector<int32_t> output;
  auto contains = [](const std::vector<int32_t>& v, int32_t t) { return std::find(v.begin(), v.end(), t) != v.end(); };
  for (;;) {
    while (values.size() < tokens.size()) {
      const int32_t p = static_cast<int32_t>(values.size());
      const uint64_t prev = p == 0 ? kSeedValue : values[p - 1];
      const uint64_t half = p == 0 ? 0 : values[p / 2];
      values.push_back(Mix(prev, half, tokens[p], p));
    }
    const int32_t token = TokenFromValue(values.back(), vocab_size);
    tokens.push_back(token);
    output.push_back(token);
    const int32_t n = static_cast<int32_t>(output.size());
    if (n >= spec.min_tokens &&
        ((!spec.ignore_eos && contains(spec.eos_token_ids, token)) || contains(spec.stop_token_ids, token))) {
      break;
    }
    if (n >= spec.max_tokens || static_cast<int32_t>(tokens.size()) >= max_model_len) break;
  }
  return output;
}

// A KV cache, a scheduler and the fake model, stepped together with integrity checks.
class Harness {
 public:
  Harness(const SchedulerConfig& config, const KvCacheConfig& kv_config, int32_t vocab_size = 64)
      : vocab_size_(vocab_size), model_(kv_config.num_blocks, kv_config.block_size, vocab_size) {
    auto kv = KvCacheManager::Create(kv_config);
    MS_CHECK(kv.ok()) << kv.status();
    kv_ = std::move(*kv);
    auto scheduler = Scheduler::Create(config, kv_.get());
    MS_CHECK(scheduler.ok()) << scheduler.status();
    scheduler_ = std::move(*scheduler);
  }

  Scheduler& scheduler() { return *scheduler_; }
  KvCacheManager& kv() { return *kv_; }
  int32_t vocab_size() const { return vocab_size_; }

  // Speculative decoding: before each Schedule(), every request added through Add() that is
  // decoding gets the drafts `drafter` proposes for it.
  using Drafter = std::function<std::vector<int32_t>(const Request&)>;
  void SetDrafter(Drafter drafter) { drafter_ = std::move(drafter); }
  absl::Status Add(const RequestSpec& spec) {
    absl::Status status = scheduler_->AddRequest(spec);
    if (status.ok()) drafted_ids_.push_back(spec.id);
    return status;
  }
  int64_t drafts_scheduled() const { return drafts_scheduled_; }
  int64_t drafts_accepted() const { return drafts_accepted_; }

  // Schedule(); the caller may act (abort) before Finish().
  const SchedulerOutput& Begin() {
    if (drafter_) {
      std::erase_if(drafted_ids_, [&](RequestId id) {
        const Request* r = scheduler_->GetRequest(id);
        if (r == nullptr || IsFinished(r->status())) return r == nullptr;
        const std::vector<int32_t> drafts = drafter_(*r);
        const int32_t kept = scheduler_->SetDraftTokens(id, drafts);
        EXPECT_LE(kept, static_cast<int32_t>(drafts.size()));
        EXPECT_EQ(static_cast<int32_t>(r->draft_token_ids().size()), kept);
        return false;
      });
    }
    last_ = scheduler_->Schedule();
    CheckIntegrity();
    EXPECT_LE(last_.total_num_scheduled_tokens, scheduler_->config().max_num_batched_tokens);
    for (RequestId id : last_.finished_request_ids) EXPECT_FALSE(kv_->HoldsBlocks(id));
    return last_;
  }

  std::vector<RequestUpdate> Finish() {
    CheckSingleWriter();
    std::vector<int32_t> accepted;
    const std::vector<int32_t> sampled = model_.Run(last_, &accepted);
    for (size_t i = 0; i < last_.scheduled.size(); ++i) {
      drafts_scheduled_ += last_.scheduled[i].num_draft_tokens;
      drafts_accepted_ += accepted[i];
    }
    std::vector<RequestUpdate> updates = scheduler_->UpdateFromOutput(sampled, accepted);
    for (const RequestUpdate& u : updates) {
      outputs_[u.id].push_back(u.new_token);
      if (IsFinished(u.status)) statuses_[u.id] = u.status;
    }
    CheckIntegrity();
    // A request that verified drafts keeps no block past its last token.
    for (const ScheduledRequest& s : last_.scheduled) {
      const Request* r = scheduler_->GetRequest(s.id);
      if (s.num_draft_tokens == 0 || r == nullptr || IsFinished(r->status())) continue;
      EXPECT_LE(static_cast<int32_t>(kv_->GetBlockIds(s.id).size()), kv_->NumBlocksFor(r->num_tokens()))
          << "request " << s.id;
    }
    return updates;
  }

  std::vector<RequestUpdate> Step() {
    Begin();
    return Finish();
  }

  // Steps until nothing is left; returns the number of steps. Fails the test after `max_steps`.
  int RunToCompletion(int max_steps = 100000) {
    int steps = 0;
    while (scheduler_->HasUnfinishedRequests() && steps < max_steps) {
      Step();
      ++steps;
    }
    EXPECT_FALSE(scheduler_->HasUnfinishedRequests());
    Step();  // reports the last finished ids and releases them
    EXPECT_EQ(kv_->usage().num_used_blocks, 0);
    return steps;
  }

  // Every block a step writes is held by exactly one request: shared blocks (prefix hits,
  // forks) are read-only.
  void CheckSingleWriter() {
    const int32_t block_size = kv_->block_size();
    for (const ScheduledRequest& s : last_.scheduled) {
      for (int32_t p = s.start_position; p < s.start_position + s.num_new_tokens; ++p) {
        const int32_t block = s.block_ids[p / block_size];
        ASSERT_EQ(kv_->BlockRefCount(block), 1)
            << "request " << s.id << " writes position " << p << " into shared block " << block;
      }
    }
  }

  void CheckIntegrity() {
    const absl::Status status = scheduler_->CheckIntegrity();
    ASSERT_TRUE(status.ok()) << status;
  }

  std::map<RequestId, std::vector<int32_t>>& outputs() { return outputs_; }
  std::map<RequestId, RequestStatus>& statuses() { return statuses_; }

 private:
  const int32_t vocab_size_;
  std::unique_ptr<KvCacheManager> kv_;
  std::unique_ptr<Scheduler> scheduler_;
  FakeModel model_;
  Drafter drafter_;
  std::vector<RequestId> drafted_ids_;
  int64_t drafts_scheduled_ = 0;
  int64_t drafts_accepted_ = 0;
  SchedulerOutput last_;
  std::map<RequestId, std::vector<int32_t>> outputs_;
  std::map<RequestId, RequestStatus> statuses_;
};

}  // namespace moeserve::testing

#endif  // MOESERVE_TESTS_SCHEDULER_FAKE_MODEL_H_
