#ifndef MOESERVE_SERVER_SERVING_FRONTEND_H_
#define MOESERVE_SERVER_SERVING_FRONTEND_H_

// Frontend: the transport-free serving layer over one Engine. Every transport (gRPC, HTTP, the
// CLI) hands it neutral requests: it admits them (draining, API keys), builds the prompt (text,
// ids or chat messages), validates once (compiling a structured-output constraint), submits to the engine and returns a
// Call that delivers neutral output. It also tokenizes and detokenizes for the tokenizer endpoints.
//
//   serving::Frontend frontend(engine.get(), {.api_keys = keys});
//   auto call = frontend.Submit({.prompt = serving::TextPrompt{"Once upon a time"}});
//   while (auto out = (*call)->Next(absl::InfiniteDuration())) { ... if (out->request_finished) break; }
//
// Thread-safe. The engine must outlive the Frontend and every Call.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/engine/engine.h"
#include "server/serving/api_keys.h"
#include "server/serving/call.h"
#include "server/serving/prompt_builder.h"
#include "server/serving/request_validator.h"
#include "server/serving/serving_request.h"
#include "server/serving/structured_output.h"

namespace moeserve::serving {

struct FrontendOptions {
  ApiKeys api_keys;                          // empty: no authentication
  std::shared_ptr<OutputObserver> observer;  // may be null
};

class Frontend {
 public:
  Frontend(Engine* engine, FrontendOptions options);

  Frontend(const Frontend&) = delete;
  Frontend& operator=(const Frontend&) = delete;

  // OK, or why a new request is refused before it is read: Unavailable while draining,
  // Unauthenticated for a missing or wrong key. `authorization`: the `authorization` header or
  // metadata value, or null when absent.
  absl::Status Admit(const std::string_view* authorization) const;
  // Only authentication (endpoints that stay open while draining).
  absl::Status Authenticate(const std::string_view* authorization) const;

  // From now on Admit and Submit refuse with Unavailable; calls in flight go on.
  void StartDraining() { draining_.store(true, std::memory_order_release); }
  bool draining() const { return draining_.load(std::memory_order_acquire); }

  // Builds the prompt, validates the request (and compiles its constraint) and queues it in the
  // engine. Errors name the field as `request.names` spells it: InvalidArgument,
  // FailedPrecondition (what this model cannot do), ResourceExhausted (queue full), Unavailable
  // (draining, engine stopped), Cancelled (the request's is_cancelled turned true while its chat
  // template rendered).
  absl::StatusOr<std::unique_ptr<Call>> Submit(ServingRequest request);

  // Token ids of a prompt (tokenize endpoints), checked against nothing but the tokenizer.
  // `control` stops a chat template render the caller no longer waits for.
  absl::StatusOr<BuiltPrompt> Tokenize(const PromptInput& input, const FieldNames& names,
                                       const ChatRenderControl& control = {}) const;
  // Text of `ids`; InvalidArgument naming `field`[i] for an id outside the vocabulary,
  // FailedPrecondition without a tokenizer.
  absl::StatusOr<std::string> Detokenize(absl::Span<const int32_t> ids, bool skip_special_tokens,
                                         const std::string& field) const;
  // The token's text as it reads inside a text (serving::TokenText; "" without a tokenizer).
  std::string TokenText(int32_t id) const;

  Engine* engine() const { return engine_; }
  const PromptBuilder& prompts() const { return prompts_; }
  RequestLimits limits() const { return limits_; }

  // The engine's metrics, with the requests this layer refused (invalid) counted as refused.
  EngineMetrics GetMetrics() const;

 private:
  Engine* const engine_;
  const FrontendOptions options_;
  const PromptBuilder prompts_;
  const RequestLimits limits_;
  StructuredOutput structured_;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> refused_{0};
};

}  // namespace moeserve::serving

#endif  // MOESERVE_SERVER_SERVING_FRONTEND_H_
