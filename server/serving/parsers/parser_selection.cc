#include "server/serving/parsers/parser_selection.h"

#include <string>

namespace moeserve::parsers {
namespace {

constexpr ReasoningFormat kReasoningFormats[] = {ReasoningFormat::kNone, ReasoningFormat::kDeepSeekR1,
                                                 ReasoningFormat::kQwen3};
constexpr ToolCallFormat kToolCallFormats[] = {ToolCallFormat::kNone, ToolCallFormat::kDeepSeekV3,
                                               ToolCallFormat::kHermes};

}  // namespace

const char* ReasoningFormatName(ReasoningFormat format) {
  switch (format) {
    case ReasoningFormat::kNone: return "none";
    case ReasoningFormat::kDeepSeekR1: return "deepseek_r1";
    case ReasoningFormat::kQwen3: return "qwen3";
  }
  return "none";
}

const char* ToolCallFormatName(ToolCallFormat format) {
  switch (format) {
    case ToolCallFormat::kNone: return "none";
    case ToolCallFormat::kDeepSeekV3: return "deepseek_v3";
    case ToolCallFormat::kHermes: return "hermes";
  }
  return "none";
}

ReasoningFormat DetectReasoningFormat(std::string_view chat_template) {
  if (chat_template.find("</think>") == std::string_view::npos) return ReasoningFormat::kNone;
  if (chat_template.find("<｜Assistant｜>") != std::string_view::npos) return ReasoningFormat::kDeepSeekR1;
  return ReasoningFormat::kQwen3;
}

ToolCallFormat DetectToolCallFormat(std::string_view chat_template) {
  if (chat_template.find("<｜tool▁call▁begin｜>") != std::string_view::npos) return ToolCallFormat::kDeepSeekV3;
  if (chat_template.find("<tool_call>") != std::string_view::npos) return ToolCallFormat::kHermes;
  return ToolCallFormat::kNone;
}

absl::StatusOr<ReasoningFormat> ResolveReasoningFormat(std::string_view flag, std::string_view chat_template) {
  if (flag == "auto") return DetectReasoningFormat(chat_template);
  for (ReasoningFormat f : kReasoningFormats) {
    if (flag == ReasoningFormatName(f)) return f;
  }
  return absl::InvalidArgumentError("--reasoning-parser: unknown parser '" + std::string(flag) +
                                    "' (expected auto, none, deepseek_r1 or qwen3)");
}

absl::StatusOr<ToolCallFormat> ResolveToolCallFormat(std::string_view flag, std::string_view chat_template) {
  if (flag == "auto") return DetectToolCallFormat(chat_template);
  for (ToolCallFormat f : kToolCallFormats) {
    if (flag == ToolCallFormatName(f)) return f;
  }
  return absl::InvalidArgumentError("--tool-call-parser: unknown parser '" + std::string(flag) +
                                    "' (expected auto, none, deepseek_v3 or hermes)");
}

}  // namespace moeserve::parsers
