#ifndef MOESERVE_SERVER_RUNNER_STEP_MESSAGE_H_
#define MOESERVE_SERVER_RUNNER_STEP_MESSAGE_H_

// What rank 0 tells the other ranks of a tensor-parallel group each step, as bytes: the scheduled
// entries as the forward-batch builder reads them (request id, first position, new tokens,
// whether it samples and how many of its tokens are speculative drafts, block table) and the
// step's extra logits rows. Drafts are decided on rank 0 and travel as new tokens: a follower
// lays out the same verify rows (one logits row per draft) without knowing how they were made. A follower rebuilds the
// same SchedulerOutput and runs the same ForwardBatchBuilder, so every rank lays out the same batch. Sampling
// parameters never travel: only rank 0 samples.
//
// Block tables are delta-coded against the previous step: an entry whose request was in the last
// step with a table this one extends sends only the appended block ids (a decode step sends one
// new id per block_size tokens per request, not whole tables). Both sides keep the tables of the
// last step's requests only, so a request that leaves a step and comes back (preempted, or not
// scheduled) is sent whole again. A table that lost blocks since the last step (rejected drafts)
// is sent whole too, and the decoder lists its request in trimmed_request_ids
// so that the follower's batch builder rewrites the row. Encoder and decoder must see the same
// sequence of messages.
//
// Layout (little-endian, host order on every supported platform): a header {magic, kind, step
// number, entries, extra rows}, then per entry {id u64, start i32, new tokens i32, flags u8 (bit 0:
// samples; bits 1..7: the number of draft tokens, at most kMaxStepDrafts), kept i32, appended i32,
// tokens[new] i32, appended ids i32}, then the extra rows i32.
//
// Speculative decoding (issue 16): a verify step's draft tokens are among an entry's new tokens
// already (the scheduler appends them to token_ids); its per-entry count of drafts
// (ScheduledRequest::num_draft_tokens, where the followers' builder needs it for the verify
// positions' logits rows) belongs right after `samples`, written and read by EncodeStep/Decode.
//
// Requires external synchronization (the engine thread / the follower loop).

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/scheduler/scheduler.h"

namespace moeserve {

// The most draft tokens one entry of a step message can carry (7 bits of its flags byte).
inline constexpr int32_t kMaxStepDrafts = 127;

enum class StepKind : uint8_t {
  kStep = 1,       // run this batch
  kHeartbeat = 2,  // nothing to run; rank 0 is alive and idle
  kShutdown = 3,   // leave the follower loop
};

class StepEncoder {
 public:
  // *out = the message of `step` (kStep) with `extra_logits_rows`.
  // REQUIRES: every entry's num_draft_tokens in [0, kMaxStepDrafts].
  void EncodeStep(const SchedulerOutput& step, absl::Span<const int32_t> extra_logits_rows, std::vector<uint8_t>* out);
  // *out = a message without a batch (kHeartbeat or kShutdown); tables are kept.
  void EncodeControl(StepKind kind, std::vector<uint8_t>* out);

  // Block ids the last EncodeStep wrote (tests and the broadcast-size measurement).
  int64_t last_block_ids_sent() const { return last_block_ids_sent_; }

 private:
  uint64_t next_step_ = 0;
  absl::flat_hash_map<RequestId, std::vector<int32_t>> tables_;  // the last step's requests
  absl::flat_hash_map<RequestId, std::vector<int32_t>> scratch_;
  int64_t last_block_ids_sent_ = 0;
};

// A decoded message. For kStep, `step` and `extra_logits_rows` are valid until the next Decode.
struct DecodedStep {
  StepKind kind = StepKind::kHeartbeat;
  SchedulerOutput step;
  std::vector<int32_t> extra_logits_rows;
};

class StepDecoder {
 public:
  // DataLoss naming what is wrong for a malformed message or one out of sequence.
  absl::Status Decode(absl::Span<const uint8_t> bytes, DecodedStep* out);

 private:
  uint64_t next_step_ = 0;
  absl::flat_hash_map<RequestId, std::vector<int32_t>> tables_;
  absl::flat_hash_map<RequestId, std::vector<int32_t>> scratch_;
  std::vector<std::vector<int32_t>> tokens_;  // per entry, backing ScheduledRequest::token_ids
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_RUNNER_STEP_MESSAGE_H_
