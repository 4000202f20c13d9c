#ifndef MOESERVE_SERVER_MODEL_CONFIG_FIELDS_H_
#define MOESERVE_SERVER_MODEL_CONFIG_FIELDS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace moeserve {

// Typed reads of one JSON object's fields (config.json or an object inside it). A field that is
// absent or null takes the fallback, or is a "missing required field" error without one; a field
// of the wrong type is an error. Every error names the source and the field. Holds references:
// the JSON must outlive it.
class ConfigFields {
 public:
  ConfigFields(const nlohmann::json& json, std::string_view source) : json_(json), source_(source) {}

  const nlohmann::json& json() const { return json_; }
  const std::string& source() const { return source_; }
  bool Has(const char* key) const;  // present and not null

  absl::StatusOr<int64_t> Int(const char* key, std::optional<int64_t> fallback) const;
  absl::StatusOr<double> Double(const char* key, std::optional<double> fallback) const;
  absl::StatusOr<bool> Bool(const char* key, bool fallback) const;
  absl::StatusOr<std::string> String(const char* key, std::string fallback) const;
  // A list of integers; empty when absent or null.
  absl::StatusOr<std::vector<int64_t>> IntList(const char* key) const;

  absl::Status Missing(const char* key) const;
  absl::Status Wrong(const char* key, const char* what) const;  // "field \"key\" must be <what>"
  absl::Status Invalid(const std::string& message) const;       // "<source>: <message>"

 private:
  const nlohmann::json& json_;
  std::string source_;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_CONFIG_FIELDS_H_
