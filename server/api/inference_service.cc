#include "server/api/inference_service.h"

#include <memory>
#include <optional>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "server/api/request_convert.h"
#include "server/common/logging.h"

namespace moeserve::api {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

namespace {

constexpr char kVersion[] = "0.1.0";
// How long a handler waits for the engine to confirm an abort before it gives up on the final
// delta (the engine confirms within one step; this only guards against a stopped engine).
constexpr absl::Duration kAbortConfirmTimeout = absl::Seconds(30);

// Lets the engine thread see a cancelled call at its next step boundary. Shared with the engine's
// probe, which may run after the handler returned (the context is cleared first).
struct ContextProbe {
  absl::Mutex mu;
  grpc::ServerContext* context ABSL_GUARDED_BY(mu) = nullptr;

  bool IsCancelled() {
    absl::MutexLock lock(&mu);
    return context != nullptr && context->IsCancelled();
  }
};

grpc::Status CancelledStatus(const grpc::ServerContext& context) {
  if (context.deadline() <= std::chrono::system_clock::now()) {
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "deadline exceeded; the request was aborted");
  }
  return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled; the request was aborted");
}

std::string_view Authorization(const grpc::ServerContext& context, bool* present) {
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

InferenceService::InferenceService(serving::Frontend* frontend, InferenceServiceOptions options)
    : frontend_(frontend), options_(std::move(options)) {}

void InferenceService::CancelInFlight() { cancel_in_flight_.store(true, std::memory_order_release); }

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
  bool present = false;
  const std::string_view auth = Authorization(*context, &present);
  return ToGrpcStatus(frontend_->Admit(present ? &auth : nullptr));
}

grpc::Status InferenceService::Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                                        grpc::ServerWriter<v1::GenerateResponse>* writer) {
  CallScope scope(this);
  if (grpc::Status s = Admit(context); !s.ok()) return s;
  absl::StatusOr<serving::ServingRequest> serving_request = FromProto(*request);
  if (!serving_request.ok()) return ToGrpcStatus(serving_request.status());
  const std::string request_id =
      request->request_id().empty() ? absl::StrCat("req-", next_request_number_.fetch_add(1, std::memory_order_relaxed))
                                    : request->request_id();

  auto probe = std::make_shared<ContextProbe>();
  {
    absl::MutexLock lock(&probe->mu);
    probe->context = context;
  }
  // The engine may probe after this handler returns (until the request's final delta).
  absl::Cleanup forget_context = [probe] {
    absl::MutexLock lock(&probe->mu);
    probe->context = nullptr;
  };
  // Also stops the request's chat template render; the shutdown's cancel reaches it too.
  serving_request->is_cancelled = [this, probe] {
    return probe->IsCancelled() || cancel_in_flight_.load(std::memory_order_acquire);
  };
  absl::StatusOr<std::unique_ptr<serving::Call>> submitted = frontend_->Submit(*std::move(serving_request));
  if (absl::IsCancelled(submitted.status())) return CancelledStatus(*context);
  if (!submitted.ok()) return ToGrpcStatus(submitted.status());
  serving::Call& call = **submitted;
  if (options_.log_requests) {
    MS_LOG(INFO) << "generate " << request_id << ": " << call.prompt_token_ids().size() << " prompt tokens"
                 << (request->has_text() ? absl::StrCat(", text: ", request->text()) : "");
  }

  // Aborts the engine request and waits for its end (blocks freed).
  auto abort_and_wait = [&call]() {
    call.Abort();
    call.WaitForEngine(kAbortConfirmTimeout);
  };

  bool first = true;
  std::string logged_output;
  for (;;) {
    std::optional<serving::Output> out = call.Next(options_.poll_interval);
    if (context->IsCancelled()) {
      abort_and_wait();
      return CancelledStatus(*context);
    }
    if (cancel_in_flight_.load(std::memory_order_acquire) && !(out.has_value() && out->request_finished)) {
      abort_and_wait();
      return grpc::Status(grpc::StatusCode::CANCELLED,
                          "the server shut down before the request finished (shutdown timeout)");
    }
    if (!out.has_value()) continue;

    if (out->finished && out->finish_reason == FinishReason::kError) {
      // One status ends the call: a failed sample fails the request (the others are aborted).
      if (!out->request_finished) abort_and_wait();
      return ToGrpcStatus(out->error.ok() ? absl::InternalError("the engine failed") : out->error);
    }
    if (options_.log_requests) logged_output += out->text;

    v1::GenerateResponse response;
    response.set_request_id(request_id);
    if (first && request->return_prompt_token_ids()) {
      response.mutable_prompt_token_ids()->Add(call.prompt_token_ids().begin(), call.prompt_token_ids().end());
    }
    ToProto(*out, &response);
    if (!writer->Write(response)) {
      // The client is gone.
      if (!out->request_finished) abort_and_wait();
      return CancelledStatus(*context);
    }
    first = false;
    if (out->request_finished) {
      if (options_.log_requests) {
        MS_LOG(INFO) << "generate " << request_id << " finished (" << FinishReasonName(out->finish_reason)
                     << "): " << logged_output;
      }
      return grpc::Status::OK;
    }
  }
}

grpc::Status InferenceService::Tokenize(grpc::ServerContext* context, const v1::TokenizeRequest* request,
                                        v1::TokenizeResponse* response) {
  CallScope scope(this);
  if (grpc::Status s = Admit(context); !s.ok()) return s;
  absl::StatusOr<serving::PromptInput> input = FromProto(*request);
  if (!input.ok()) return ToGrpcStatus(input.status());
  serving::FieldNames names;
  names.prompt = request->has_messages() ? "messages.messages" : "text";
  absl::StatusOr<serving::BuiltPrompt> prompt = frontend_->Tokenize(*input, names, {.cancelled = [this, context] {
    return context->IsCancelled() || cancel_in_flight_.load(std::memory_order_acquire);
  }});
  if (absl::IsCancelled(prompt.status())) return CancelledStatus(*context);
  if (!prompt.ok()) return ToGrpcStatus(prompt.status());
  response->mutable_token_ids()->Add(prompt->ids.begin(), prompt->ids.end());
  if (request->return_token_strings()) {
    const Tokenizer* tokenizer = frontend_->engine()->tokenizer();
    for (int32_t id : prompt->ids) response->add_token_strings(tokenizer->IdToToken(id).value_or(""));
  }
  return grpc::Status::OK;
}

grpc::Status InferenceService::Detokenize(grpc::ServerContext* context, const v1::DetokenizeRequest* request,
                                          v1::DetokenizeResponse* response) {
  CallScope scope(this);
  if (grpc::Status s = Admit(context); !s.ok()) return s;
  const std::vector<int32_t> ids(request->token_ids().begin(), request->token_ids().end());
  const bool skip = !request->has_skip_special_tokens() || request->skip_special_tokens();
  absl::StatusOr<std::string> text = frontend_->Detokenize(ids, skip, "token_ids");
  if (!text.ok()) return ToGrpcStatus(text.status());
  response->set_text(*std::move(text));
  return grpc::Status::OK;
}

grpc::Status InferenceService::GetModelInfo(grpc::ServerContext* context, const v1::GetModelInfoRequest* request,
                                            v1::ModelInfo* response) {
  CallScope scope(this);
  if (grpc::Status s = Admit(context); !s.ok()) return s;
  const Engine& engine = *frontend_->engine();
  const ModelConfig& c = engine.model_config();
  const EngineMetrics m = engine.GetMetrics();
  response->set_model_id(options_.model_id);
  response->set_architecture(c.architecture);
  response->set_model_type(c.model_type);
  response->set_max_model_len(engine.max_model_len());
  response->set_vocab_size(engine.vocab_size());
  response->set_dtype(c.torch_dtype);
  response->set_backend(engine.config().device);
  response->set_kv_block_size(engine.config().block_size);
  response->set_kv_cache_blocks(m.kv_blocks_total);
  response->set_kv_capacity_tokens(static_cast<int64_t>(m.kv_blocks_total) * engine.config().block_size);
  response->set_num_experts(static_cast<int32_t>(c.num_experts));
  response->set_num_experts_per_token(static_cast<int32_t>(c.num_experts_per_tok));
  response->set_has_chat_template(frontend_->prompts().has_chat_template());
  response->set_has_tokenizer(engine.tokenizer() != nullptr);
  response->set_server_version(kVersion);
  return grpc::Status::OK;
}

}  // namespace moeserve::api
