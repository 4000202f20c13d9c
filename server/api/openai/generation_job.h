#ifndef MOESERVE_SERVER_API_OPENAI_GENERATION_JOB_H_
#define MOESERVE_SERVER_API_OPENAI_GENERATION_JOB_H_

// GenerationJob: one OpenAI generation request in flight, driving its serving Calls (one per
// prompt) over its HttpExchange. The engine's output wakes the connection, whose thread reads the
// Calls (the serving layer's output processing runs there) and answers:
//   - streamed: an SSE stream whose chunks all carry the request's id; n > 1 choices interleave,
//     told apart by `index`; a `: keep-alive` comment after every interval without a chunk
//     (while the request waits in the queue); with include_usage, a last chunk with empty
//     `choices` and the usage; then `data: [DONE]`. An error mid-stream is an `error` event.
//   - whole: one JSON response when every choice has finished (an error: its status).
// A client that goes away (or stops reading) cancels the job: its Calls are dropped, which aborts
// the engine requests at the next step boundary.
//
// Subclasses format their endpoint's choices. Start() runs on a worker thread; everything after
// it on the connection's thread (HttpExchange's callbacks), never concurrently.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "server/api/http/http_message.h"
#include "server/api/openai/openai_format.h"
#include "server/serving/call.h"

namespace moeserve::api::openai {

struct JobOptions {
  bool stream = false;
  bool include_usage = false;
  int32_t n = 1;   // choices per prompt
  std::string id;  // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;
  std::string model;
};

// What each Call's ServingRequest::on_output must be: wakes the job's connection (cheap, safe
// from the engine thread, a no-op once the exchange is gone).
std::function<void()> ExchangeWaker(const std::shared_ptr<HttpExchange>& exchange);

class GenerationJob : public std::enable_shared_from_this<GenerationJob> {
 public:
  GenerationJob(std::shared_ptr<HttpExchange> exchange, JobOptions options);
  virtual ~GenerationJob();

  GenerationJob(const GenerationJob&) = delete;
  GenerationJob& operator=(const GenerationJob&) = delete;

  // Takes the submitted Calls (one per prompt, in order) and starts answering.
  void Start(std::vector<std::unique_ptr<serving::Call>> calls);

 protected:
  // Streamed: chunks to send before any output (chat's role chunks).
  virtual void OnStart(std::string* sse) {}
  // One output of choice `choice` (prompt * n + output index) of `call` (prompt `prompt`).
  // Streamed: append its chunk(s) to `sse`; whole: accumulate.
  virtual void OnOutput(int prompt, int choice, const serving::Call& call, const serving::Output& out,
                        std::string* sse) = 0;
  // Whole: the response body once every choice has finished.
  virtual Json WholeResponse(Json usage) = 0;
  // "text_completion" / "chat.completion.chunk".
  virtual const char* ChunkObject() const = 0;

  // A chunk with this request's id, object, created and model around `choices`.
  Json ChunkJson(Json choices) const;
  const JobOptions& options() const { return options_; }

 private:
  void Pump();
  void Idle();
  void Cancel();
  void Finish();
  void Fail(const absl::Status& status);

  const std::shared_ptr<HttpExchange> exchange_;
  const JobOptions options_;
  std::vector<std::unique_ptr<serving::Call>> calls_;
  int64_t prompt_tokens_ = 0;
  int64_t completion_tokens_ = 0;
  int64_t cached_tokens_ = 0;
  bool done_ = false;
};

}  // namespace moeserve::api::openai

#endif  // MOESERVE_SERVER_API_OPENAI_GENERATION_JOB_H_
