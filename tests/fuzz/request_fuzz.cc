#include "tests/fuzz/request_fuzz.h"

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/sampling/sampling_params.h"
#include "server/serving/errors.h"
#include "tests/fuzz/fuzz_time.h"

namespace moeserve::fuzz {
namespace {

// The context the limits allow; small, so that prompts and max_tokens reach it.
constexpr int32_t kMaxModelLen = 2048;
constexpr int32_t kMaxSamples = 4;

std::vector<int32_t> EosIds(const Tokenizer& tokenizer) {
  std::vector<int32_t> ids;
  if (tokenizer.eos_token_id().has_value()) ids.push_back(*tokenizer.eos_token_id());
  for (const char* token : {"<|im_end|>", "<|endoftext|>"}) {
    const std::optional<int32_t> id = tokenizer.TokenToId(token);
    if (id.has_value() && (ids.empty() || ids[0] != *id)) ids.push_back(*id);
  }
  return ids;
}

// The production compiler limits but for time: a constraint that needs more than 2 s of CPU to
// compile is refused (the server allows 10 s), so that an input's cost stays well within the
// per-input limit, and the fuzzer's wall-clock timeout, on a loaded machine.
structured::ConstraintCompilerOptions CompilerOptions() {
  structured::ConstraintCompilerOptions options;
  options.limits.pda.max_time = absl::Seconds(2);
  return options;
}

std::string Quote(absl::string_view s) { return absl::StrCat("\"", s.substr(0, 300), "\""); }

}  // namespace

void Fail(const char* target, const std::string& what) {
  std::fprintf(stderr, "%s: invariant broken: %s\n", target, what.c_str());
  std::abort();
}

RequestFuzzEnv::RequestFuzzEnv(std::unique_ptr<Tokenizer> tokenizer, const std::string& dir)
    : tokenizer_(std::move(tokenizer)),
      prompts_(tokenizer_.get(), serving::PromptBuilder::LoadChatTemplate(dir)),
      limits_{.vocab_size = tokenizer_->vocab_size(),
              .max_model_len = kMaxModelLen,
              .max_n = kMaxSamples,
              .has_tokenizer = true},
      structured_(tokenizer_.get(), tokenizer_->vocab_size(), EosIds(*tokenizer_), CompilerOptions()) {}

RequestFuzzEnv& RequestFuzzEnv::Get(const std::string& source_dir) {
  static RequestFuzzEnv* const env = [&] {
    std::string dir = source_dir + "/../shared/data/tokenizers/qwen3";
    if (const char* override_dir = std::getenv("MOESERVE_FUZZ_TOKENIZER");
        override_dir != nullptr && *override_dir != '\0') {
      dir = override_dir;
    }
    absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::FromDirectory(dir);
    if (!tokenizer.ok()) Fail("request fuzz", absl::StrCat("cannot load ", dir, ": ", tokenizer.status().message()));
    auto* e = new RequestFuzzEnv(*std::move(tokenizer), dir);
    if (!e->prompts_.has_chat_template()) Fail("request fuzz", absl::StrCat(dir, " has no usable chat template"));
    // The vocabulary for constraints is built on the first constrained request: build it now, so
    // that no input is charged for it.
    serving::ServingRequest warm;
    warm.prompt = serving::TokenPrompt{{1, 2, 3}};
    warm.sampling.constraint = {.kind = structured::Constraint::Kind::kJsonObject};
    if (absl::StatusOr<serving::PreparedRequest> p = e->Prepare(&warm); !p.ok()) {
      Fail("request fuzz", absl::StrCat("a valid constrained request is refused: ", p.status().message()));
    }
    return e;
  }();
  return *env;
}

absl::StatusOr<serving::PreparedRequest> RequestFuzzEnv::Prepare(serving::ServingRequest* request) {
  return serving::PrepareRequest(request, prompts_, limits_, structured_);
}

RequestOutcome CheckRefusal(const char* target, const absl::Status& status, const std::vector<std::string>& fields,
                            bool allow_not_found) {
  const absl::StatusCode code = status.code();
  if (code != absl::StatusCode::kInvalidArgument && code != absl::StatusCode::kFailedPrecondition &&
      !(allow_not_found && code == absl::StatusCode::kNotFound)) {
    Fail(target, absl::StrCat("a refusal with code ", absl::StatusCodeToString(code), ": ", status.ToString()));
  }
  const std::optional<std::string> field = serving::ErrorField(status);
  if (!field.has_value() || field->empty()) {
    Fail(target, absl::StrCat("a refusal that names no field: ", Quote(status.message())));
  }
  if (!absl::StartsWith(status.message(), *field)) {
    Fail(target, absl::StrCat("a refusal whose message does not start with its field ", Quote(*field), ": ",
                              Quote(status.message())));
  }
  for (const std::string& name : fields) {
    if (absl::StartsWith(*field, name)) return RequestOutcome::kRefused;
  }
  Fail(target, absl::StrCat("a refusal naming a field the client did not send: ", Quote(*field), " in ",
                            Quote(status.message())));
}

RequestOutcome CheckPrepared(const char* target, const absl::StatusOr<serving::PreparedRequest>& prepared,
                             const serving::ServingRequest& request, const serving::RequestLimits& limits,
                             const std::vector<std::string>& fields) {
  if (!prepared.ok()) return CheckRefusal(target, prepared.status(), fields);
  const std::vector<int32_t>& ids = prepared->prompt.ids;
  if (ids.empty()) Fail(target, "an accepted request with an empty prompt");
  for (const int32_t id : ids) {
    if (id < 0 || id >= limits.vocab_size) Fail(target, absl::StrCat("an accepted prompt with id ", id));
  }
  if (static_cast<int64_t>(ids.size()) >= limits.max_model_len) {
    Fail(target, absl::StrCat("an accepted prompt of ", ids.size(), " tokens leaves no room in the context"));
  }
  const absl::Status valid =
      Validate(request.sampling, SamplingLimits{.vocab_size = limits.vocab_size,
                                                .max_model_len = limits.max_model_len,
                                                .prompt_tokens = static_cast<int32_t>(ids.size()),
                                                .max_n = limits.max_n});
  if (!valid.ok()) Fail(target, absl::StrCat("accepted sampling parameters are invalid: ", valid.message()));
  if ((prepared->constraint != nullptr) != request.sampling.constraint.active()) {
    Fail(target, "a constraint compiled for a request without one, or none for a request with one");
  }
  return RequestOutcome::kAccepted;
}

void CheckTime(const char* target, absl::Duration cpu_start) {
  const absl::Duration took = ProcessCpuTime() - cpu_start;
  if (took > kRequestTimeLimit) {
    Fail(target, absl::StrCat("an input took ", absl::FormatDuration(took),
                              " of CPU time, over the per-input limit of ", absl::FormatDuration(kRequestTimeLimit)));
  }
}

}  // namespace moeserve::fuzz
