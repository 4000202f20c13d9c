#include "server/serving/frontend.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace moeserve::serving {
namespace {

std::string TokenizerDir(const EngineConfig& config) {
  return config.tokenizer_dir.empty() ? config.model_dir : config.tokenizer_dir;
}

}  // namespace

Frontend::Frontend(Engine* engine, FrontendOptions options)
    : engine_(engine),
      options_(std::move(options)),
      prompts_(engine->tokenizer(), engine->tokenizer() != nullptr
                                        ? PromptBuilder::LoadChatTemplate(TokenizerDir(engine->config()))
                                        : std::nullopt),
      limits_(LimitsOf(*engine)),
      structured_(engine->tokenizer(), engine->vocab_size(), engine->eos_token_ids()) {}

absl::Status Frontend::Authenticate(const std::string_view* authorization) const {
  return options_.api_keys.Check(authorization);
}

absl::Status Frontend::Admit(const std::string_view* authorization) const {
  if (draining()) {
    return absl::UnavailableError("the server is draining (shutting down); retry on another server");
  }
  return Authenticate(authorization);
}

absl::StatusOr<std::unique_ptr<Call>> Frontend::Submit(ServingRequest request) {
  if (draining()) {
    return absl::UnavailableError("the server is draining (shutting down); retry on another server");
  }
  auto refuse = [this](absl::Status status) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    return status;
  };
  absl::StatusOr<PreparedRequest> prepared = PrepareRequest(&request, prompts_, limits_, structured_);
  if (absl::IsCancelled(prepared.status())) return prepared.status();  // not a bad request
  if (!prepared.ok()) return refuse(prepared.status());
  BuiltPrompt& prompt = prepared->prompt;
  std::vector<std::unique_ptr<SampleOutputProcessor>> samples;
  const SampleOutputOptions output{.skip_special_tokens = request.skip_special_tokens,
                                   .logprob_text = request.logprob_text};
  for (int32_t i = 0; i < request.sampling.n; ++i) {
    samples.push_back(
        std::make_unique<SampleOutputProcessor>(engine_->tokenizer(), prompt.ids, request.sampling, output));
  }
  std::shared_ptr<Call::Channel> channel = MakeCallChannel(options_.observer, std::move(request.on_output));
  EngineRequest er;
  er.prompt_token_ids = prompt.ids;
  er.sampling = std::move(request.sampling);
  er.priority = request.priority;
  er.cache_salt = std::move(request.cache_salt);
  er.constraint = std::move(prepared->constraint);
  er.on_output = ChannelCallback(channel);
  er.is_cancelled = std::move(request.is_cancelled);
  absl::StatusOr<std::shared_ptr<RequestStream>> stream = engine_->AddRequest(std::move(er));
  if (!stream.ok()) return stream.status();
  return std::make_unique<Call>(engine_, std::move(channel), (*stream)->request_id(), std::move(prompt),
                                std::move(samples));
}

absl::StatusOr<BuiltPrompt> Frontend::Tokenize(const PromptInput& input, const FieldNames& names,
                                               const ChatRenderControl& control) const {
  return prompts_.Build(input, names, control);
}

absl::StatusOr<std::string> Frontend::Detokenize(absl::Span<const int32_t> ids, bool skip_special_tokens,
                                                 const std::string& field) const {
  const Tokenizer* tokenizer = engine_->tokenizer();
  if (tokenizer == nullptr) {
    return FieldError(absl::StatusCode::kFailedPrecondition, field, ": this model has no tokenizer (tokenizer.json)");
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= limits_.vocab_size) {
      return InvalidField(absl::StrCat(field, "[", i, "]"),
                          absl::StrCat(" = ", ids[i], " is outside the vocabulary [0, ", limits_.vocab_size, ")"));
    }
  }
  return tokenizer->Decode(ids, skip_special_tokens);
}

std::string Frontend::TokenText(int32_t id) const {
  const Tokenizer* tokenizer = engine_->tokenizer();
  return tokenizer != nullptr ? serving::TokenText(*tokenizer, id) : std::string();
}

EngineMetrics Frontend::GetMetrics() const {
  EngineMetrics m = engine_->GetMetrics();
  m.requests_refused += refused_.load(std::memory_order_relaxed);
  return m;
}

}  // namespace moeserve::serving
