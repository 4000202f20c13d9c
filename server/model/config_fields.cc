#include "server/model/config_fields.h"

#include "absl/strings/str_cat.h"

namespace moeserve {

bool ConfigFields::Has(const char* key) const {
  auto it = json_.find(key);
  return it != json_.end() && !it->is_null();
}

absl::StatusOr<int64_t> ConfigFields::Int(const char* key, std::optional<int64_t> fallback) const {
  if (!Has(key)) {
    if (fallback) return *fallback;
    return Missing(key);
  }
  const nlohmann::json& v = json_[key];
  if (!v.is_number_integer()) return Wrong(key, "an integer");
  return v.get<int64_t>();
}

absl::StatusOr<double> ConfigFields::Double(const char* key, std::optional<double> fallback) const {
  if (!Has(key)) {
    if (fallback) return *fallback;
    return Missing(key);
  }
  const nlohmann::json& v = json_[key];
  if (!v.is_number()) return Wrong(key, "a number");
  return v.get<double>();
}

absl::StatusOr<bool> ConfigFields::Bool(const char* key, bool fallback) const {
  if (!Has(key)) return fallback;
  const nlohmann::json& v = json_[key];
  if (!v.is_boolean()) return Wrong(key, "a boolean");
  return v.get<bool>();
}

absl::StatusOr<std::string> ConfigFields::String(const char* key, std::string fallback) const {
  if (!Has(key)) return fallback;
  const nlohmann::json& v = json_[key];
  if (!v.is_string()) return Wrong(key, "a string");
  return v.get<std::string>();
}

absl::StatusOr<std::vector<int64_t>> ConfigFields::IntList(const char* key) const {
  std::vector<int64_t> out;
  if (!Has(key)) return out;
  const nlohmann::json& v = json_[key];
  if (!v.is_array()) return Wrong(key, "a list of integers");
  for (const nlohmann::json& e : v) {
    if (!e.is_number_integer()) return Wrong(key, "a list of integers");
    out.push_back(e.get<int64_t>());
  }
  return out;
}

absl::Status ConfigFields::Missing(const char* key) const {
  return absl::InvalidArgumentError(absl::StrCat(source_, ": missing required field \"", key, "\""));
}

absl::Status ConfigFields::Wrong(const char* key, const char* what) const {
  return absl::InvalidArgumentError(absl::StrCat(source_, ": field \"", key, "\" must be ", what));
}

absl::Status ConfigFields::Invalid(const std::string& message) const {
  return absl::InvalidArgumentError(absl::StrCat(source_, ": ", message));
}

}  // namespace moeserve
