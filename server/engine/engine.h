#ifndef MOESERVE_SERVER_ENGINE_ENGINE_H_
#define MOESERVE_SERVER_ENGINE_ENGINE_H_

// Engine: continuous batching over one model. One engine thread owns the scheduler, the KV cache
// manager, the model runner and the sampler, and loops Step() = drain inbox -> schedule ->
// forward -> sample -> postprocess (append tokens, finish by EOS / stop token id / max_tokens,
// push id deltas). Other threads only post to the inbox (AddRequest, Abort, StopSample) and read
// RequestStreams. Detokenizing, stop strings and what a client sees happen off the engine thread,
// in the serving layer (server/serving/), which is also where requests are validated.
//
//   auto engine = Engine::Create(config);        // loads model + tokenizer, sizes the KV cache
//   (*engine)->Start();                          // the engine thread
//   auto stream = (*engine)->AddRequest({.prompt_token_ids = ids, .sampling = params});
//   while (auto delta = (*stream)->Next()) { ... if (delta->finished) break; }
//
// Tests may instead drive the engine from their own thread with Step() and call CheckIntegrity()
// between steps (never together with Start()).
//
// Thread safety: AddRequest, Abort, StopSample, GetMetrics and the accessors are safe from any
// thread. Step, RunUntilIdle and CheckIntegrity require the engine thread (or an engine never
// started).

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/backend/backend.h"
#include "server/dist/communicator.h"
#include "server/dist/registry.h"
#include "server/engine/engine_config.h"
#include "server/engine/engine_metrics.h"
#include "server/engine/request_output.h"
#include "server/engine/request_stream.h"
#include "server/kv/kv_cache_manager.h"
#include "server/model/model.h"
#include "server/runner/model_runner.h"
#include "server/runner/step_channel.h"
#include "server/sampling/sampler.h"
#include "server/sampling/sampling_params.h"
#include "server/scheduler/scheduler.h"
#include "server/spec/speculator.h"
#include "server/structured/async_mask_filler.h"
#include "server/structured/output_constraint.h"
#include "server/tokenizer/tokenizer.h"

namespace moeserve {

struct LiveRequest;
struct LiveSample;

// REQUIRES: validated by the serving layer (serving::ValidateRequest): a non-empty prompt of ids
// in [0, vocab_size) that leaves room for max_tokens within max_model_len, valid sampling params
// with n <= max_num_samples. The engine checks only what would corrupt memory (MS_CHECK).
struct EngineRequest {
  std::vector<int32_t> prompt_token_ids;
  SamplingParams sampling;  // `stop` strings are matched by the serving layer, not here
  int32_t priority = 0;     // lower is served first
  std::string cache_salt;   // separates prefix caches (per tenant)
  // Structured output: sampling.constraint as compiled by the serving layer
  // (serving::StructuredOutput); null: unconstrained. Every sample's tokens are then masked.
  std::shared_ptr<const structured::OutputConstraintSpec> constraint;
  // Optional: deltas go to this callback on the engine thread instead of RequestStream::Next().
  RequestStream::Callback on_output;
  // Optional: probed on the engine thread before every step; once it returns true the request is
  // aborted before that step is scheduled (a client that went away stops costing compute within
  // one step). Must be cheap, thread-safe and callable until the request's final delta.
  std::function<bool()> is_cancelled;
};

// The pieces an Engine runs on, for callers that load them themselves (tests, tools).
struct EngineParts {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;          // loaded onto backend
  std::unique_ptr<Tokenizer> tokenizer;  // may be null: ids only
  // Tensor parallelism: the model's collectives (null: one rank) and the host communicator of the
  // group that carries each step to the other ranks (null: one rank; must outlive the engine).
  std::unique_ptr<Communicator> communicator;
  Communicator* group = nullptr;
};

// Loads the parts `config` names on this rank of `dist` (null: one rank): the backend on the
// rank's GPU, its communicator, the model's shard, and (rank 0) the tokenizer.
absl::StatusOr<EngineParts> LoadEngineParts(const EngineConfig& config, DistContext* dist);

// EngineConfig::max_num_batched_tokens, or its auto value (0): 512 on host memory (the CPU), 2048
// on a device, at least max_num_seqs.
int32_t StepTokenBudget(const EngineConfig& config, Backend* backend);

// The KV layout of this rank's runner: planned as the engine plans it (kv_memory_plan.h) and, in a
// group, agreed with the other ranks. Collective over `group` (null: one rank).
absl::StatusOr<KvLayout> PlanEngineKvLayout(const EngineConfig& config, Model* model, Backend* backend,
                                            Communicator* group);

class Engine {
 public:
  // Loads the model and tokenizer named by config and sizes the KV cache. InvalidArgument for
  // inconsistent options; NotFound/InvalidArgument from loading. With tensor parallelism this is
  // rank 0 of `dist` (the other ranks run RunFollower with the same config).
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const EngineConfig& config, DistContext* dist = nullptr);
  // Same with preloaded parts; config.model_dir, tokenizer_dir, device and num_threads are unused.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const EngineConfig& config, EngineParts parts);

  // Stops the engine thread, aborting every live request.
  ~Engine();

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Starts the engine thread. REQUIRES: not started; Step() not used concurrently.
  void Start();
  // Stops and joins the engine thread; live requests finish with FinishReason::kAbort and new
  // ones are refused with Unavailable. Idempotent.
  void Stop();

  // Queues a (validated) request; its output arrives on the returned stream. Errors:
  // ResourceExhausted when max_queued_requests / max_queued_tokens are reached, Unavailable
  // after Stop(). A request the scheduler still refuses on the engine thread finishes at once
  // with FinishReason::kError and that status; one still waiting after max_queue_time_seconds
  // finishes so with ResourceExhausted (counted in requests_refused, not as an error).
  absl::StatusOr<std::shared_ptr<RequestStream>> AddRequest(EngineRequest request);

  // Aborts a live request in any state: it finishes with FinishReason::kAbort and its blocks are
  // freed within one step. Returns false for an unknown or finished id.
  bool Abort(uint64_t request_id);
  // Finishes sample `index` of a live request with FinishReason::kStop at the next step boundary:
  // the caller found a stop condition in its output (a stop string). Tokens the sample produced
  // meanwhile are still delivered; the caller drops them. Returns false for an unknown or
  // finished request id (a finished sample of a live request is left alone).
  bool StopSample(uint64_t request_id, int32_t index);

  EngineMetrics GetMetrics() const;

  // Whether the model produces numbers. False once kUnhealthyAfterModelFaults sampled rows in a
  // row had logits that are not numbers (NaN or +inf: a fault of the model or its weights; each
  // fails its request with Internal); the next row sampled fine makes it true again. Safe from
  // any thread; the servers' health endpoints report it.
  static constexpr int32_t kUnhealthyAfterModelFaults = 3;
  bool healthy() const { return healthy_.load(std::memory_order_acquire); }
  // `listener` is called on the engine thread whenever healthy() changes (replacing any earlier
  // listener; null: none). Must not call into the engine.
  void SetHealthListener(std::function<void(bool healthy)> listener);

  const ModelConfig& model_config() const { return model_->config(); }
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }  // null: ids only
  const EngineConfig& config() const { return config_; }           // with resolved sizes
  int32_t max_model_len() const { return config_.max_model_len; }
  int32_t vocab_size() const { return vocab_size_; }
  // The model's EOS ids (and the tokenizer's), which end a sample unless ignore_eos.
  const std::vector<int32_t>& eos_token_ids() const { return eos_token_ids_; }
  const KvLayout& kv_layout() const { return runner_->kv_layout(); }

  // One step. Returns false when there was nothing to do.
  bool Step();
  // Steps until no request is live and all blocks are released.
  void RunUntilIdle();
  // Scheduler (and KV cache) integrity, plus: the engine tracks exactly the scheduler's live
  // requests.
  absl::Status CheckIntegrity() const;

 private:
  Engine(const EngineConfig& config, EngineParts parts);
  absl::Status Init();
  void ThreadLoop();
  bool InboxReadyLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !inbox_.empty() || !finishes_.empty() || stopping_;
  }
  // An Abort (index < 0: every sample, kAbort) or StopSample (one sample, kStop) to apply at the
  // next step boundary.
  struct FinishOrder {
    uint64_t request_id = 0;
    int32_t index = -1;
  };

  void DrainInbox();
  // Refuses (ResourceExhausted) the requests that waited max_queue_time_seconds unscheduled.
  void RefuseLongWaits();
  void Admit(std::unique_ptr<LiveRequest> request);
  // Appends the step's prompt logprobs (prompt_chunks_) to their requests; a chunk with bad logits
  // fails its request.
  void CollectPromptLogprobs(const SchedulerOutput& step);
  void Postprocess(const SchedulerOutput& step, const std::vector<SampledTokens>& results);
  // Speculative decoding: gives the running requests their drafts for the next Schedule().
  void ProposeDrafts();
  // Pushes `delta` of `sample` with usage and timings filled in. When `reason` is not kNone it is
  // the sample's final delta; with the request's last sample the request is forgotten. `scheduled` is the scheduler's
  // record (null when the scheduler never took the request).
  void Emit(LiveSample* sample, RequestOutput delta, FinishReason reason, absl::Status error, const Request* scheduled);
  // Finishes (in the scheduler too) and emits every unfinished sample of `request` with `reason`
  // (kAbort or kError); the request is forgotten.
  void FinishAllSamples(LiveRequest* request, FinishReason reason, const absl::Status& error);
  // Finishes one unfinished sample with `reason` (kStop, kAbort or kError), in the scheduler too.
  void FinishSample(LiveSample* sample, FinishReason reason, const absl::Status& error);
  void AbortAllLocal();
  void FailStep(const SchedulerOutput& step, const absl::Status& status);
  void PublishMetrics();
  // Counts a sampled row for healthy(): `model_fault` when its logits were not numbers.
  void CountSampledRow(bool model_fault);
  // Structured output: StartMasks hands the step's constrained sampling rows to mask_filler_ (their
  // masks are computed while the forward pass runs) and points their rows at masks_; FinishMasks
  // waits for them (idempotent).
  void StartMasks(const SchedulerOutput& step);
  void FinishMasks();
  // Copies the model's expert-load counters into expert_load_ (engine thread, between steps).
  void RefreshExpertLoad();

  EngineConfig config_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Communicator> communicator_;  // the model's collectives; outlives the model
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  Communicator* group_ = nullptr;
  std::unique_ptr<StepChannel> channel_;  // rank 0 of a group: steps to the other ranks
  bool shutdown_sent_ = false;
  int32_t vocab_size_ = 0;
  std::vector<int32_t> eos_token_ids_;

  // Engine-thread state.
  std::unique_ptr<KvCacheManager> kv_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<Sampler> sampler_;
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<Speculator> speculator_;                            // null: no speculative decoding
  absl::flat_hash_map<uint64_t, std::unique_ptr<LiveRequest>> live_;  // by request id
  absl::flat_hash_map<uint64_t, LiveSample*> samples_;                // unfinished, by scheduler request id
  bool needs_release_ = false;                     // Scheduler::Finish was called since the last Schedule()
  EngineMetrics counters_;                         // engine-thread copy of the counters
  int32_t steps_since_expert_load_ = 0;            // steps run since expert_load_ was read
  std::shared_ptr<const ExpertLoad> expert_load_;  // null: dense model or never read
  std::vector<SamplingRow> inputs_;                // per-step scratch
  std::vector<SampledTokens> results_;
  std::vector<PromptLogprobsChunk> prompt_chunks_;
  std::vector<int32_t> sampled_;
  std::vector<int32_t> accepted_;                 // drafts accepted per entry
  std::vector<uint64_t> live_seq_ids_;            // ProposeDrafts scratch
  std::vector<std::vector<int32_t>> mtp_drafts_;  // per entry, from the runner
  int32_t consecutive_model_faults_ = 0;
  std::atomic<bool> healthy_{true};
  std::unique_ptr<structured::AsyncMaskFiller> mask_filler_;  // created on first use
  std::vector<uint32_t> masks_;                               // [constrained rows, mask words] of the step
  std::vector<size_t> mask_entries_;                          // the step entry of each mask
  bool masks_pending_ = false;

  // Inbox, shared with other threads.
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<LiveRequest>> inbox_ ABSL_GUARDED_BY(mu_);
  std::vector<FinishOrder> finishes_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<uint64_t> live_ids_ ABSL_GUARDED_BY(mu_);  // added, not yet finished
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  int32_t waiting_requests_ ABSL_GUARDED_BY(mu_) = 0;  // scheduler's, after the last step
  int64_t waiting_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t inbox_tokens_ ABSL_GUARDED_BY(mu_) = 0;    // prompt tokens x n of the inbox
  int64_t inbox_requests_ ABSL_GUARDED_BY(mu_) = 0;  // samples in the inbox
  int64_t refused_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  EngineMetrics metrics_ ABSL_GUARDED_BY(mu_);
  std::function<void(bool)> health_listener_ ABSL_GUARDED_BY(mu_);

  std::thread thread_;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_ENGINE_ENGINE_H_
