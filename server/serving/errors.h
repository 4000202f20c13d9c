#ifndef MOESERVE_SERVER_SERVING_ERRORS_H_
#define MOESERVE_SERVER_SERVING_ERRORS_H_

// Errors of the serving layer: absl::Status values whose message names the offending field as the
// client spelled it, with that name also attached as a payload so that a transport can report it
// on its own (OpenAI's error.param). FieldNames maps the serving layer's field names (those of
// SamplingParams and ServingRequest) onto a transport's.
//
// Pure functions and plain values; safe from any thread.

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace moeserve::serving {

// How one transport names the request's fields in its messages.
struct FieldNames {
  // The prompt input: "prompt" (OpenAI completions), "messages", "text", "token_ids.ids" (gRPC).
  std::string prompt = "prompt_token_ids";
  // Prepended to every sampling field ("sampling." for gRPC's nested SamplingParams).
  std::string sampling_prefix;
  // Sampling fields the transport calls differently, e.g. {"logprobs", "top_logprobs"}.
  std::vector<std::pair<std::string, std::string>> renamed;

  // The transport's name of SamplingParams field `field`.
  std::string Sampling(absl::string_view field) const;
};

// `code` with message "<field><detail>" and `field` attached as the error's parameter.
absl::Status FieldError(absl::StatusCode code, absl::string_view field, absl::string_view detail);
inline absl::Status InvalidField(absl::string_view field, absl::string_view detail) {
  return FieldError(absl::StatusCode::kInvalidArgument, field, detail);
}

// The field an error names (FieldError's), if any.
std::optional<std::string> ErrorField(const absl::Status& status);

// A moeserve::Validate(SamplingParams) error with its leading field ("temperature must be ...")
// renamed through `names` and attached as the parameter. Other statuses are returned unchanged.
absl::Status NameSamplingError(const absl::Status& status, const FieldNames& names);

}  // namespace moeserve::serving

#endif  // MOESERVE_SERVER_SERVING_ERRORS_H_
