// moeserve-bench over OpenAI's HTTP API (moeserve's, vLLM's, llama.cpp's server...): each request
// is one streamed POST to /completions or /chat/completions with stream_options.include_usage, its
// server-sent events read as they arrive. A chunk that carries text (or, for chat, reasoning or
// tool-call deltas) is one response carrying tokens; the server's usage gives the exact token
// counts at the end. HTTP errors are reported under the matching gRPC status names (400
// INVALID_ARGUMENT, 401 UNAUTHENTICATED, 429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE, ...) so reports
// of both protocols line up; the message keeps the HTTP status and the server's error message.
#ifndef MOESERVE_CLIENTS_BENCH_OPENAI_CLIENT_H_
#define MOESERVE_CLIENTS_BENCH_OPENAI_CLIENT_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "clients/bench/http_client.h"
#include "clients/bench/stream_client.h"

namespace moeserve::bench {

enum class OpenAiApi { kCompletions, kChat };

struct OpenAiOptions {
  OpenAiApi api = OpenAiApi::kCompletions;
  std::string model;    // the "model" of every request
  std::string api_key;  // sent as "Authorization: Bearer KEY"; "" for none
};

class OpenAiStreamClient : public StreamClient {
 public:
  // `base_url`: the API root, e.g. http://127.0.0.1:8000/v1.
  static absl::StatusOr<std::unique_ptr<OpenAiStreamClient>> Create(std::string_view base_url, OpenAiOptions options);

  // The first model GET {base}/models lists (for requests when no model was named).
  absl::StatusOr<std::string> FirstModelId();
  void set_model(std::string model) { options_.model = std::move(model); }

  // Chat sends text only: a token-id prompt ends at once with INVALID_ARGUMENT.
  std::unique_ptr<StreamCall> Start(const BenchPrompt& prompt, const RequestSpec& spec,
                                    StreamObserver* observer) override;

 private:
  class Call;
  OpenAiStreamClient(std::unique_ptr<HttpClient> http, OpenAiOptions options)
      : http_(std::move(http)), options_(std::move(options)) {}
  std::unique_ptr<HttpClient> http_;
  OpenAiOptions options_;
};

// The JSON body of a streamed request for `prompt` (exposed for tests).
std::string MakeOpenAiRequestBody(OpenAiApi api, const std::string& model, const BenchPrompt& prompt,
                                  const RequestSpec& spec);

// What one `data:` payload of the stream says.
struct OpenAiChunk {
  bool carries_tokens = false;
  std::string finish_reason;  // upper case, "" when none
  bool has_usage = false;
  int prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
  std::string error_status;  // a gRPC status name when the chunk is an error, else ""
  std::string error_message;
};
// InvalidArgument when `data` is not a JSON object.
absl::StatusOr<OpenAiChunk> ParseOpenAiChunk(OpenAiApi api, std::string_view data);

// The gRPC status name reported for an HTTP status code.
std::string StatusNameForHttp(int http_status);

}  // namespace moeserve::bench

#endif  // MOESERVE_CLIENTS_BENCH_OPENAI_CLIENT_H_
