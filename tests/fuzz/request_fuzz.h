#ifndef MOESERVE_TESTS_FUZZ_REQUEST_FUZZ_H_
#define MOESERVE_TESTS_FUZZ_REQUEST_FUZZ_H_

// What the request fuzz targets (gRPC GenerateRequest, OpenAI HTTP requests) share: the serving
// layer's preparation of a request (serving::PrepareRequest: prompt built, request validated,
// constraint compiled, exactly what Frontend::Submit does before it queues one) over a real
// tokenizer and chat template, and the promises every outcome must keep. Each check aborts with a
// message naming the target when a promise breaks; sanitizers catch the rest.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/serving/prompt_builder.h"
#include "server/serving/request_validator.h"
#include "server/serving/serving_request.h"
#include "server/serving/structured_output.h"
#include "server/tokenizer/tokenizer.h"

namespace moeserve::fuzz {

// Each input (parsing, conversion, prompt building, validation, constraint compilation) must be
// done within this much CPU time (fuzz_time.h); a slower one is a failure. The costliest inputs,
// new constraints compiled over the 151,669-token vocabulary, are cut at 2 s (RequestFuzzEnv).
inline constexpr absl::Duration kRequestTimeLimit = absl::Seconds(5);

[[noreturn]] void Fail(const char* target, const std::string& what);

// What became of an input (for the replay tests' checks of the seeds).
enum class RequestOutcome {
  kIgnored,    // not a request (not parseable as one, or the bytes end before it does)
  kReadError,  // HTTP: the read failed with an error response (400, 413, 431)
  kRefused,    // a refusal naming a field (or a body that is not a JSON object)
  kAccepted,   // a request the engine can run (every prompt of it)
};

// The serving side of the request targets, built once per process. Not thread-safe (libFuzzer runs
// one input at a time).
class RequestFuzzEnv {
 public:
  // Over the qwen3 tokenizer and chat template of the shared data beside `source_dir`, or the
  // tokenizer directory $MOESERVE_FUZZ_TOKENIZER. Aborts when it cannot be loaded.
  static RequestFuzzEnv& Get(const std::string& source_dir);

  // serving::PrepareRequest with this env's prompt builder, limits and constraint compiler.
  absl::StatusOr<serving::PreparedRequest> Prepare(serving::ServingRequest* request);

  const serving::PromptBuilder& prompts() const { return prompts_; }
  const serving::RequestLimits& limits() const { return limits_; }

 private:
  explicit RequestFuzzEnv(std::unique_ptr<Tokenizer> tokenizer, const std::string& dir);

  const std::unique_ptr<Tokenizer> tokenizer_;
  const serving::PromptBuilder prompts_;
  const serving::RequestLimits limits_;
  serving::StructuredOutput structured_;
};

// Returns kRefused. A refusal must be InvalidArgument or FailedPrecondition (NotFound only when `allow_not_found`:
// OpenAI's unknown model) naming a field: serving::ErrorField set, the message starting with it,
// and the field one of the transport's, i.e. starting with one of `fields`.
RequestOutcome CheckRefusal(const char* target, const absl::Status& status, const std::vector<std::string>& fields,
                            bool allow_not_found = false);

// Returns kAccepted or kRefused. A prepared request must be one the engine can run: prompt ids non-empty, in the
// vocabulary and leaving room in the context, sampling parameters valid for that prompt, and a constraint exactly when
// one was asked for. A refusal is checked with CheckRefusal.
RequestOutcome CheckPrepared(const char* target, const absl::StatusOr<serving::PreparedRequest>& prepared,
                             const serving::ServingRequest& request, const serving::RequestLimits& limits,
                             const std::vector<std::string>& fields);

// Fails when the process has used more than kRequestTimeLimit of CPU time since `cpu_start`
// (ProcessCpuTime()).
void CheckTime(const char* target, absl::Duration cpu_start);

}  // namespace moeserve::fuzz

#endif  // MOESERVE_TESTS_FUZZ_REQUEST_FUZZ_H_
