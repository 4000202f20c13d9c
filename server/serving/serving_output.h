#ifndef MOESERVE_SERVER_SERVING_SERVING_OUTPUT_H_
#define MOESERVE_SERVER_SERVING_SERVING_OUTPUT_H_

// What a client of the serving layer reads from a Call: per completion (sample), deltas of text,
// token ids and logprobs, then a final record with the finish reason; request-wide usage and
// timings. Plain value types; each transport writes its own framing of them.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/engine/request_output.h"

namespace moeserve::serving {

struct LogprobToken {
  int32_t token_id = -1;
  float logprob = 0.0f;
  std::string text;  // the token's own text (ServingRequest::logprob_text), else empty
};

// A token's log-probability under the raw model distribution and its most likely alternatives.
struct OutputLogprobs {
  LogprobToken token;
  std::vector<LogprobToken> top;  // SamplingParams::logprobs of them, most likely first
};

// One delta of one completion. Per index, deltas concatenate: their text is the completion's text
// (it may lag the ids while a UTF-8 character or a stop string may still be forming) and their
// token_ids its ids. A completion's last delta has finished; the request's last delta also has
// request_finished, and its usage and timings are final.
struct Output {
  int32_t index = 0;
  std::string text;
  std::vector<int32_t> token_ids;
  std::vector<OutputLogprobs> logprobs;  // parallel to token_ids when logprobs were requested
  // SamplingParams::prompt_logprobs: entry i is prompt position i + 1, all on completion 0's
  // first delta with a token.
  std::vector<OutputLogprobs> prompt_logprobs;

  bool finished = false;
  bool request_finished = false;
  FinishReason finish_reason = FinishReason::kNone;
  absl::Status error;          // kError: why
  std::string stop_string;     // kStop on a stop string: the one that matched (cut from text)
  int32_t stop_token_id = -1;  // kStop on EOS or a stop token id: that id

  // The request's, over all completions: prompt tokens once, completion tokens summed (the tokens
  // delivered: none past a stop string). So far; final on the request's last delta.
  RequestUsage usage;
  RequestTimings timings;
};

}  // namespace moeserve::serving

#endif  // MOESERVE_SERVER_SERVING_SERVING_OUTPUT_H_
