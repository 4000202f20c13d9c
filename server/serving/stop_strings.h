#ifndef MOESERVE_SERVER_SERVING_STOP_STRINGS_H_
#define MOESERVE_SERVER_SERVING_STOP_STRINGS_H_

// StopStringMatcher: finds stop strings in a request's streamed text. Text is fed in deltas as
// the detokenizer completes it; Feed() returns what may be sent to the client now. Text that ends
// in a proper prefix of some stop string is held back until it either completes the stop string
// or can no longer do so; a match truncates the output before the stop string (OpenAI and vLLM
// default) and ends matching.
//
// Requires external synchronization.

#include <string>
#include <string_view>
#include <vector>

namespace moeserve::serving {

class StopStringMatcher {
 public:
  // Empty strings in `stops` are ignored.
  explicit StopStringMatcher(std::vector<std::string> stops);

  // Appends `text`; returns the text that is now safe to emit. After a match, returns the text
  // before the stop string and matched() is true; later calls return "".
  std::string Feed(std::string_view text);

  // End of generation: returns the held-back text (no stop string can complete any more).
  std::string Flush();

  bool matched() const { return matched_ >= 0; }
  const std::string& matched_string() const;  // REQUIRES: matched()

 private:
  std::vector<std::string> stops_;
  size_t max_len_ = 0;
  std::string held_;  // not yet emitted
  int matched_ = -1;  // index into stops_
};

}  // namespace moeserve::serving

#endif  // MOESERVE_SERVER_SERVING_STOP_STRINGS_H_
