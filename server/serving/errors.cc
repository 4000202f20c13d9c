#include "server/serving/errors.h"

#include <array>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace moeserve::serving {
namespace {

constexpr char kFieldPayload[] = "type.moeserve.dev/field";

// Every field a SamplingParams validation message may start with.
constexpr std::array<absl::string_view, 17> kSamplingFields = {
    "n",          "max_tokens",     "min_tokens",         "temperature",      "top_k",
    "top_p",      "min_p",          "repetition_penalty", "presence_penalty", "frequency_penalty",
    "logit_bias", "seed",           "stop_token_ids",     "ignore_eos",       "stop",
    "logprobs",   "prompt_logprobs"};

}  // namespace

std::string FieldNames::Sampling(absl::string_view field) const {
  for (const auto& [from, to] : renamed) {
    if (from == field) return absl::StrCat(sampling_prefix, to);
  }
  return absl::StrCat(sampling_prefix, field);
}

absl::Status FieldError(absl::StatusCode code, absl::string_view field, absl::string_view detail) {
  absl::Status status(code, absl::StrCat(field, detail));
  status.SetPayload(kFieldPayload, absl::Cord(field));
  return status;
}

std::optional<std::string> ErrorField(const absl::Status& status) {
  absl::optional<absl::Cord> field = status.GetPayload(kFieldPayload);
  if (!field.has_value()) return std::nullopt;
  return std::string(*field);
}

absl::Status NameSamplingError(const absl::Status& status, const FieldNames& names) {
  if (status.ok()) return status;
  const absl::string_view message = status.message();
  size_t end = 0;
  while (end < message.size() && ((message[end] >= 'a' && message[end] <= 'z') || message[end] == '_')) {
    ++end;
  }
  const absl::string_view field = message.substr(0, end);
  for (absl::string_view known : kSamplingFields) {
    if (field == known) return FieldError(status.code(), names.Sampling(field), message.substr(end));
  }
  return status;
}

}  // namespace moeserve::serving
