#ifndef MOESERVE_SERVER_RUNNER_MODEL_RUNNER_H_
#define MOESERVE_SERVER_RUNNER_MODEL_RUNNER_H_

// ModelRunner: executes one scheduler step on the model, one runner per rank. Owns the model's
// paged cache (AllocateKvCache with the engine's KvLayout). Turns a SchedulerOutput into a flat
// ForwardBatch (ForwardBatchBuilder: logits only for entries that sample), runs Model::Forward
// (or replays a decode graph), and samples one token per sampling entry, on the device when the
// backend can, else on the host from copied logits.
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
#include "absl/types/span.h"
#include "server/backend/backend.h"
#include "server/kv/kv_layout.h"
#include "server/model/forward_batch.h"
#include "server/model/model.h"
#include "server/runner/decode_graph_runner.h"
#include "server/runner/forward_batch_builder.h"
#include "server/runner/step_channel.h"
#include "server/runner/step_message.h"
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

  // Runs the step. `inputs` is parallel to step.scheduled. On OK, (*results)[i] is the sample of
  // entry i (token_id -1 for entries that do not sample; a per-row failure such as NaN logits is
  // in that row's status). An error means the whole step failed (forward or copy).
  // When `prompt_logprobs` is given, (*prompt_logprobs)[i] holds entry i's prompt logprobs (empty
  // unless inputs[i].prompt_logprobs_from > 0). Only such entries add logits rows (their chunk's
  // rows go through the LM head, after the sampling rows); a step without them costs nothing more.
  // `before_sampling`, when given, runs after the forward pass and before any row is sampled: the
  // engine finishes the rows' structured-output masks (SamplingRow::allowed_tokens) there, so
  // that computing them overlaps the forward pass.
  absl::Status Execute(const SchedulerOutput& step, absl::Span<const SamplingRow> inputs,
                       std::vector<SampleResult>* results, std::vector<PromptLogprobsChunk>* prompt_logprobs = nullptr,
                       const std::function<void()>& before_sampling = nullptr);

  // Pure-decode steps replay CUDA graphs from now on (decode_graph_runner.h), where the backend
  // can record them; a no-op elsewhere. Returns whether graphs are on. REQUIRES: AllocateKvCache.
  bool EnableDecodeGraphs(const DecodeGraphOptions& options);
  const DecodeGraphRunner* decode_graphs() const { return decode_graphs_.get(); }

  // ---- Tensor-parallel groups (model_runner_group.cc) ------------------------------------------
  // Rank 0: sends every step to the other ranks over `channel` (null: one rank), which must
  // outlive the runner.
  void SetStepChannel(StepChannel* channel) { channel_ = channel; }
  // Rank 0: a message without a batch (StepKind::kHeartbeat while idle, which every rank answers
  // with a barrier; kShutdown at the end). A no-op without a channel.
  absl::Status SendControl(StepKind kind);
  // Ranks > 0: runs the batches rank 0 sends until its shutdown (OK). REQUIRES: AllocateKvCache.
  absl::Status Follow(StepChannel* channel);

 private:
  // The step's logits: a decode graph's replay when one applies, else Model::Forward.
  absl::StatusOr<Tensor> RunForward(const ForwardBatch& batch);
  // Samples the step's sampling entries on the device (device_sampling.h) when the backend can
  // and every row is supported; returns false (nothing done) otherwise. Logits row r belongs to
  // the r-th sampling entry; on true, (*results)[i] holds entry i's sample.
  absl::StatusOr<bool> SampleOnDevice(const Tensor& logits, const SchedulerOutput& step,
                                      absl::Span<const SamplingRow> inputs, std::vector<SampleResult>* results);
  // Samples the step's sampling rows (the first rows of host_logits_) with the host Sampler.
  absl::Status SampleOnHost(const SchedulerOutput& step, absl::Span<const SamplingRow> inputs,
                            std::vector<SampleResult>* results);
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
  std::vector<int32_t> prompt_rows_;                  // extra logits rows of the step (batch row indices)
  std::unique_ptr<DecodeGraphRunner> decode_graphs_;  // null: eager only
  StepChannel* channel_ = nullptr;                    // rank 0 of a group
  StepEncoder encoder_;
  std::vector<uint8_t> message_;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_RUNNER_MODEL_RUNNER_H_
