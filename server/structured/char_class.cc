#include "server/structured/char_class.h"

#include <utility>
#include <vector>

namespace moeserve::structured {

CodepointSet AsciiComplement(const CodepointSet& set) { return Intersect(Complement(set), CodepointSet{{0, 0x7F}}); }

bool ScanCharClass(std::string_view text, size_t* pos, bool leading_bracket_is_literal,
                   absl::FunctionRef<bool(ClassItem* item)> read_item,
                   absl::FunctionRef<bool(std::string_view message)> fail, CodepointSet* out) {
  ++*pos;  // [
  bool negate = false;
  if (*pos < text.size() && text[*pos] == '^') {
    negate = true;
    ++*pos;
  }
  std::vector<CodepointRange> ranges;
  bool ascii_negation = false;
  bool first = true;
  while (true) {
    if (*pos >= text.size()) return fail("unterminated character class");
    if (text[*pos] == ']' && !(first && leading_bracket_is_literal)) {
      ++*pos;
      break;
    }
    first = false;
    ClassItem item;
    if (!read_item(&item)) return false;
    ascii_negation |= item.ascii_negation;
    const bool single = !item.shorthand && item.set.size() == 1 && item.set[0].lo == item.set[0].hi;
    if (single && *pos + 1 < text.size() && text[*pos] == '-' && text[*pos + 1] != ']') {
      ++*pos;
      ClassItem hi;
      if (!read_item(&hi)) return false;
      if (hi.shorthand || hi.set.size() != 1 || hi.set[0].lo != hi.set[0].hi) return fail("bad character range");
      if (hi.set[0].lo < item.set[0].lo) return fail("bad character range (out of order)");
      ranges.push_back({item.set[0].lo, hi.set[0].lo});
      continue;
    }
    ranges.insert(ranges.end(), item.set.begin(), item.set.end());
  }
  CodepointSet set = Canonicalize(std::move(ranges));
  if (negate) set = ascii_negation ? AsciiComplement(set) : Complement(set);
  *out = std::move(set);
  return true;
}

}  // namespace moeserve::structured
