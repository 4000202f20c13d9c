#ifndef MOESERVE_SERVER_ENGINE_REQUEST_OUTPUT_H_
#define MOESERVE_SERVER_ENGINE_REQUEST_OUTPUT_H_

// What the engine sends back for a request: deltas of generated token ids (with logprobs), and a
// final record. Plain value types. Text, stop strings and what clients see are the serving
// layer's (server/serving/), which turns these deltas into client output off the engine thread.

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/sampling/sampler.h"  // TokenLogprobs

namespace moeserve {

enum class FinishReason {
  kNone,    // not finished
  kStop,    // EOS, a stop token id, or a stop string (Engine::StopSample)
  kLength,  // max_tokens or max_model_len
  kAbort,   // Engine::Abort, shutdown
  kError,   // this request failed (error says why); others are unaffected
};

const char* FinishReasonName(FinishReason reason);  // "stop", "length", "abort", "error", ""

struct RequestUsage {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  int32_t cached_tokens = 0;  // prompt tokens served from the prefix cache at first admission
  int32_t num_preemptions = 0;
};

// Wall-clock times; InfinitePast() until the event happened.
struct RequestTimings {
  absl::Time arrival = absl::InfinitePast();          // Engine::AddRequest
  absl::Time first_scheduled = absl::InfinitePast();  // first step that computed it (queue end)
  absl::Time first_token = absl::InfinitePast();
  absl::Time finish = absl::InfinitePast();
};

// One delta of one sample of a request's output. A request with SamplingParams::n samples has n
// independent completions, told apart by `index` in [0, n). Per index, deltas concatenate: their
// token_ids are that completion's ids. A step may append several tokens to a sample (speculative
// decoding). Each sample's last delta has finished == true; the request's very last delta also
// has request_finished.
struct RequestOutput {
  uint64_t request_id = 0;
  int32_t index = 0;  // which sample (completion) of the request
  std::vector<int32_t> token_ids;
  std::vector<TokenLogprobs> logprobs;  // parallel to token_ids when logprobs were requested
  // SamplingParams::prompt_logprobs: entry i is prompt position i + 1 (position 0 has no
  // prediction; vLLM's None), the prompt token with the top alternatives of the raw model
  // distribution after the tokens before it. All prompt_tokens - 1 entries come at once, on
  // sample 0's first delta (the one with its first token); empty on every other delta.
  std::vector<TokenLogprobs> prompt_logprobs;
  absl::Time time = absl::InfinitePast();  // when the delta was produced (inter-token gaps)

  bool finished = false;          // this sample's last delta
  bool request_finished = false;  // the request's last delta: every sample has finished
  FinishReason finish_reason = FinishReason::kNone;
  absl::Status error;          // kError: why (ResourceExhausted for a refused admission, ...)
  int32_t stop_token_id = -1;  // kStop on EOS or a stop token id: that id

  // The request's, over all samples: prompt tokens once, completion tokens summed (every token
  // the engine generated). So far; final on the request's last delta.
  RequestUsage usage;
  RequestTimings timings;  // so far (final on the last delta)

  // Appends `next` (a later delta of the same sample) to this one.
  void Merge(RequestOutput next);
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_ENGINE_REQUEST_OUTPUT_H_
