#include "server/serving/api_keys.h"

#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace moeserve::serving {
namespace {

// Compares without an early exit on the first differing byte.
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = a.size() < b.size() ? a.size() : b.size();
  for (size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

ApiKeys::ApiKeys(std::vector<std::string> keys) : keys_(std::move(keys)) {}

absl::StatusOr<ApiKeys> ApiKeys::Load(const std::string& key, const std::string& key_file) {
  std::vector<std::string> keys;
  if (!key.empty()) keys.push_back(key);
  if (!key_file.empty()) {
    std::ifstream in(key_file);
    if (!in) return absl::NotFoundError(absl::StrCat("--api-key-file: cannot read ", key_file));
    std::string line;
    size_t found = 0;
    while (std::getline(in, line)) {
      std::string k(absl::StripAsciiWhitespace(line));
      if (k.empty() || k[0] == '#') continue;
      keys.push_back(std::move(k));
      ++found;
    }
    if (found == 0) {
      return absl::InvalidArgumentError(absl::StrCat("--api-key-file: no key in ", key_file));
    }
  }
  return ApiKeys(std::move(keys));
}

absl::Status ApiKeys::Check(const std::string_view* authorization) const {
  if (keys_.empty()) return absl::OkStatus();
  if (authorization == nullptr) {
    return absl::UnauthenticatedError("missing authorization metadata (Bearer API key)");
  }
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization->size() < kBearer.size() ||
      !absl::EqualsIgnoreCase(absl::string_view(authorization->data(), kBearer.size()),
                              absl::string_view(kBearer.data(), kBearer.size()))) {
    return absl::UnauthenticatedError("authorization metadata must be \"Bearer <api key>\"");
  }
  const std::string_view presented = authorization->substr(kBearer.size());
  bool ok = false;
  for (const std::string& k : keys_) ok |= ConstantTimeEquals(presented, k);
  if (!ok) return absl::UnauthenticatedError("invalid API key");
  return absl::OkStatus();
}

}  // namespace moeserve::serving
