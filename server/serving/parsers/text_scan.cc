#include "server/serving/parsers/text_scan.h"

#include <algorithm>

#include "absl/strings/ascii.h"

namespace moeserve::parsers {

MarkerMatch FindFirstMarker(std::string_view text, std::initializer_list<std::string_view> markers) {
  MarkerMatch best;
  size_t index = 0;
  for (std::string_view m : markers) {
    const size_t pos = m.empty() ? std::string_view::npos : text.find(m);
    if (pos < best.pos) best = MarkerMatch{pos, index, m.size()};
    ++index;
  }
  return best;
}

size_t PartialMarkerSuffix(std::string_view text, std::initializer_list<std::string_view> markers) {
  size_t longest = 0;
  for (std::string_view m : markers) {
    if (m.empty()) continue;
    // Longest first: stop at the first suffix of this length that `m` starts with.
    for (size_t len = std::min(text.size(), m.size() - 1); len > longest; --len) {
      if (text.substr(text.size() - len) == m.substr(0, len)) {
        longest = len;
        break;
      }
    }
  }
  return longest;
}

size_t LeadingSpace(std::string_view text) {
  size_t n = 0;
  while (n < text.size() && absl::ascii_isspace(static_cast<unsigned char>(text[n]))) ++n;
  return n;
}

size_t TrailingSpace(std::string_view text) {
  size_t n = 0;
  while (n < text.size() && absl::ascii_isspace(static_cast<unsigned char>(text[text.size() - 1 - n]))) {
    ++n;
  }
  return n;
}

std::string_view TrimSpace(std::string_view text) {
  text.remove_prefix(LeadingSpace(text));
  text.remove_suffix(TrailingSpace(text));
  return text;
}

bool IsProperPrefixOf(std::string_view text, std::string_view marker) {
  return text.size() < marker.size() && marker.substr(0, text.size()) == text;
}

}  // namespace moeserve::parsers
