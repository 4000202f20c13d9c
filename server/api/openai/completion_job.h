#ifndef MOESERVE_SERVER_API_OPENAI_COMPLETION_JOB_H_
#define MOESERVE_SERVER_API_OPENAI_COMPLETION_JOB_H_

// The /v1/completions choices: text (after the prompt's text with echo), the legacy logprobs
// object (with echo, the prompt tokens' too, the first one unscored), finish_reason and vLLM's
// stop_reason. See GenerationJob.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server/api/openai/generation_job.h"

namespace moeserve::api::openai {

struct CompletionJobOptions {
  bool echo = false;
  std::optional<int32_t> logprobs;
  std::vector<std::string> prompt_texts;  // per prompt (echo)
  // The text of a token id (echoed prompt tokens' logprobs).
  std::function<std::string(int32_t)> token_text;
};

class CompletionJob final : public GenerationJob {
 public:
  CompletionJob(std::shared_ptr<HttpExchange> exchange, JobOptions options, CompletionJobOptions completion);

 private:
  struct Choice {
    std::string text;
    std::optional<LegacyLogprobs> logprobs;
    bool started = false;
    std::string finish_reason;
    Json stop_reason;
  };

  void OnOutput(int prompt, int choice, const serving::Call& call, const serving::Output& out,
                std::string* sse) override;
  Json WholeResponse(Json usage) override;
  const char* ChunkObject() const override { return "text_completion"; }

  const CompletionJobOptions completion_;
  std::vector<Choice> choices_;
};

}  // namespace moeserve::api::openai

#endif  // MOESERVE_SERVER_API_OPENAI_COMPLETION_JOB_H_
