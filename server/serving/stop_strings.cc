#include "server/serving/stop_strings.h"

#include <algorithm>
#include <utility>

#include "server/common/logging.h"

namespace moeserve::serving {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) {
  for (std::string& s : stops) {
    if (s.empty()) continue;
    max_len_ = std::max(max_len_, s.size());
    stops_.push_back(std::move(s));
  }
}

const std::string& StopStringMatcher::matched_string() const {
  MS_CHECK(matched());
  return stops_[matched_];
}

std::string StopStringMatcher::Feed(std::string_view text) {
  if (matched()) return "";
  if (stops_.empty()) return std::string(text);
  held_.append(text);
  // The earliest match wins; at equal starts, the stop listed first.
  size_t best = std::string::npos;
  for (size_t i = 0; i < stops_.size(); ++i) {
    const size_t pos = held_.find(stops_[i]);
    if (pos < best) {
      best = pos;
      matched_ = static_cast<int>(i);
    }
  }
  if (best != std::string::npos) {
    std::string out = held_.substr(0, best);
    held_.clear();
    return out;
  }
  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t keep = 0;
  const size_t limit = std::min(held_.size(), max_len_ - 1);
  for (size_t len = limit; len > 0 && keep == 0; --len) {
    const std::string_view tail = std::string_view(held_).substr(held_.size() - len);
    for (const std::string& s : stops_) {
      if (s.size() > len && std::string_view(s).substr(0, len) == tail) {
        keep = len;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopStringMatcher::Flush() {
  if (matched()) return "";
  return std::exchange(held_, std::string());
}

}  // namespace moeserve::serving
