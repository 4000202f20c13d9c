#ifndef MOESERVE_SERVER_RUNNER_MODEL_RUNNER_H_
#define MOESERVE_SERVER_RUNNER_MODEL_RUNNER_H_

// ModelRunner: executes one scheduler step on the model, one runner per rank. Owns the model's
// paged cache (AllocateKvCache with the engine's KvLayout). Turns a SchedulerOutput into a flat
// ForwardBatch (ForwardBatchBuilder: logits only for entries that sample), runs Model::Forward
// (or replays a decode graph), and samples one token per sampling entry, on the device when the
// backend can, else on the host from copied logits. An entry with draft tokens (speculative
// decoding) is verified in the same forward pass as the rest of the batch: it gets logits at its
// last token and at every draft, and VerifyDrafts (rejection_sampler.h) keeps the accepted drafts
// and the token sampled after them.
//
// Tensor parallelism (model_runner_group.cc): every rank has a runner over its shard of the model.
// Rank 0's runner, given a StepChannel, sends each step's batch to the others before running it
// (and heartbeats while idle, and a shutdown at the end); the others run Follow(), which runs the
// same batches until the shutdown. Only rank 0 samples. Any failure of a step in a group ends the
// group (Communicator::Abort): the ranks' collectives can no longer be matched.
//
// Requires external synchronization (the engine thread). Holds no per-request state, so
// preemption needs no notification.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/backend/backend.h"
#include "server/kv/kv_layout.h"
#include "server/model/forward_batch.h"
#include "server/model/model.h"
#include "server/runner/decode_graph_runner.h"
#include "server/runner/forward_batch_builder.h"
#include "server/runner/mtp_drafter.h"
#include "server/runner/step_channel.h"
#include "server/runner/step_message.h"
#include "server/sampling/rejection_sampler.h"
#include "server/sampling/sampler.h"
#include "server/sampling/sampling_row.h"
#include "server/scheduler/scheduler.h"

namespace moeserve {

// The prompt logprobs one entry's chunk produced: positions [first_position, + entries.size()).
struct PromptLogprobsChunk {
  int32_t first_position = 0;
  std::vector<TokenLogprobs> entries;
  absl::Status status;  // not OK: a row held NaN/+inf logits (the request should fail)
};

class ModelRunner {
 public:
  // `model`, `backend` and `sampler` must outlive the runner.
  ModelRunner(Model* model, Backend* backend, Sampler* sampler);

  ModelRunner(const ModelRunner&) = delete;
  ModelRunner& operator=(const ModelRunner&) = delete;

  // Allocates the model's paged cache of `layout` (the one the KV manager got) and builds batches
  // for it from then on. Turns decode graphs off (they hold the old cache's shape).
  // REQUIRES: before Execute.
  absl::Status AllocateKvCache(const KvLayout& layout);
  const KvLayout& kv_layout() const { return model_->kv_layout(); }

  // Runs the step. `inputs` is parallel to step.scheduled. On OK, (*results)[i] holds the tokens
  // of entry i: the accepted drafts and the token sampled after them, or none for entries that do
  // not sample; a per-entry failure such as NaN logits is in its status. An error means the
  // whole step failed (forward or copy).
  // When `prompt_logprobs` is given, (*prompt_logprobs)[i] holds entry i's prompt logprobs (empty
  // unless inputs[i].prompt_logprobs_from > 0). Only such entries add logits rows (their chunk's
  // rows go through the LM head, after the sampling rows); a step without them costs nothing more.
  // `before_sampling`, when given, runs after the forward pass and before any row is sampled: the
  // engine finishes the rows' structured-output masks (SamplingRow::allowed_tokens) there, so
  // that computing them overlaps the forward pass.
  // With `mtp_drafts` (EnableMtp first), the step also runs the model's MTP layer
  // (mtp_drafter.h; inputs must then hold the prompt and output spans of every entry, sampling
  // or not) and (*mtp_drafts)[i] gets entry i's drafts for the next step.
  absl::Status Execute(const SchedulerOutput& step, absl::Span<const SamplingRow> inputs,
                       std::vector<SampledTokens>* results, std::vector<PromptLogprobsChunk>* prompt_logprobs = nullptr,
                       const std::function<void()>& before_sampling = nullptr,
                       std::vector<std::vector<int32_t>>* mtp_drafts = nullptr);

  // Drafting with the model's multi-token-prediction layer (Model::has_mtp()), up to
  // `num_drafts` per entry and step. FailedPrecondition when the model has none.
  absl::Status EnableMtp(int32_t num_drafts, int32_t max_model_len);

  // Pure-decode steps replay CUDA graphs from now on (decode_graph_runner.h), where the backend
  // can record them; a no-op elsewhere. Returns whether graphs are on. REQUIRES: AllocateKvCache.
  bool EnableDecodeGraphs(const DecodeGraphOptions& options);
  const DecodeGraphRunner* decode_graphs() const { return decode_graphs_.get(); }
  bool mtp_enabled() const { return mtp_ != nullptr; }

  // ---- Tensor-parallel groups (model_runner_group.cc) ------------------------------------------
  // Rank 0: sends every step to the other ranks over `channel` (null: one rank), which must
  // outlive the runner.
  void SetStepChannel(StepChannel* channel) { channel_ = channel; }
  // Rank 0: a message without a batch (StepKind::kHeartbeat while idle, which every rank answers
  // with a barrier; kShutdown at the end). A no-op without a channel.
  absl::Status SendControl(StepKind kind);
  // Ranks > 0: runs the batches rank 0 sends until its shutdown (OK). REQUIRES: AllocateKvCache.
  absl::Status Follow(StepChannel* channel);
  // Rank 0: time spent encoding step messages (the channel counts the sending).
  absl::Duration step_encode_time() const { return encode_time_; }

 private:
  // The step's logits: a decode graph's replay when one applies, else Model::Forward.
  absl::StatusOr<Tensor> RunForward(const ForwardBatch& batch);
  // Samples the step's sampling entries on the device (device_sampling.h) when the backend can
  // and every row is supported; returns false (nothing done) otherwise. Each sampling entry has
  // 1 + num_draft_tokens logits rows, in order; on true, (*results)[i] holds entry i's tokens.
  absl::StatusOr<bool> SampleOnDevice(const Tensor& logits, const SchedulerOutput& step,
                                      absl::Span<const SamplingRow> inputs, std::vector<SampledTokens>* results);
  // Samples the step's sampling rows (the first rows of host_logits_) with the host Sampler.
  absl::Status SampleOnHost(const SchedulerOutput& step, absl::Span<const SamplingRow> inputs,
                            std::vector<SampledTokens>* results);
  // Logprobs of the prompt rows, host_logits_ rows [first_row, ...), into the sized chunks.
  void FillPromptLogprobs(const SchedulerOutput& step, absl::Span<const SamplingRow> inputs, size_t first_row,
                          std::vector<PromptLogprobsChunk>* prompt_logprobs);

  Model* const model_;
  Backend* const backend_;
  Sampler* const sampler_;
  const int32_t vocab_size_;
  std::optional<ForwardBatchBuilder> builder_;  // the step's batch, built incrementally across steps
  std::vector<float> host_logits_;
  std::vector<SamplingRow> rows_;  // the sampling entries' rows (host or device)
  std::vector<SampleResult> row_results_;
  std::vector<size_t> row_entries_;                   // the step entry of each of rows_
  std::vector<int32_t> prompt_rows_;                  // extra logits rows of the step (batch row indices)
  std::unique_ptr<DecodeGraphRunner> decode_graphs_;  // null: eager only
  StepChannel* channel_ = nullptr;                    // rank 0 of a group
  StepEncoder encoder_;
  std::vector<uint8_t> message_;
  absl::Duration encode_time_;
  std::unique_ptr<MtpDrafter> mtp_;  // null: no MTP drafting
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_RUNNER_MODEL_RUNNER_H_
