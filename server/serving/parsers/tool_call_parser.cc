#include "server/serving/parsers/tool_call_parser.h"

#include <algorithm>

#include "server/common/logging.h"
#include "server/serving/parsers/text_scan.h"

namespace moeserve::parsers {
namespace {

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

std::string ToolCallId(uint64_t id_seed, int index) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  uint64_t state = id_seed ^ (0xD1B54A32D192ED03ull * (static_cast<uint64_t>(index) + 1));
  std::string id = "call_";
  uint64_t bits = 0;
  int left = 0;
  for (int i = 0; i < 24; ++i) {
    if (left == 0) {
      bits = SplitMix64(&state);
      left = 10;  // 10 draws of 6 bits from 60 of the 64
    }
    id.push_back(kAlphabet[(bits & 63) % 62]);
    bits >>= 6;
    --left;
  }
  return id;
}

ToolCallParser::ToolCallParser(ToolCallFormat format, uint64_t id_seed)
    : syntax_(format == ToolCallFormat::kNone ? nullptr : &SyntaxOf(format)), id_seed_(id_seed) {}

ToolCallDelta ToolCallParser::Feed(std::string_view text) {
  MS_CHECK(!finished_) << "ToolCallParser::Feed after Finish";
  ToolCallDelta out;
  if (syntax_ == nullptr) {
    out.content = std::string(text);
    return out;
  }
  pending_.append(text);
  Drain(&out);
  return out;
}

void ToolCallParser::Drain(ToolCallDelta* out) {
  const ToolCallSyntax& s = *syntax_;
  for (;;) {
    switch (state_) {
      case State::kContent: {
        // Marker 0 is the block opening (empty, so never found, for formats without blocks).
        const MarkerMatch m = FindFirstMarker(pending_, {s.block_begin, s.call_begin});
        if (m.found()) {
          std::string_view before = std::string_view(pending_).substr(0, m.pos);
          const size_t space = TrailingSpace(before);
          layout_ = std::string(before.substr(before.size() - space));
          out->content.append(before.substr(0, before.size() - space));
          pending_.erase(0, m.pos + m.length);
          in_block_ = m.marker == 0;
          state_ = in_block_ ? State::kBlock : State::kCall;
          call_scanned_ = 0;
          break;
        }
        size_t keep = PartialMarkerSuffix(pending_, {s.block_begin, s.call_begin});
        keep += TrailingSpace(std::string_view(pending_).substr(0, pending_.size() - keep));
        out->content.append(pending_, 0, pending_.size() - keep);
        pending_.erase(0, pending_.size() - keep);
        return;
      }
      case State::kBlock: {
        pending_.erase(0, LeadingSpace(pending_));
        if (pending_.empty() || IsProperPrefixOf(pending_, s.call_begin) || IsProperPrefixOf(pending_, s.block_end)) {
          return;
        }
        if (pending_.starts_with(s.call_begin)) {
          pending_.erase(0, s.call_begin.size());
          layout_.clear();
          call_scanned_ = 0;
          state_ = State::kCall;
        } else if (pending_.starts_with(s.block_end)) {
          pending_.erase(0, s.block_end.size());
          in_block_ = false;
          state_ = State::kAfterMarkup;
        } else {
          in_block_ = false;  // prose inside the block: content again
          state_ = State::kContent;
        }
        break;
      }
      case State::kAfterMarkup:
        pending_.erase(0, LeadingSpace(pending_));
        if (pending_.empty()) return;
        state_ = State::kContent;
        break;
      case State::kCall: {
        // The call ends at its closing marker, or unclosed where other markup starts.
        const std::string_view unscanned = std::string_view(pending_).substr(call_scanned_);
        MarkerMatch m = FindFirstMarker(unscanned, {s.call_end, s.call_begin, s.block_begin, s.block_end});
        if (!m.found()) {
          call_scanned_ =
              pending_.size() - PartialMarkerSuffix(pending_, {s.call_end, s.call_begin, s.block_begin, s.block_end});
          return;
        }
        m.pos += call_scanned_;
        const bool closed = m.marker == 0;
        const std::string body = pending_.substr(0, m.pos);
        pending_.erase(0, closed ? m.pos + m.length : m.pos);
        EndCall(body, closed, out);
        state_ = in_block_ ? State::kBlock : (closed ? State::kAfterMarkup : State::kContent);
        break;
      }
    }
  }
}

void ToolCallParser::EndCall(std::string_view body, bool closed, ToolCallDelta* out) {
  std::optional<ParsedToolCall> call = syntax_->read_body(body);
  if (call) {
    out->calls.push_back(
        ToolCall{num_calls_, ToolCallId(id_seed_, num_calls_), std::move(call->name), std::move(call->arguments)});
    ++num_calls_;
  } else {
    out->content.append(layout_).append(syntax_->call_begin).append(body);
    if (closed) out->content.append(syntax_->call_end);
  }
  layout_.clear();
}

ToolCallDelta ToolCallParser::Finish() {
  MS_CHECK(!finished_) << "ToolCallParser::Finish called twice";
  finished_ = true;
  ToolCallDelta out;
  if (syntax_ == nullptr) return out;
  Drain(&out);
  if (state_ == State::kCall) {
    EndCall(pending_, /*closed=*/false, &out);
  } else {
    // Held whitespace or a partial marker that never completed.
    out.content.append(pending_);
  }
  pending_.clear();
  return out;
}

}  // namespace moeserve::parsers
