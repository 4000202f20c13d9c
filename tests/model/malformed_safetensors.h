#ifndef MOESERVE_TESTS_MODEL_MALFORMED_SAFETENSORS_H_
#define MOESERVE_TESTS_MODEL_MALFORMED_SAFETENSORS_H_

// Hand-built safetensors byte strings shared by the parser tests and the fuzz replay test.

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/types/span.h"

namespace moeserve::testing {

// A file with header length = json.size(), the JSON, then `data_bytes` bytes of 0xAB.
std::string RawSafetensors(std::string_view json, size_t data_bytes);

inline absl::Span<const uint8_t> AsBytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

struct MalformedCase {
  std::string name;      // a test-name-safe identifier
  std::string bytes;     // the whole file
  std::string expected;  // a substring of the error message
};

// Keeps GoogleTest from dumping the struct's bytes in test names.
inline void PrintTo(const MalformedCase& c, std::ostream* os) { *os << c.name; }

// Files that ParseSafetensorsHeader must reject, parsed as "model.safetensors".
std::vector<MalformedCase> MalformedSafetensorsCases();

// A small valid file: two BF16/F32 tensors filling the data section exactly, with metadata.
std::string ValidSafetensors();

}  // namespace moeserve::testing

#endif  // MOESERVE_TESTS_MODEL_MALFORMED_SAFETENSORS_H_
