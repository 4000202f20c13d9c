#include "server/serving/parsers/reasoning_parser.h"

#include "server/common/logging.h"
#include "server/serving/parsers/text_scan.h"

namespace moeserve::parsers {
namespace {

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";

}  // namespace

bool PromptOpensReasoning(std::string_view prompt_text) {
  prompt_text.remove_suffix(TrailingSpace(prompt_text));
  return prompt_text.ends_with(kThinkOpen);
}

ReasoningParser::ReasoningParser(ReasoningFormat format, std::string_view prompt_text) {
  if (format == ReasoningFormat::kNone) {
    state_ = State::kContent;
  } else if (PromptOpensReasoning(prompt_text)) {
    state_ = State::kReasoningStart;
    saw_reasoning_ = true;
  } else {
    state_ = State::kStart;
  }
}

ReasoningDelta ReasoningParser::Feed(std::string_view text) {
  MS_CHECK(!finished_) << "ReasoningParser::Feed after Finish";
  ReasoningDelta out;
  pending_.append(text);
  Drain(&out);
  return out;
}

void ReasoningParser::Drain(ReasoningDelta* out) {
  for (;;) {
    switch (state_) {
      case State::kStart: {
        const size_t space = LeadingSpace(pending_);
        const std::string_view rest = std::string_view(pending_).substr(space);
        if (rest.empty() || IsProperPrefixOf(rest, kThinkOpen)) return;  // undecided
        if (rest.starts_with(kThinkOpen)) {
          pending_.erase(0, space + kThinkOpen.size());
          state_ = State::kReasoningStart;
          saw_reasoning_ = true;
        } else {
          state_ = State::kContent;  // leading whitespace stays: there is no markup to trim
        }
        break;
      }
      case State::kReasoningStart: {
        pending_.erase(0, LeadingSpace(pending_));
        if (pending_.empty() || IsProperPrefixOf(pending_, kThinkOpen)) return;
        if (pending_.starts_with(kThinkOpen)) {
          pending_.erase(0, kThinkOpen.size());
        } else {
          state_ = State::kReasoning;
        }
        break;
      }
      case State::kReasoning: {
        const size_t close = pending_.find(kThinkClose);
        if (close != std::string::npos) {
          std::string_view reasoning = std::string_view(pending_).substr(0, close);
          reasoning.remove_suffix(TrailingSpace(reasoning));
          out->reasoning.append(reasoning);
          pending_.erase(0, close + kThinkClose.size());
          state_ = State::kContentStart;
          break;
        }
        // Hold back a partial </think> and the whitespace before it (dropped if the tag completes).
        size_t keep = PartialMarkerSuffix(pending_, {kThinkClose});
        keep += TrailingSpace(std::string_view(pending_).substr(0, pending_.size() - keep));
        out->reasoning.append(pending_, 0, pending_.size() - keep);
        pending_.erase(0, pending_.size() - keep);
        return;
      }
      case State::kContentStart:
        pending_.erase(0, LeadingSpace(pending_));
        if (pending_.empty()) return;
        state_ = State::kContent;
        break;
      case State::kContent:
        out->content.append(pending_);
        pending_.clear();
        return;
    }
  }
}

ReasoningDelta ReasoningParser::Finish() {
  MS_CHECK(!finished_) << "ReasoningParser::Finish called twice";
  finished_ = true;
  ReasoningDelta out;
  Drain(&out);
  switch (state_) {
    case State::kStart:  // whitespace or a partial <think>: never opened
      out.content.append(pending_);
      break;
    case State::kReasoningStart:  // a partial <think> after the opening
    case State::kReasoning:       // no </think>: the rest was reasoning
      out.reasoning.append(pending_);
      break;
    case State::kContentStart:
    case State::kContent: break;
  }
  pending_.clear();
  return out;
}

}  // namespace moeserve::parsers
