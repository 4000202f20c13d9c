#include "server/engine/engine.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/backend/registry.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/runner/kv_memory_plan.h"

namespace moeserve {

// Engine-side state of one sample (completion) of a request: the scheduler runs each sample as a
// request of its own, with id request id + index; samples 1..n-1 fork sample 0's prompt blocks.
struct LiveSample {
  LiveRequest* request = nullptr;
  int32_t index = 0;
  uint64_t seq_id = 0;
  uint64_t seed = 0;
  int32_t num_output_tokens = 0;
  int32_t num_preemptions = 0;  // as last reported by the scheduler
  bool finished = false;
  std::unique_ptr<structured::OutputConstraint> constraint;  // structured output; null: none
};

// Engine-side state of one request, owned by the engine thread once drained from the inbox.
struct LiveRequest {
  uint64_t id = 0;
  std::vector<int32_t> prompt;
  int32_t num_prompt_tokens = 0;
  SamplingParams params;
  int32_t priority = 0;
  std::string cache_salt;
  std::shared_ptr<RequestStream> stream;
  std::function<bool()> is_cancelled;  // may be empty
  std::vector<LiveSample> samples;     // params.n of them; never resized once built
  int32_t num_unfinished = 0;
  int32_t num_output_tokens = 0;  // over all samples
  int32_t cached_tokens = 0;      // sample 0's prompt tokens served from the prefix cache
  RequestTimings timings;
  // SamplingParams::prompt_logprobs, computed by sample 0 chunk by chunk and delivered with its
  // first token. prompt_logprobs_next: the next prompt position to compute; a recompute after a
  // preemption skips positions already gathered.
  std::vector<TokenLogprobs> prompt_logprobs;
  int32_t prompt_logprobs_next = 1;
  bool prompt_logprobs_sent = false;
  std::shared_ptr<const structured::OutputConstraintSpec> constraint;  // EngineRequest::constraint
};

namespace {

FinishReason ReasonOf(RequestStatus status) {
  switch (status) {
    case RequestStatus::kFinishedStopped: return FinishReason::kStop;
    case RequestStatus::kFinishedLength: return FinishReason::kLength;
    case RequestStatus::kFinishedAborted: return FinishReason::kAbort;
    case RequestStatus::kFinishedError: return FinishReason::kError;
    default: return FinishReason::kNone;
  }
}

}  // namespace

namespace {

// This process's resident set (/proc/self/statm), 0 where unknown.
int64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  if (!(statm >> pages >> resident)) return 0;
  return resident * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
}

// Rank 0 logs every rank's share of the weights and its resident memory after the load (a
// collective over the group).
absl::Status ReportWeightBytes(const Model& model, Communicator* group, bool expert_parallel) {
  const int64_t mine[2] = {model.weight_bytes(), ResidentBytes()};
  std::vector<int64_t> all(2 * static_cast<size_t>(group->world_size()));
  RETURN_IF_ERROR(group->AllGatherHost(HostBytes(absl::MakeConstSpan(mine)), MutableHostBytes(all)));
  if (group->rank() != 0) return absl::OkStatus();
  std::string weights, resident;
  int64_t sum = 0;
  for (size_t r = 0; r < all.size() / 2; ++r) {
    absl::StrAppend(&weights, r == 0 ? "" : ", ", "rank ", r, " ", absl::StrFormat("%.1f MiB", all[2 * r] / 1048576.0));
    absl::StrAppend(&resident, r == 0 ? "" : ", ", "rank ", r, " ",
                    absl::StrFormat("%.1f MiB", all[2 * r + 1] / 1048576.0));
    sum += all[2 * r];
  }
  MS_LOG(INFO) << "tensor parallel " << all.size() / 2 << (expert_parallel ? " (expert parallel)" : "")
               << ": weights per rank: " << weights << absl::StrFormat(" (sum %.1f MiB)", sum / 1048576.0)
               << "; resident after load: " << resident;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<EngineParts> LoadEngineParts(const EngineConfig& config, DistContext* dist) {
  const int tp = config.tensor_parallel_size;
  if (tp < 1) return absl::InvalidArgumentError(absl::StrCat("tensor_parallel_size must be >= 1, got ", tp));
  if (tp > 1 && (dist == nullptr || dist->world_size() != tp)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor_parallel_size ", tp, " needs a group of ", tp, " ranks (DistContext)"));
  }
  EngineParts parts;
  ASSIGN_OR_RETURN(parts.backend, CreateBackend({.device = config.device,
                                                 .num_threads = config.num_threads,
                                                 .device_index = dist != nullptr ? dist->local_rank() : 0}));
  if (dist != nullptr && tp > 1) {
    ASSIGN_OR_RETURN(parts.communicator, dist->CreateCommunicator(parts.backend.get()));
    parts.group = dist->host();
  }
  ASSIGN_OR_RETURN(const EpDispatch dispatch, ParseEpDispatch(config.ep_dispatch));
  ASSIGN_OR_RETURN(parts.model,
                   LoadModel(config.model_dir, parts.backend.get(),
                             {.max_model_len = config.max_model_len,
                              .parallel = ModelParallel(parts.communicator.get(), config.expert_parallel, dispatch),
                              // Refused with tensor parallelism (Engine::Init), so never loaded sharded.
                              .load_mtp = config.speculative.method == SpeculativeMethod::kMtp && tp <= 1}));
  if (tp > 1) RETURN_IF_ERROR(ReportWeightBytes(*parts.model, parts.group, config.expert_parallel));
  const std::string tokenizer_dir = config.tokenizer_dir.empty() ? config.model_dir : config.tokenizer_dir;
  const bool leader = dist == nullptr || dist->rank() == 0;
  if (leader && (!config.tokenizer_dir.empty() ||
                 std::filesystem::exists(std::filesystem::path(tokenizer_dir) / "tokenizer.json"))) {
    ASSIGN_OR_RETURN(parts.tokenizer, Tokenizer::FromDirectory(tokenizer_dir));
  }
  return parts;
}

int32_t StepTokenBudget(const EngineConfig& config, Backend* backend) {
  if (config.max_num_batched_tokens > 0) return config.max_num_batched_tokens;
  const bool host_memory = absl::IsUnimplemented(backend->MemoryStats().status());
  return std::max(host_memory ? 512 : 2048, config.max_num_seqs);
}

absl::StatusOr<KvLayout> PlanEngineKvLayout(const EngineConfig& config, Model* model, Backend* backend,
                                            Communicator* group) {
  ASSIGN_OR_RETURN(const KvCachePlan plan,
                   PlanKvCache(model, backend,
                               {.block_size = config.block_size,
                                .num_blocks = config.num_kv_blocks,
                                .max_num_batched_tokens = StepTokenBudget(config, backend),
                                .max_num_seqs = config.max_num_seqs,
                                .max_model_len = config.max_model_len,
                                .host_kv_cache_memory_bytes = config.kv_cache_memory_bytes,
                                .gpu_memory_utilization = config.gpu_memory_utilization,
                                .device_kv_cache_memory_bytes = config.device_kv_cache_memory_bytes,
                                .reserve_graph_memory = config.cuda_graphs && backend->graphs() != nullptr}));
  if (plan.profiled || plan.auto_sized) MS_LOG(INFO) << "KV cache: " << plan.ToString();
  if (group == nullptr) return plan.layout;
  return AgreeKvLayout(group, plan.layout);
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineConfig& config, DistContext* dist) {
  ASSIGN_OR_RETURN(EngineParts parts, LoadEngineParts(config, dist));
  return Create(config, std::move(parts));
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineConfig& config, EngineParts parts) {
  if (parts.backend == nullptr || parts.model == nullptr) {
    return absl::InvalidArgumentError("engine: a backend and a model are required");
  }
  std::unique_ptr<Engine> engine(new Engine(config, std::move(parts)));
  RETURN_IF_ERROR(engine->Init());
  return engine;
}

Engine::Engine(const EngineConfig& config, EngineParts parts)
    : config_(config),
      backend_(std::move(parts.backend)),
      communicator_(std::move(parts.communicator)),
      model_(std::move(parts.model)),
      tokenizer_(std::move(parts.tokenizer)),
      group_(parts.group) {}

absl::Status Engine::Init() {
  const ModelConfig& mc = model_->config();
  vocab_size_ = static_cast<int32_t>(mc.vocab_size);
  const int64_t model_len = mc.max_position_embeddings;
  const bool context_given = config_.max_model_len > 0;
  if (config_.max_model_len <= 0) config_.max_model_len = static_cast<int32_t>(model_len);
  if (config_.max_model_len > model_len) {
    return absl::InvalidArgumentError(absl::StrCat("max_model_len ", config_.max_model_len,
                                                   " exceeds the model's max_position_embeddings ", model_len));
  }
  if (config_.max_num_samples < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_num_samples must be >= 1, got ", config_.max_num_samples));
  }
  eos_token_ids_ = mc.eos_token_ids;
  if (tokenizer_ != nullptr && tokenizer_->eos_token_id().has_value() &&
      std::find(eos_token_ids_.begin(), eos_token_ids_.end(), *tokenizer_->eos_token_id()) == eos_token_ids_.end()) {
    eos_token_ids_.push_back(*tokenizer_->eos_token_id());
  }

  config_.max_num_batched_tokens = StepTokenBudget(config_, backend_.get());
  // The one KV layout: the model's cache, the KV manager and the runner's batches all get it.
  ASSIGN_OR_RETURN(const KvLayout layout, PlanEngineKvLayout(config_, model_.get(), backend_.get(), group_));
  config_.num_kv_blocks = layout.num_blocks;
  if (!context_given && layout.capacity_tokens() < config_.max_model_len) {
    // The model's own (long) context does not fit: serve what does rather than refuse.
    MS_LOG(WARNING) << "max_model_len capped to " << layout.capacity_tokens() << " tokens (the model's is "
                    << config_.max_model_len << "): the KV cache (" << layout.ToString()
                    << ") holds no more for one request; give --max-model-len and a larger"
                    << " --kv-cache-mib (CPU) or --gpu-memory-utilization / --kv-cache-memory (GPU)"
                    << " for more";
    config_.max_model_len = static_cast<int32_t>(layout.capacity_tokens());
  }
  sampler_ = std::make_unique<Sampler>(
      SamplerOptions{.vocab_size = vocab_size_, .eos_token_ids = eos_token_ids_, .engine_seed = config_.seed});
  runner_ = std::make_unique<ModelRunner>(model_.get(), backend_.get(), sampler_.get());
  // The pool reserves block 0 as the null block, so the model's cache has the same block count.
  RETURN_IF_ERROR(runner_->AllocateKvCache(layout));
  ASSIGN_OR_RETURN(kv_, KvCacheManager::Create(layout, config_.enable_prefix_caching));
  if (group_ != nullptr) {
    channel_ = std::make_unique<StepChannel>(group_);
    runner_->SetStepChannel(channel_.get());
  }
  if (config_.max_queued_requests < EngineConfig::kAutoQueueLimit || config_.max_queued_tokens < 0 ||
      !(config_.max_queue_time_seconds >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat("max_queued_requests (", config_.max_queued_requests,
                                                   "), max_queued_tokens (", config_.max_queued_tokens,
                                                   ") and max_queue_time_seconds (", config_.max_queue_time_seconds,
                                                   ") must be >= 0 (max_queued_requests -1: automatic)"));
  }
  if (config_.max_queued_requests == EngineConfig::kAutoQueueLimit) {
    // At least one request of max_num_samples samples must fit.
    config_.max_queued_requests =
        std::max(config_.max_num_samples, 2 * std::max(1, std::min(config_.max_num_seqs, layout.num_blocks - 1)));
    MS_LOG(INFO) << "request queue: at most " << config_.max_queued_requests
                 << " waiting requests (twice min(max_num_seqs, usable KV blocks), at least "
                    "max_num_samples)";
  }
  // The queue limits are applied here, in AddRequest, where a refusal is a status for the caller;
  // the scheduler (which also counts preempted requests as waiting) gets none.
  if (config_.speculative.enabled()) {
    // Drafts are decided here, on rank 0, and reach the other ranks as the step's tokens
    // (step_message.h). The MTP layer's passes would have to run on every rank of a sharded model.
    static_assert(SpeculativeConfig::kMaxSpeculativeTokens <= kMaxStepDrafts);
    if (group_ != nullptr && config_.speculative.method == SpeculativeMethod::kMtp) {
      return absl::UnimplementedError(
          "--speculative-method mtp with --tensor-parallel-size > 1 is not supported yet (the other "
          "ranks do not run the MTP layer); --speculative-method ngram is");
    }
    ASSIGN_OR_RETURN(speculator_, Speculator::Create(config_.speculative));
    if (config_.speculative.method == SpeculativeMethod::kMtp && !model_->has_mtp()) {
      return absl::InvalidArgumentError(
          "--speculative-method mtp: this model has no multi-token-prediction layer loaded");
    }
  }
  const bool mtp = speculator_ != nullptr && config_.speculative.method == SpeculativeMethod::kMtp;
  if (mtp) {
    RETURN_IF_ERROR(runner_->EnableMtp(config_.speculative.num_speculative_tokens, config_.max_model_len));
  }
  ASSIGN_OR_RETURN(scheduler_,
                   Scheduler::Create({.max_num_batched_tokens = config_.max_num_batched_tokens,
                                      .max_num_seqs = config_.max_num_seqs,
                                      .max_model_len = config_.max_model_len,
                                      .long_prefill_token_threshold = config_.long_prefill_token_threshold,
                                      // MTP chains its drafts 2..k at positions past the verified ones.
                                      .num_lookahead_tokens = mtp ? config_.speculative.num_speculative_tokens - 1 : 0},
                                     kv_.get()));
  if (config_.cuda_graphs && config_.max_graph_batch > 0 && UsesCudaGraphs(config_) &&
      runner_->EnableDecodeGraphs({.max_batch = std::min(config_.max_graph_batch, config_.max_num_seqs),
                                   .max_model_len = config_.max_model_len})) {
    MS_LOG(INFO) << "CUDA graphs for decode steps of up to " << runner_->decode_graphs()->limits().buckets.back()
                 << " sequences";
  }
  // The KV-cache profile step (and any warm-up) routed tokens no request sent.
  RETURN_IF_ERROR(model_->ResetExpertLoad());
  if (config_.expert_load_interval_steps < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("expert_load_interval_steps must be >= 0, got ", config_.expert_load_interval_steps));
  }
  RefreshExpertLoad();
  PublishMetrics();
  return absl::OkStatus();
}

Engine::~Engine() { Stop(); }

void Engine::Start() {
  MS_CHECK(!thread_.joinable()) << "Engine::Start called twice";
  thread_ = std::thread([this] { ThreadLoop(); });
}

void Engine::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  AbortAllLocal();
  if (!shutdown_sent_ && runner_ != nullptr) {
    shutdown_sent_ = true;
    (void)runner_->SendControl(StepKind::kShutdown);  // the other ranks leave RunFollower
  }
}

void Engine::ThreadLoop() {
  bool idle_checked = false;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    if (Step()) {
      idle_checked = false;
      continue;
    }
    if (!idle_checked) {
      if (absl::Status s = CheckIntegrity(); !s.ok()) MS_LOG(ERROR) << "engine integrity: " << s;
      idle_checked = true;
    }
    bool woken = false;
    {
      absl::MutexLock lock(&mu_);
      woken = mu_.AwaitWithTimeout(absl::Condition(this, &Engine::InboxReadyLocked), absl::Seconds(1));
    }
    // Idle for a second: the other ranks of a group learn that rank 0 is alive.
    if (!woken) (void)runner_->SendControl(StepKind::kHeartbeat);
  }
}

absl::StatusOr<std::shared_ptr<RequestStream>> Engine::AddRequest(EngineRequest request) {
  // Validation is the serving layer's (once, with the client's field names); these guard memory.
  const std::vector<int32_t>& prompt = request.prompt_token_ids;
  MS_CHECK(!prompt.empty()) << "AddRequest: empty prompt";
  for (int32_t id : prompt) {
    MS_CHECK(id >= 0 && id < vocab_size_) << "AddRequest: prompt id " << id << " outside [0, " << vocab_size_ << ")";
  }
  const SamplingParams& params = request.sampling;
  MS_CHECK(params.n >= 1 && params.n <= config_.max_num_samples)
      << "AddRequest: n = " << params.n << ", max_num_samples " << config_.max_num_samples;
  const int32_t n = params.n;

  auto live = std::make_unique<LiveRequest>();
  live->num_prompt_tokens = static_cast<int32_t>(prompt.size());
  live->prompt = std::move(request.prompt_token_ids);
  live->params = std::move(request.sampling);
  live->priority = request.priority;
  live->cache_salt = std::move(request.cache_salt);
  live->constraint = std::move(request.constraint);
  live->timings.arrival = absl::Now();

  absl::MutexLock lock(&mu_);
  if (stopping_) {
    ++refused_;
    return absl::UnavailableError("the engine is shutting down");
  }
  // Each sample waits in the scheduler as a request of its own, with the prompt's tokens.
  const int64_t queued = waiting_requests_ + inbox_requests_;
  if (config_.max_queued_requests > 0 && queued + n > config_.max_queued_requests) {
    ++refused_;
    return absl::ResourceExhaustedError(absl::StrCat("too many queued requests: max_queued_requests is ",
                                                     config_.max_queued_requests, " and ", queued,
                                                     " are queued; this one has n=", n, " samples"));
  }
  const int64_t request_tokens = int64_t{n} * live->num_prompt_tokens;
  const int64_t queued_tokens = waiting_tokens_ + inbox_tokens_ + request_tokens;
  if (config_.max_queued_tokens > 0 && queued_tokens > config_.max_queued_tokens) {
    ++refused_;
    return absl::ResourceExhaustedError(absl::StrCat("too many queued tokens: max_queued_tokens is ",
                                                     config_.max_queued_tokens, " and this request would make it ",
                                                     queued_tokens));
  }
  live->id = next_id_;
  next_id_ += n;  // sample i runs in the scheduler as request id + i
  live->samples.resize(n);
  for (int32_t i = 0; i < n; ++i) {
    live->samples[i].request = live.get();
    live->samples[i].index = i;
    live->samples[i].seq_id = live->id + i;
  }
  live->num_unfinished = n;
  live->stream = std::make_shared<RequestStream>(live->id, std::move(request.on_output));
  live->is_cancelled = std::move(request.is_cancelled);
  std::shared_ptr<RequestStream> stream = live->stream;
  live_ids_.insert(live->id);
  inbox_tokens_ += request_tokens;
  inbox_requests_ += n;
  inbox_.push_back(std::move(live));
  return stream;
}

bool Engine::Abort(uint64_t request_id) {
  absl::MutexLock lock(&mu_);
  if (!live_ids_.contains(request_id)) return false;
  finishes_.push_back({.request_id = request_id, .index = -1});
  return true;
}

bool Engine::StopSample(uint64_t request_id, int32_t index) {
  absl::MutexLock lock(&mu_);
  if (!live_ids_.contains(request_id) || index < 0) return false;
  finishes_.push_back({.request_id = request_id, .index = index});
  return true;
}

EngineMetrics Engine::GetMetrics() const {
  absl::MutexLock lock(&mu_);
  EngineMetrics m = metrics_;
  m.num_waiting += static_cast<int32_t>(inbox_.size());
  m.requests_refused = refused_;
  return m;
}

void Engine::DrainInbox() {
  std::vector<std::unique_ptr<LiveRequest>> adds;
  std::vector<FinishOrder> finishes;
  {
    absl::MutexLock lock(&mu_);
    adds.swap(inbox_);
    finishes.swap(finishes_);
    inbox_tokens_ = 0;
    inbox_requests_ = 0;
  }
  for (std::unique_ptr<LiveRequest>& request : adds) Admit(std::move(request));
  for (const auto& [id, request] : live_) {
    if (request->is_cancelled && request->is_cancelled()) finishes.push_back({.request_id = id});
  }
  for (const FinishOrder& order : finishes) {
    auto it = live_.find(order.request_id);
    if (it == live_.end()) continue;  // finished meanwhile, or listed twice
    LiveRequest* request = it->second.get();
    if (order.index < 0) {
      FinishAllSamples(request, FinishReason::kAbort, absl::OkStatus());
    } else if (order.index < static_cast<int32_t>(request->samples.size()) && !request->samples[order.index].finished) {
      FinishSample(&request->samples[order.index], FinishReason::kStop, absl::OkStatus());
    }
  }
}

void Engine::FinishAllSamples(LiveRequest* request, FinishReason reason, const absl::Status& error) {
  const RequestStatus status =
      reason == FinishReason::kAbort ? RequestStatus::kFinishedAborted : RequestStatus::kFinishedError;
  std::vector<LiveSample*> unfinished;
  for (LiveSample& sample : request->samples) {
    if (!sample.finished) unfinished.push_back(&sample);
  }
  // The last Emit frees `request`: nothing of it is touched after the loop.
  for (LiveSample* sample : unfinished) {
    if (scheduler_->Finish(sample->seq_id, status)) needs_release_ = true;
    Emit(sample, RequestOutput{}, reason, error, scheduler_->GetRequest(sample->seq_id));
  }
}

void Engine::FinishSample(LiveSample* sample, FinishReason reason, const absl::Status& error) {
  const RequestStatus status = reason == FinishReason::kStop    ? RequestStatus::kFinishedStopped
                               : reason == FinishReason::kAbort ? RequestStatus::kFinishedAborted
                                                                : RequestStatus::kFinishedError;
  if (scheduler_->Finish(sample->seq_id, status)) needs_release_ = true;
  Emit(sample, RequestOutput{}, reason, error, scheduler_->GetRequest(sample->seq_id));
}

void Engine::Admit(std::unique_ptr<LiveRequest> request) {
  ++counters_.requests_added;
  LiveRequest* live = request.get();
  live_.emplace(live->id, std::move(request));
  for (LiveSample& sample : live->samples) samples_.emplace(sample.seq_id, &sample);
  const SamplingParams& p = live->params;
  for (LiveSample& sample : live->samples) {
    RequestSpec spec{.id = sample.seq_id,
                     .prompt_token_ids = live->prompt,
                     .max_tokens = p.max_tokens,
                     // A constraint applies min_tokens in its masks, where the grammar wins
                     // (output_constraint.h): its stop must end the request.
                     .min_tokens = live->constraint != nullptr ? 0 : p.min_tokens,
                     .priority = live->priority,
                     .cache_salt = live->cache_salt,
                     .eos_token_ids = eos_token_ids_,
                     .stop_token_ids = p.stop_token_ids,
                     .ignore_eos = p.ignore_eos,
                     .arrival_time = live->timings.arrival};
    if (sample.index > 0) spec.fork_parent = live->id;
    // Prompt logprobs need every prompt position's logits: sample 0 reads no cached prefix.
    if (sample.index == 0 && p.prompt_logprobs.has_value()) spec.skip_prefix_cache_lookup = true;
    if (absl::Status s = scheduler_->AddRequest(std::move(spec)); !s.ok()) {
      // All samples or none: the ones already queued are dropped with the request.
      FinishAllSamples(live, FinishReason::kError, s);
      return;
    }
    // A seeded request's samples are reproducible one by one; unseeded ones differ.
    sample.seed = p.seed.has_value() ? SampleSeed(*p.seed, sample.index) : sampler_->RequestSeed(p);
    if (live->constraint != nullptr) {
      // Its drafts are verified through the grammar: FillMasks gives every verify position its mask.
      sample.constraint = std::make_unique<structured::OutputConstraint>(
          live->constraint, speculator_ != nullptr ? config_.speculative.num_speculative_tokens : 0);
    }
  }
  live->prompt = {};  // the scheduler holds its own copies
}

void Engine::RefuseLongWaits() {
  if (config_.max_queue_time_seconds <= 0) return;
  const absl::Duration limit = absl::Seconds(config_.max_queue_time_seconds);
  const absl::Time now = absl::Now();
  std::vector<LiveRequest*> expired;
  for (const auto& [id, request] : live_) {
    if (request->timings.first_scheduled == absl::InfinitePast() && now - request->timings.arrival > limit) {
      expired.push_back(request.get());
    }
  }
  if (expired.empty()) return;
  {
    absl::MutexLock lock(&mu_);
    refused_ += static_cast<int64_t>(expired.size());
  }
  for (LiveRequest* request : expired) {
    FinishAllSamples(request, FinishReason::kError,
                     absl::ResourceExhaustedError(
                         absl::StrCat("the request waited ", absl::FormatDuration(now - request->timings.arrival),
                                      " in the queue without starting, more than max_queue_time (",
                                      absl::FormatDuration(limit), "); the server is overloaded")));
  }
}

bool Engine::Step() {
  DrainInbox();
  RefuseLongWaits();
  if (!scheduler_->HasUnfinishedRequests() && !needs_release_) {
    if (steps_since_expert_load_ > 0) RefreshExpertLoad();
    PublishMetrics();
    return false;
  }
  const absl::Time step_start = absl::Now();
  if (speculator_ != nullptr) ProposeDrafts();
  const SchedulerOutput step = scheduler_->Schedule();
  needs_release_ = false;
  ++counters_.num_steps;
  counters_.num_preemptions += static_cast<int64_t>(step.preempted_request_ids.size());
  counters_.tokens_computed += step.total_num_scheduled_tokens;

  const absl::Time now = absl::Now();
  inputs_.assign(step.scheduled.size(), SamplingRow{});
  bool any_prompt_logprobs = false;
  // MTP drafting runs when the step speculates: every entry's tokens are then needed.
  int32_t num_sampling = 0;
  for (const ScheduledRequest& entry : step.scheduled) num_sampling += entry.samples ? 1 : 0;
  const bool run_mtp = runner_->mtp_enabled() && speculator_->ActiveFor(num_sampling);
  for (size_t i = 0; i < step.scheduled.size(); ++i) {
    const ScheduledRequest& entry = step.scheduled[i];
    if (!entry.samples) counters_.prompt_tokens_computed += entry.num_new_tokens;
    auto it = samples_.find(entry.id);
    MS_CHECK(it != samples_.end()) << "scheduled request " << entry.id << " is not live";
    LiveSample* sample = it->second;
    LiveRequest* request = sample->request;
    if (request->timings.first_scheduled == absl::InfinitePast()) {
      request->timings.first_scheduled = now;
    }
    const bool prompt_logprobs = sample->index == 0 && request->params.prompt_logprobs.has_value() &&
                                 request->prompt_logprobs_next < request->num_prompt_tokens;
    if (!entry.samples && !prompt_logprobs && !run_mtp) continue;
    const Request* scheduled = scheduler_->GetRequest(entry.id);
    inputs_[i] = SamplingRow{.params = &request->params,
                             .prompt_token_ids = scheduled->prompt_token_ids(),
                             .output_token_ids = scheduled->output_token_ids(),
                             .seed = sample->seed,
                             .draft_token_ids = scheduled->draft_token_ids()};
    if (prompt_logprobs) {
      inputs_[i].prompt_logprobs_from = request->prompt_logprobs_next;
      any_prompt_logprobs = true;
    }
  }
  StartMasks(step);
  const absl::Status executed = runner_->Execute(
      step, inputs_, &results_, any_prompt_logprobs ? &prompt_chunks_ : nullptr, [this] { FinishMasks(); },
      run_mtp ? &mtp_drafts_ : nullptr);
  FinishMasks();  // when the step failed before sampling
  if (absl::Status s = executed; !s.ok()) {
    MS_LOG(ERROR) << "engine step failed: " << s;
    FailStep(step, s);
  } else {
    if (any_prompt_logprobs) CollectPromptLogprobs(step);
    Postprocess(step, results_);
    for (size_t i = 0; run_mtp && i < step.scheduled.size(); ++i) {
      if (!mtp_drafts_[i].empty() && samples_.contains(step.scheduled[i].id)) {
        speculator_->SetModelDrafts(step.scheduled[i].id, mtp_drafts_[i]);
      }
    }
  }
  // The step's results are on the host, so the device has synchronised: reading the counters
  // now adds one small copy per MoE layer and no stall.
  ++steps_since_expert_load_;
  counters_.step_seconds += absl::ToDoubleSeconds(absl::Now() - step_start);
  if (config_.expert_load_interval_steps > 0 && steps_since_expert_load_ >= config_.expert_load_interval_steps) {
    RefreshExpertLoad();
  }
  PublishMetrics();
  if (config_.check_integrity_every_step) {
    const absl::Status s = CheckIntegrity();
    MS_CHECK(s.ok()) << "engine integrity after step " << counters_.num_steps << ": " << s;
  }
  return true;
}

void Engine::RunUntilIdle() {
  while (Step()) {
  }
}

void Engine::CollectPromptLogprobs(const SchedulerOutput& step) {
  for (size_t i = 0; i < step.scheduled.size(); ++i) {
    if (inputs_[i].prompt_logprobs_from <= 0) continue;
    PromptLogprobsChunk& chunk = prompt_chunks_[i];
    LiveSample* sample = samples_.at(step.scheduled[i].id);
    LiveRequest* request = sample->request;
    if (!chunk.status.ok()) {
      // Fails like a sampling row with bad logits: through Postprocess when the entry samples.
      if (step.scheduled[i].samples) {
        if (results_[i].status.ok()) results_[i].status = chunk.status;
      } else {
        scheduler_->Finish(step.scheduled[i].id, RequestStatus::kFinishedError);
        needs_release_ = true;
        Emit(sample, RequestOutput{}, FinishReason::kError, chunk.status, scheduler_->GetRequest(step.scheduled[i].id));
      }
      continue;
    }
    if (chunk.entries.empty()) continue;
    MS_CHECK(chunk.first_position == request->prompt_logprobs_next)
        << "prompt logprobs of request " << request->id << " from position " << chunk.first_position << ", expected "
        << request->prompt_logprobs_next;
    request->prompt_logprobs_next += static_cast<int32_t>(chunk.entries.size());
    for (TokenLogprobs& e : chunk.entries) request->prompt_logprobs.push_back(std::move(e));
  }
}

void Engine::ProposeDrafts() {
  live_seq_ids_.clear();
  for (const auto& [id, sample] : samples_) live_seq_ids_.push_back(id);
  speculator_->ProposeDrafts(live_seq_ids_, scheduler_.get());
}

void Engine::Postprocess(const SchedulerOutput& step, const std::vector<SampledTokens>& results) {
  sampled_.assign(step.scheduled.size(), 0);
  accepted_.assign(step.scheduled.size(), 0);
  std::vector<std::pair<uint64_t, absl::Status>> failed;
  for (size_t i = 0; i < step.scheduled.size(); ++i) {
    if (!step.scheduled[i].samples) continue;
    CountSampledRow(absl::IsInternal(results[i].status));
    if (results[i].status.ok() && !results[i].tokens.empty()) {
      sampled_[i] = results[i].tokens.back().token_id;
      accepted_[i] = results[i].num_accepted;
    } else {
      // This request fails alone (e.g. NaN logits); its token is dropped by the scheduler.
      scheduler_->Finish(step.scheduled[i].id, RequestStatus::kFinishedError);
      needs_release_ = true;
      failed.emplace_back(step.scheduled[i].id,
                          results[i].status.ok() ? absl::InternalError("no token sampled") : results[i].status);
    }
  }
  const std::vector<RequestUpdate> updates = scheduler_->UpdateFromOutput(sampled_, accepted_);
  if (speculator_ != nullptr) speculator_->RecordStep(step, accepted_);
  for (auto& [id, status] : failed) {
    Emit(samples_.at(id), RequestOutput{}, FinishReason::kError, status, scheduler_->GetRequest(id));
  }

  const absl::Time now = absl::Now();
  size_t i = 0;  // updates follow the order of step.scheduled
  for (const RequestUpdate& update : updates) {
    while (step.scheduled[i].id != update.id) ++i;
    const SampleResult& result = results[i].tokens[update.offset];
    // A stop string matched on an earlier token of this step: the accepted tokens after it go.
    auto live = samples_.find(update.id);
    if (live == samples_.end()) continue;
    LiveSample* sample = live->second;
    LiveRequest* request = sample->request;
    ++sample->num_output_tokens;
    ++request->num_output_tokens;
    ++counters_.generation_tokens;
    if (request->timings.first_token == absl::InfinitePast()) request->timings.first_token = now;

    RequestOutput delta;
    delta.token_ids.push_back(update.new_token);
    if (request->params.logprobs.has_value()) {
      delta.logprobs.push_back({update.new_token, result.logprob, result.top_logprobs});
    }
    if (sample->index == 0 && request->params.prompt_logprobs.has_value() && !request->prompt_logprobs_sent) {
      delta.prompt_logprobs = std::move(request->prompt_logprobs);
      request->prompt_logprobs = {};
      request->prompt_logprobs_sent = true;
    }
    FinishReason reason = ReasonOf(update.status);
    absl::Status error;
    if (sample->constraint != nullptr) {
      error = sample->constraint->Accept(update.new_token);
      if (!error.ok()) {
        if (reason == FinishReason::kNone && scheduler_->Finish(update.id, RequestStatus::kFinishedError)) {
          needs_release_ = true;
        }
        reason = FinishReason::kError;
      }
    }
    if (reason == FinishReason::kStop) delta.stop_token_id = update.new_token;
    Emit(sample, std::move(delta), reason, std::move(error), scheduler_->GetRequest(update.id));
  }
}

void Engine::StartMasks(const SchedulerOutput& step) {
  std::vector<structured::AsyncMaskFiller::Job> jobs;
  mask_entries_.clear();
  for (size_t i = 0; i < step.scheduled.size(); ++i) {
    if (!step.scheduled[i].samples) continue;
    structured::OutputConstraint* constraint = samples_.at(step.scheduled[i].id)->constraint.get();
    if (constraint == nullptr) continue;
    jobs.push_back({.constraint = constraint});
    mask_entries_.push_back(i);
  }
  if (jobs.empty()) return;
  const size_t words = static_cast<size_t>(jobs[0].constraint->mask_words());  // one vocabulary
  // One mask per verify position: the entry's drafts go through the grammar too.
  size_t num_masks = 0;
  for (size_t k = 0; k < jobs.size(); ++k) {
    jobs[k].drafts = inputs_[mask_entries_[k]].draft_token_ids;
    num_masks += 1 + jobs[k].drafts.size();
  }
  masks_.resize(num_masks * words);
  size_t offset = 0;
  for (size_t k = 0; k < jobs.size(); ++k) {
    jobs[k].masks = &masks_[offset];
    inputs_[mask_entries_[k]].allowed_tokens = jobs[k].masks;
    offset += (1 + jobs[k].drafts.size()) * words;
  }
  if (mask_filler_ == nullptr) mask_filler_ = std::make_unique<structured::AsyncMaskFiller>();
  mask_filler_->Start(std::move(jobs));
  masks_pending_ = true;
}

void Engine::FinishMasks() {
  if (!masks_pending_) return;
  masks_pending_ = false;
  mask_filler_->Wait();
}

void Engine::FailStep(const SchedulerOutput& step, const absl::Status& status) {
  for (const ScheduledRequest& entry : step.scheduled) {
    scheduler_->Finish(entry.id, RequestStatus::kFinishedError);
  }
  needs_release_ = true;
  sampled_.assign(step.scheduled.size(), 0);
  scheduler_->UpdateFromOutput(sampled_);
  for (const ScheduledRequest& entry : step.scheduled) {
    Emit(samples_.at(entry.id), RequestOutput{}, FinishReason::kError, status, scheduler_->GetRequest(entry.id));
  }
}

void Engine::Emit(LiveSample* sample, RequestOutput delta, FinishReason reason, absl::Status error,
                  const Request* scheduled) {
  LiveRequest* request = sample->request;
  if (scheduled != nullptr) {
    sample->num_preemptions = scheduled->num_preemptions();
    if (sample->index == 0) request->cached_tokens = std::max(0, scheduled->num_cached_prompt_tokens());
  }
  delta.request_id = request->id;
  delta.index = sample->index;
  delta.time = absl::Now();
  int32_t num_preemptions = 0;
  for (const LiveSample& s : request->samples) num_preemptions += s.num_preemptions;
  delta.usage = RequestUsage{.prompt_tokens = request->num_prompt_tokens,
                             .completion_tokens = request->num_output_tokens,
                             .cached_tokens = request->cached_tokens,
                             .num_preemptions = num_preemptions};
  bool request_finished = false;
  if (reason != FinishReason::kNone) {
    MS_CHECK(!sample->finished) << "sample " << sample->seq_id << " finished twice";
    sample->finished = true;
    samples_.erase(sample->seq_id);
    if (speculator_ != nullptr) speculator_->Forget(sample->seq_id);
    request_finished = --request->num_unfinished == 0;
    delta.finished = true;
    delta.finish_reason = reason;
    delta.error = std::move(error);
  }
  if (request_finished) {
    request->timings.finish = delta.time;
    delta.request_finished = true;
    // Counted once per request, by the reason of its last sample.
    switch (reason) {
      case FinishReason::kStop: ++counters_.requests_finished_stop; break;
      case FinishReason::kLength: ++counters_.requests_finished_length; break;
      case FinishReason::kAbort: ++counters_.requests_finished_abort; break;
      default:
        // A request refused from the queue (RefuseLongWaits) is counted in requests_refused.
        if (delta.error.code() != absl::StatusCode::kResourceExhausted) {
          ++counters_.requests_finished_error;
        }
        break;
    }
  }
  delta.timings = request->timings;
  std::shared_ptr<RequestStream> stream = request->stream;
  if (request_finished) {
    const uint64_t id = request->id;
    live_.erase(id);  // `request` and `sample` are gone
    absl::MutexLock lock(&mu_);
    live_ids_.erase(id);
  }
  stream->Push(std::move(delta));
}

void Engine::AbortAllLocal() {
  if (scheduler_ == nullptr) return;  // Init() failed
  std::vector<std::unique_ptr<LiveRequest>> adds;
  {
    absl::MutexLock lock(&mu_);
    adds.swap(inbox_);
    finishes_.clear();
    inbox_tokens_ = 0;
    inbox_requests_ = 0;
  }
  for (std::unique_ptr<LiveRequest>& request : adds) {
    LiveRequest* live = request.get();
    live_.emplace(live->id, std::move(request));  // Emit forgets it with its last sample
    for (LiveSample& sample : live->samples) {
      Emit(&sample, RequestOutput{}, FinishReason::kAbort, absl::OkStatus(), nullptr);
    }
  }
  std::vector<uint64_t> ids;
  for (const auto& [id, request] : live_) ids.push_back(id);
  for (uint64_t id : ids) {
    FinishAllSamples(live_.at(id).get(), FinishReason::kAbort, absl::OkStatus());
  }
  if (needs_release_) {
    scheduler_->Schedule();  // releases the blocks; nothing is left to schedule
    scheduler_->UpdateFromOutput({});
    needs_release_ = false;
  }
  PublishMetrics();
}

void Engine::RefreshExpertLoad() {
  steps_since_expert_load_ = 0;
  if (config_.expert_load_interval_steps == 0) return;
  absl::StatusOr<ExpertLoad> load = model_->ReadExpertLoad();
  if (!load.ok()) {
    MS_LOG(ERROR) << "reading the MoE expert load: " << load.status();
    return;
  }
  if (load->empty()) return;
  expert_load_ = std::make_shared<const ExpertLoad>(*std::move(load));
}

void Engine::CountSampledRow(bool model_fault) {
  if (model_fault) {
    ++counters_.model_faults;
    ++consecutive_model_faults_;
  } else {
    consecutive_model_faults_ = 0;
  }
  const bool healthy = consecutive_model_faults_ < kUnhealthyAfterModelFaults;
  if (healthy == healthy_.load(std::memory_order_relaxed)) return;
  healthy_.store(healthy, std::memory_order_release);
  if (healthy) {
    MS_LOG(WARNING) << "the model produces numbers again: healthy";
  } else {
    MS_LOG(ERROR) << "the model's logits were not numbers (NaN or +inf) in the last " << consecutive_model_faults_
                  << " sampled rows: unhealthy";
  }
  std::function<void(bool)> listener;
  {
    absl::MutexLock lock(&mu_);
    listener = health_listener_;
  }
  if (listener) listener(healthy);
}

void Engine::SetHealthListener(std::function<void(bool healthy)> listener) {
  absl::MutexLock lock(&mu_);
  health_listener_ = std::move(listener);
}

void Engine::PublishMetrics() {
  const KvCacheUsage usage = kv_->usage();
  EngineMetrics m = counters_;
  m.expert_load = expert_load_;
  m.num_running = scheduler_->num_running();
  m.num_waiting = scheduler_->num_waiting();
  m.kv_blocks_total = usage.num_blocks;
  m.kv_block_size = config_.block_size;
  m.kv_blocks_used = usage.num_used_blocks;
  m.kv_blocks_cached_free = usage.num_cached_free_blocks;
  m.kv_usage = usage.num_blocks > 0 ? static_cast<double>(usage.num_used_blocks) / usage.num_blocks : 0.0;
  m.prefix_query_tokens = usage.prefix_query_tokens;
  m.prefix_hit_tokens = usage.prefix_hit_tokens;
  if (speculator_ != nullptr) m.spec_decode = speculator_->metrics();
  if (channel_ != nullptr) {
    const StepChannel::Stats& sent = channel_->stats();
    m.step_broadcast = StepBroadcastMetrics{.messages = sent.messages,
                                            .bytes = sent.bytes,
                                            .max_message_bytes = sent.max_bytes,
                                            .broadcasts = sent.broadcasts,
                                            .encode_seconds = absl::ToDoubleSeconds(runner_->step_encode_time()),
                                            .send_seconds = absl::ToDoubleSeconds(sent.time)};
  }
  m.prefix_hit_rate =
      usage.prefix_query_tokens > 0 ? static_cast<double>(usage.prefix_hit_tokens) / usage.prefix_query_tokens : 0.0;
  absl::MutexLock lock(&mu_);
  metrics_ = m;
  waiting_requests_ = m.num_waiting;
  waiting_tokens_ = scheduler_->num_queued_tokens();
}

absl::Status Engine::CheckIntegrity() const {
  RETURN_IF_ERROR(scheduler_->CheckIntegrity());
  const int64_t tracked = scheduler_->num_running() + scheduler_->num_waiting();
  if (tracked != static_cast<int64_t>(samples_.size())) {
    return absl::InternalError(
        absl::StrCat("engine tracks ", samples_.size(), " live samples, the scheduler ", tracked));
  }
  for (const auto& [id, sample] : samples_) {
    const Request* r = scheduler_->GetRequest(id);
    if (r == nullptr || IsFinished(r->status()) || sample->finished) {
      return absl::InternalError(absl::StrCat("live sample ", id, " is not live in the scheduler"));
    }
  }
  for (const auto& [id, request] : live_) {
    int32_t unfinished = 0;
    for (const LiveSample& sample : request->samples) unfinished += sample.finished ? 0 : 1;
    if (unfinished != request->num_unfinished || unfinished == 0) {
      return absl::InternalError(absl::StrCat("live request ", id, " counts ", request->num_unfinished,
                                              " unfinished samples of ", unfinished));
    }
  }
  return absl::OkStatus();
}

}  // namespace moeserve
