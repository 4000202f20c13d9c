#ifndef MOESERVE_SERVER_SERVING_API_KEYS_H_
#define MOESERVE_SERVER_SERVING_API_KEYS_H_

// API keys: a call is accepted when its `authorization` (gRPC metadata or HTTP header) is
// `Bearer <key>` for one of the configured keys. With no keys configured every call is accepted. Keys are compared in
// constant time and never logged.
//
// Immutable after construction; safe for concurrent use.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace moeserve::serving {

class ApiKeys {
 public:
  ApiKeys() = default;
  explicit ApiKeys(std::vector<std::string> keys);

  // `key` (may be empty) plus one key per non-empty line of `key_file` (may be empty; lines
  // starting with '#' are comments). InvalidArgument when a key file is named but holds no key.
  static absl::StatusOr<ApiKeys> Load(const std::string& key, const std::string& key_file);

  bool enabled() const { return !keys_.empty(); }

  // OK, or Unauthenticated saying what is wrong (missing header, not Bearer, unknown key).
  // `authorization`: the metadata value, or nullptr when absent.
  absl::Status Check(const std::string_view* authorization) const;

 private:
  std::vector<std::string> keys_;
};

}  // namespace moeserve::serving

#endif  // MOESERVE_SERVER_SERVING_API_KEYS_H_
