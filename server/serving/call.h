#ifndef MOESERVE_SERVER_SERVING_CALL_H_
#define MOESERVE_SERVER_SERVING_CALL_H_

// Call: one generation request in flight, as its transport sees it. The engine thread only queues
// its id deltas here (and tells ServingRequest::on_output); the reader turns them into client
// output on its own thread with Next(): detokenizing, stop strings (a stop string stops the sample
// in the engine and drops its later tokens), logprob assembly and usage. Dropping the Call aborts
// the engine request if it has not finished.
//
// Thread-compatible for the reader (one thread at a time calls Next/Abort); the engine side is
// internally synchronized.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/time/time.h"
#include "server/engine/request_output.h"
#include "server/serving/output_processor.h"
#include "server/serving/prompt_builder.h"
#include "server/serving/serving_output.h"

namespace moeserve {
class Engine;
}  // namespace moeserve

namespace moeserve::serving {

// Told about every request's timing by the engine thread (e.g. latency histograms). Must not block.
class OutputObserver {
 public:
  virtual ~OutputObserver() = default;
  // The gap between two deltas of one completion, spread over the `tokens` of the later one.
  virtual void ObserveInterToken(double gap_seconds, int tokens) = 0;
  // The engine's final delta of a request (its timings and usage are final).
  virtual void ObserveFinished(const RequestOutput& final_delta) = 0;
};

class Call {
 public:
  struct Channel;  // shared with the engine's callback

  Call(Engine* engine, std::shared_ptr<Channel> channel, uint64_t engine_id, BuiltPrompt prompt,
       std::vector<std::unique_ptr<SampleOutputProcessor>> samples);
  ~Call();  // aborts the engine request unless it finished

  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  uint64_t engine_id() const { return engine_id_; }
  const std::vector<int32_t>& prompt_token_ids() const { return prompt_.ids; }
  // The prompt's text as given or rendered by the chat template (empty for token ids).
  const std::string& prompt_text() const { return prompt_.text; }
  int32_t num_samples() const { return static_cast<int32_t>(samples_.size()); }

  // Waits up to `timeout` for output, then returns what one completion (the lowest index with any)
  // produced since it was last returned, merged into one delta; nullopt when nothing came, or once
  // the request's last delta (request_finished) has been returned.
  std::optional<Output> Next(absl::Duration timeout);

  // True once Next() returned the request's last delta.
  bool finished() const { return returned_final_; }

  // Aborts the engine request; its completions then end with FinishReason::kAbort.
  void Abort();
  // Waits up to `timeout` until the engine has ended the request (its blocks are freed at the end
  // of that step); true if it has.
  bool WaitForEngine(absl::Duration timeout);

 private:
  Engine* const engine_;
  const std::shared_ptr<Channel> channel_;
  const uint64_t engine_id_;
  const BuiltPrompt prompt_;
  std::vector<std::unique_ptr<SampleOutputProcessor>> samples_;
  int32_t num_finished_ = 0;
  bool returned_final_ = false;
};

// The engine-to-reader side of a Call, created before the engine request so that the engine's
// callback can hold it (and, through it, `observer`, which may be null).
std::shared_ptr<Call::Channel> MakeCallChannel(std::shared_ptr<OutputObserver> observer,
                                               std::function<void()> on_output);
// The engine callback that feeds `channel`.
std::function<void(const RequestOutput&)> ChannelCallback(std::shared_ptr<Call::Channel> channel);

}  // namespace moeserve::serving

#endif  // MOESERVE_SERVER_SERVING_CALL_H_
