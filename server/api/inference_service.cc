#include "server/api/inference_service.h"

#include <memory>
#include <map>
#include <optional>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "server/api/request_convert.h"
#include "server/common/logging.h"

namespace moeserve::api {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

namespace {

constexpr char kVersion[] = "0.1.0";
// How long a handler waits for the engine to confirm an abort before it gives up on the final
// delta (the engine confirms within one step; this only guards against a stopped engine).
constexpr absl::Duration kAbortConfirmTimeout = absl::Seconds(30);
// ServerContext::IsCancelled() is only called from the handler's thread (in the sync API it plucks
// the call's queue), so the handler polls it every poll_interval while it waits for deltas.

// The engine-to-handler channel of one Generate call: the engine thread pushes deltas, merged
// while the handler is busy writing; the handler waits for them. Shared with the engine's
// callback, which may outlive the handler.
struct GenerateCall {
  explicit GenerateCall(ServingMetrics* metrics) : metrics(metrics) {}

  ServingMetrics* const metrics;  // may be null
  std::map<int32_t, absl::Time> last_token_time;  // by sample index; engine thread only
  absl::Mutex mu;
  std::map<int32_t, RequestOutput> pending ABSL_GUARDED_BY(mu);  // by sample index
  bool finished ABSL_GUARDED_BY(mu) = false;  // the request's last delta was pushed
  // The handler's context while the handler runs (cleared before it returns): lets the engine
  // thread see a cancelled call at its next step boundary.
  grpc::ServerContext* context ABSL_GUARDED_BY(mu) = nullptr;

  // Engine thread, before every step.
  bool IsCancelled() {
    absl::MutexLock lock(&mu);
    return context != nullptr && context->IsCancelled();
  }

  // Engine thread; one delta per step, so inter-token gaps are measured here rather than on the
  // handler's merged deltas.
  void OnOutput(const RequestOutput& delta) {
    if (metrics != nullptr && !delta.token_ids.empty()) {
      auto [last, fresh] = last_token_time.try_emplace(delta.index, delta.time);
      if (!fresh) {
        metrics->ObserveInterToken(absl::ToDoubleSeconds(delta.time - last->second),
                                   static_cast<int>(delta.token_ids.size()));
        last->second = delta.time;
      }
    }
    absl::MutexLock lock(&mu);
    auto it = pending.find(delta.index);
    if (it != pending.end()) {
      it->second.Merge(delta);
    } else {
      pending.emplace(delta.index, delta);
    }
    if (delta.request_finished) finished = true;
  }

  bool Readable() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !pending.empty(); }

  // One sample's deltas pushed since they were last taken (the lowest index first), waiting up to
  // `timeout`. request_finished is set only on the delta that empties a finished call.
  std::optional<RequestOutput> Next(absl::Duration timeout) {
    absl::MutexLock lock(&mu);
    mu.AwaitWithTimeout(absl::Condition(this, &GenerateCall::Readable), timeout);
    if (pending.empty()) return std::nullopt;
    std::optional<RequestOutput> out = std::move(pending.begin()->second);
    pending.erase(pending.begin());
    out->request_finished = finished && pending.empty();
    return out;
  }
};

grpc::Status CancelledStatus(const grpc::ServerContext& context) {
  if (context.deadline() <= std::chrono::system_clock::now()) {
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                        "deadline exceeded; the request was aborted");
  }
  return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled; the request was aborted");
}

std::string_view Authorization(const grpc::ServerContext& context,
                               bool* present) {
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  *present = it != md.end();
  if (!*present) return {};
  return std::string_view(it->second.data(), it->second.size());
}

}  // namespace

// Counts a call as in flight for its lifetime.
class InferenceService::CallScope {
 public:
  explicit CallScope(InferenceService* service) : service_(service) {
    absl::MutexLock lock(&service_->mu_);
    ++service_->active_calls_;
  }
  ~CallScope() {
    absl::MutexLock lock(&service_->mu_);
    --service_->active_calls_;
  }
  CallScope(const CallScope&) = delete;
  CallScope& operator=(const CallScope&) = delete;

 private:
  InferenceService* service_;
};

InferenceService::InferenceService(Engine* engine, ServingMetrics* metrics,
                                   InferenceServiceOptions options)
    : engine_(engine), metrics_(metrics), options_(std::move(options)) {
  const EngineConfig& config = engine_->config();
  const std::string dir = config.tokenizer_dir.empty() ? config.model_dir : config.tokenizer_dir;
  if (engine_->tokenizer() != nullptr && !dir.empty()) {
    absl::StatusOr<TokenizerChatTemplate> chat = TokenizerChatTemplate::FromDirectory(dir);
    if (chat.ok()) {
      chat_template_ = std::move(*chat);
    } else if (!absl::IsNotFound(chat.status())) {
      MS_LOG(WARNING) << "chat template unusable, `messages` requests will be refused: " << chat.status();
    }
  }
}

void InferenceService::StartDraining() { draining_.store(true, std::memory_order_release); }

void InferenceService::CancelInFlight() {
  StartDraining();
  cancel_in_flight_.store(true, std::memory_order_release);
}

bool InferenceService::WaitForNoActiveCalls(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto none = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return active_calls_ == 0; };
  return mu_.AwaitWithDeadline(absl::Condition(&none), deadline);
}

int InferenceService::active_calls() const {
  absl::MutexLock lock(&mu_);
  return active_calls_;
}

grpc::Status InferenceService::Admit(grpc::ServerContext* context) const {
  if (draining()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "the server is draining (shutting down); retry on another server");
  }
  bool present = false;
  const std::string_view auth = Authorization(*context, &present);
  return ToGrpcStatus(options_.api_keys.Check(present ? &auth : nullptr));
}

absl::StatusOr<std::vector<int32_t>> InferenceService::EncodeText(const std::string& text,
                                                                  bool add_special,
                                                                  const char* field) const {
  const Tokenizer* tokenizer = engine_->tokenizer();
  if (tokenizer == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": this model has no tokenizer (tokenizer.json); send token_ids"));
  }
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer->Encode(text, add_special);
  if (!ids.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": cannot tokenize: ", std::string(ids.status().message())));
  }
  return ids;
}

absl::StatusOr<std::vector<int32_t>> InferenceService::EncodeMessages(
    const v1::ChatMessages& messages) const {
  if (!chat_template_) {
    return absl::FailedPreconditionError(
        "messages: this model has no chat template (tokenizer_config.json); send text or token_ids");
  }
  if (messages.messages().empty()) {
    return absl::InvalidArgumentError("messages.messages: at least one message is required");
  }
  ChatRequest chat;
  chat.add_generation_prompt = !messages.has_add_generation_prompt() || messages.add_generation_prompt();
  for (int i = 0; i < messages.messages_size(); ++i) {
    const v1::ChatMessage& m = messages.messages(i);
    if (m.role().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("messages.messages[", i, "].role must not be empty"));
    }
    chat.messages.push_back({{"role", m.role()}, {"content", m.content()}});
  }
  absl::StatusOr<std::string> prompt = chat_template_->Apply(chat);
  if (!prompt.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("messages: the chat template cannot render them: ", std::string(prompt.status().message())));
  }
  return EncodeText(*prompt, /*add_special=*/false, "messages");
}

absl::StatusOr<std::vector<int32_t>> InferenceService::PromptIds(
    const v1::GenerateRequest& request) const {
  std::vector<int32_t> ids;
  const char* field = "token_ids.ids";
  switch (request.input_case()) {
    case v1::GenerateRequest::kText: {
      field = "text";
      const bool add_special = !request.has_add_special_tokens() || request.add_special_tokens();
      absl::StatusOr<std::vector<int32_t>> encoded = EncodeText(request.text(), add_special, field);
      if (!encoded.ok()) return encoded.status();
      ids = std::move(*encoded);
      break;
    }
    case v1::GenerateRequest::kTokenIds:
      ids.assign(request.token_ids().ids().begin(), request.token_ids().ids().end());
      break;
    case v1::GenerateRequest::kMessages: {
      field = "messages";
      absl::StatusOr<std::vector<int32_t>> encoded = EncodeMessages(request.messages());
      if (!encoded.ok()) return encoded.status();
      ids = std::move(*encoded);
      break;
    }
    case v1::GenerateRequest::INPUT_NOT_SET:
      return absl::InvalidArgumentError(
          "input: exactly one of text, token_ids or messages must be set");
  }
  absl::Status s = ValidatePromptIds(ids, engine_->vocab_size(), engine_->max_model_len(), field);
  if (!s.ok()) return s;
  return ids;
}

grpc::Status InferenceService::Generate(grpc::ServerContext* context,
                                        const v1::GenerateRequest* request,
                                        grpc::ServerWriter<v1::GenerateResponse>* writer) {
  CallScope scope(this);
  if (grpc::Status s = Admit(context); !s.ok()) return s;
  if (absl::Status s = ValidateRequestFields(*request); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<std::vector<int32_t>> prompt = PromptIds(*request);
  if (!prompt.ok()) return ToGrpcStatus(prompt.status());

  EngineRequest er;
  er.sampling = FromProto(request->sampling());
  if (absl::Status s = ValidateSampling(
          er.sampling, {.vocab_size = engine_->vocab_size(),
                        .max_model_len = engine_->max_model_len(),
                        .prompt_tokens = static_cast<int32_t>(prompt->size()),
                        .max_n = engine_->config().max_num_samples});
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (!er.sampling.stop.empty() && engine_->tokenizer() == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "sampling.stop: stop strings need a tokenizer, and this model has none");
  }
  const std::string request_id =
      request->request_id().empty()
          ? absl::StrCat("req-", next_request_number_.fetch_add(1, std::memory_order_relaxed))
          : request->request_id();
  if (options_.log_requests) {
    MS_LOG(INFO) << "generate " << request_id << ": " << prompt->size() << " prompt tokens"
                 << (request->has_text() ? absl::StrCat(", text: ", request->text()) : "");
  }

  auto call = std::make_shared<GenerateCall>(metrics_);
  er.priority = request->priority();
  er.cache_salt = request->cache_salt();
  er.skip_special_tokens = !request->has_skip_special_tokens() || request->skip_special_tokens();
  er.on_output = [call](const RequestOutput& delta) { call->OnOutput(delta); };
  {
    absl::MutexLock lock(&call->mu);
    call->context = context;
  }
  er.is_cancelled = [call] { return call->IsCancelled(); };
  // The engine may probe after this handler returns (until the request's final delta).
  absl::Cleanup forget_context = [call] {
    absl::MutexLock lock(&call->mu);
    call->context = nullptr;
  };
  std::vector<int32_t> prompt_copy;
  if (request->return_prompt_token_ids()) prompt_copy = *prompt;
  er.prompt_token_ids = std::move(*prompt);

  absl::StatusOr<std::shared_ptr<RequestStream>> stream = engine_->AddRequest(std::move(er));
  if (!stream.ok()) return ToGrpcStatus(stream.status());
  const uint64_t engine_id = (*stream)->request_id();

  // Aborts the engine request and waits for its final delta (blocks freed).
  auto abort_and_wait = [&]() {
    engine_->Abort(engine_id);
    absl::MutexLock lock(&call->mu);
    call->mu.AwaitWithTimeout(absl::Condition(&call->finished), kAbortConfirmTimeout);
  };

  bool first = true;
  std::string logged_output;
  for (;;) {
    std::optional<RequestOutput> delta = call->Next(options_.poll_interval);
    if (context->IsCancelled()) {
      abort_and_wait();
      return CancelledStatus(*context);
    }
    if (cancel_in_flight_.load(std::memory_order_acquire) &&
        !(delta.has_value() && delta->request_finished)) {
      abort_and_wait();
      return grpc::Status(grpc::StatusCode::CANCELLED,
                          "the server shut down before the request finished (shutdown timeout)");
    }
    if (!delta.has_value()) continue;

    if (delta->request_finished && metrics_ != nullptr) metrics_->ObserveFinished(*delta);
    if (delta->finished && delta->finish_reason == FinishReason::kError) {
      // One status ends the call: a failed sample fails the request (the others are aborted).
      if (!delta->request_finished) abort_and_wait();
      absl::Status error = delta->error.ok() ? absl::InternalError("the engine failed") : delta->error;
      return ToGrpcStatus(error);
    }
    if (options_.log_requests) logged_output += delta->text;

    v1::GenerateResponse response;
    response.set_request_id(request_id);
    if (first && !prompt_copy.empty()) {
      response.mutable_prompt_token_ids()->Add(prompt_copy.begin(), prompt_copy.end());
    }
    ToProto(*delta, &response);
    const bool has_content = !delta->token_ids.empty() || !delta->text.empty() ||
                             !delta->prompt_logprobs.empty() ||
                             delta->finished || response.prompt_token_ids_size() > 0;
    if (has_content) {
      grpc::WriteOptions write_options;
      if (!writer->Write(response, write_options)) {
        // The client is gone.
        if (!delta->request_finished) abort_and_wait();
        return CancelledStatus(*context);
      }
      first = false;
    }
    if (delta->request_finished) {
      if (options_.log_requests) {
        MS_LOG(INFO) << "generate " << request_id << " finished ("
                     << FinishReasonName(delta->finish_reason) << "): " << logged_output;
      }
      return grpc::Status::OK;
    }
  }
}

grpc::Status InferenceService::Tokenize(grpc::ServerContext* context,
                                        const v1::TokenizeRequest* request,
                                        v1::TokenizeResponse* response) {
  CallScope scope(this);
  if (grpc::Status s = Admit(context); !s.ok()) return s;
  std::vector<int32_t> ids;
  switch (request->input_case()) {
    case v1::TokenizeRequest::kText: {
      const bool add_special = !request->has_add_special_tokens() || request->add_special_tokens();
      absl::StatusOr<std::vector<int32_t>> encoded = EncodeText(request->text(), add_special, "text");
      if (!encoded.ok()) return ToGrpcStatus(encoded.status());
      ids = std::move(*encoded);
      break;
    }
    case v1::TokenizeRequest::kMessages: {
      absl::StatusOr<std::vector<int32_t>> encoded = EncodeMessages(request->messages());
      if (!encoded.ok()) return ToGrpcStatus(encoded.status());
      ids = std::move(*encoded);
      break;
    }
    case v1::TokenizeRequest::INPUT_NOT_SET:
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "input: exactly one of text or messages must be set");
  }
  response->mutable_token_ids()->Add(ids.begin(), ids.end());
  if (request->return_token_strings()) {
    for (int32_t id : ids) {
      response->add_token_strings(engine_->tokenizer()->IdToToken(id).value_or(""));
    }
  }
  return grpc::Status::OK;
}

grpc::Status InferenceService::Detokenize(grpc::ServerContext* context,
                                          const v1::DetokenizeRequest* request,
                                          v1::DetokenizeResponse* response) {
  CallScope scope(this);
  if (grpc::Status s = Admit(context); !s.ok()) return s;
  const Tokenizer* tokenizer = engine_->tokenizer();
  if (tokenizer == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "this model has no tokenizer (tokenizer.json)");
  }
  std::vector<int32_t> ids(request->token_ids().begin(), request->token_ids().end());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= engine_->vocab_size()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("token_ids[", i, "] = ", ids[i],
                                       " is outside the vocabulary [0, ", engine_->vocab_size(),
                                       ")"));
    }
  }
  const bool skip = !request->has_skip_special_tokens() || request->skip_special_tokens();
  absl::StatusOr<std::string> text = tokenizer->Decode(ids, skip);
  if (!text.ok()) return ToGrpcStatus(text.status());
  response->set_text(std::move(*text));
  return grpc::Status::OK;
}

grpc::Status InferenceService::GetModelInfo(grpc::ServerContext* context,
                                            const v1::GetModelInfoRequest* request,
                                            v1::ModelInfo* response) {
  CallScope scope(this);
  if (grpc::Status s = Admit(context); !s.ok()) return s;
  const ModelConfig& c = engine_->model_config();
  const EngineMetrics m = engine_->GetMetrics();
  response->set_model_id(options_.model_id);
  response->set_architecture(std::string(ArchitectureName(c.architecture)));
  response->set_model_type(c.model_type);
  response->set_max_model_len(engine_->max_model_len());
  response->set_vocab_size(engine_->vocab_size());
  response->set_dtype(c.torch_dtype);
  response->set_backend(engine_->config().device);
  response->set_kv_block_size(engine_->config().block_size);
  response->set_kv_cache_blocks(m.kv_blocks_total);
  response->set_kv_capacity_tokens(static_cast<int64_t>(m.kv_blocks_total) *
                                   engine_->config().block_size);
  response->set_num_experts(static_cast<int32_t>(c.num_experts));
  response->set_num_experts_per_token(static_cast<int32_t>(c.num_experts_per_tok));
  response->set_has_chat_template(chat_template_.has_value());
  response->set_has_tokenizer(engine_->tokenizer() != nullptr);
  response->set_server_version(kVersion);
  return grpc::Status::OK;
}

}  // namespace moeserve::api
