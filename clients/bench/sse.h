// Splits a text/event-stream body (WHATWG server-sent events) into events as bytes arrive: lines
// end in \n, \r\n or \r (a pair split across reads included), an event ends at a blank line, its
// `data:` lines are joined with "\n" (one space after the colon dropped); comments (": ...") and
// other fields are skipped, and events without data are not reported. Requires external
// synchronization.
#ifndef MOESERVE_CLIENTS_BENCH_SSE_H_
#define MOESERVE_CLIENTS_BENCH_SSE_H_

#include <functional>
#include <string>
#include <string_view>

namespace moeserve::bench {

class SseParser {
 public:
  // Appends `bytes`; calls `on_event(data)` for every event they complete, in order.
  void Feed(std::string_view bytes, const std::function<void(std::string_view data)>& on_event);

 private:
  void EndLine(const std::function<void(std::string_view)>& on_event);

  std::string line_;
  std::string data_;
  bool has_data_ = false;
  bool after_cr_ = false;  // the last byte was \r: a following \n belongs to the same line end
};

}  // namespace moeserve::bench

#endif  // MOESERVE_CLIENTS_BENCH_SSE_H_
