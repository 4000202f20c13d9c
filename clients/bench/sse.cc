#include "clients/bench/sse.h"

namespace moeserve::bench {

void SseParser::Feed(std::string_view bytes, const std::function<void(std::string_view)>& on_event) {
  for (char c : bytes) {
    if (after_cr_) {
      after_cr_ = false;
      if (c == '\n') continue;  // \r\n
    }
    if (c == '\r' || c == '\n') {
      after_cr_ = c == '\r';
      EndLine(on_event);
    } else {
      line_.push_back(c);
    }
  }
}

void SseParser::EndLine(const std::function<void(std::string_view)>& on_event) {
  if (line_.empty()) {  // blank line: dispatch
    if (has_data_) on_event(data_);
    data_.clear();
    has_data_ = false;
    return;
  }
  std::string_view line = line_;
  if (line.front() != ':') {  // not a comment
    const size_t colon = line.find(':');
    const std::string_view field = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (field == "data") {
      if (has_data_) data_.push_back('\n');
      data_.append(value);
      has_data_ = true;
    }
  }
  line_.clear();
}

}  // namespace moeserve::bench
