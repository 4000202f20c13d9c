#ifndef MOESERVE_SERVER_SERVING_OUTPUT_PROCESSOR_H_
#define MOESERVE_SERVER_SERVING_OUTPUT_PROCESSOR_H_

// SampleOutputProcessor: turns the engine's token-id deltas of one completion into what the client
// sees, off the engine thread (as vLLM's OutputProcessor does): incremental detokenizing, stop
// strings, logprob assembly and the count of delivered tokens. A stop string ends the completion
// at the token that completed it: the text is cut before the stop string, later tokens (the
// engine may have generated more before it learns of the stop, several per step with speculative
// decoding) are dropped, and the caller is told to stop the sample in the engine.
//
// Requires external synchronization. The tokenizer must outlive it.

#include <cstdint>
#include <optional>
#include <string>

#include "absl/types/span.h"
#include "server/engine/request_output.h"
#include "server/sampling/sampling_params.h"
#include "server/serving/serving_output.h"
#include "server/serving/stop_strings.h"
#include "server/tokenizer/incremental_detokenizer.h"
#include "server/tokenizer/tokenizer.h"

namespace moeserve::serving {

struct SampleOutputOptions {
  bool skip_special_tokens = true;
  bool logprob_text = false;  // fill LogprobToken::text
};

// The text of token `id` as it reads inside a text (with its leading space, which decoding it
// alone may strip), for logprobs: decoded after an anchor token, minus the anchor's text.
std::string TokenText(const Tokenizer& tokenizer, int32_t id);

class SampleOutputProcessor {
 public:
  // `tokenizer` may be null (ids only: no text, no stop strings).
  SampleOutputProcessor(const Tokenizer* tokenizer, absl::Span<const int32_t> prompt_ids, const SamplingParams& params,
                        SampleOutputOptions options);

  SampleOutputProcessor(const SampleOutputProcessor&) = delete;
  SampleOutputProcessor& operator=(const SampleOutputProcessor&) = delete;

  // The client's delta for the engine's `delta` of this sample (usage and timings left empty).
  // REQUIRES: !finished().
  Output Process(const RequestOutput& delta);

  // The completion has ended for the client (its final delta was returned).
  bool finished() const { return finished_; }
  // A stop string ended it while the engine had not finished the sample yet: the caller stops the
  // sample in the engine (Engine::StopSample).
  bool stopped_early() const { return stopped_early_; }
  // Tokens delivered to the client.
  int32_t num_tokens() const { return num_tokens_; }

 private:
  OutputLogprobs Assemble(const TokenLogprobs& lp) const;
  // Appends detokenized `text` (plus what is held back when `last`) through the stop strings;
  // true when a stop string matched (out is then final).
  bool AppendText(std::string text, bool last, Output* out);
  std::string TokenText(int32_t id) const;

  const Tokenizer* const tokenizer_;
  const SampleOutputOptions options_;
  std::optional<IncrementalDetokenizer> detokenizer_;
  std::optional<StopStringMatcher> stops_;
  int32_t num_tokens_ = 0;
  bool finished_ = false;
  bool stopped_early_ = false;
};

}  // namespace moeserve::serving

#endif  // MOESERVE_SERVER_SERVING_OUTPUT_PROCESSOR_H_
