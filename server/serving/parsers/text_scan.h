#ifndef MOESERVE_SERVER_SERVING_PARSERS_TEXT_SCAN_H_
#define MOESERVE_SERVER_SERVING_PARSERS_TEXT_SCAN_H_

// Helpers the output parsers share for finding markup (<think>, <tool_call>, DeepSeek's tool
// tokens) in streamed text, where a marker may arrive split across deltas. Pure functions.

#include <cstddef>
#include <initializer_list>
#include <string_view>

namespace moeserve::parsers {

struct MarkerMatch {
  size_t pos = std::string_view::npos;  // npos: no marker occurs
  size_t marker = 0;                    // index into the marker list
  size_t length = 0;                    // that marker's length
  bool found() const { return pos != std::string_view::npos; }
};

// The earliest occurrence of any of `markers` in `text` (at equal positions, the one listed
// first).
MarkerMatch FindFirstMarker(std::string_view text, std::initializer_list<std::string_view> markers);

// Length of the longest suffix of `text` that is a proper prefix of one of `markers`: the text
// that must be held back because the next delta may complete a marker.
size_t PartialMarkerSuffix(std::string_view text, std::initializer_list<std::string_view> markers);

// ASCII whitespace (space, \t, \n, \v, \f, \r): the layout around markup that parsers drop.
size_t LeadingSpace(std::string_view text);
size_t TrailingSpace(std::string_view text);
std::string_view TrimSpace(std::string_view text);

// True when `text` is a proper prefix of `marker` (shorter, and equal to its start).
bool IsProperPrefixOf(std::string_view text, std::string_view marker);

}  // namespace moeserve::parsers

#endif  // MOESERVE_SERVER_SERVING_PARSERS_TEXT_SCAN_H_
