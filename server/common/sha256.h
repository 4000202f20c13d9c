#ifndef MOESERVE_SERVER_COMMON_SHA256_H_
#define MOESERVE_SERVER_COMMON_SHA256_H_

// SHA-256 (FIPS 180-4). Used for prefix-cache block keys, where a collision would silently hand
// one request another's KV cache, so a cryptographic hash is used rather than a fast one.
//
// Sha256 is a streaming hasher: Update() any number of times, then Finish() once.
// Not thread-safe; one instance per thread.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moeserve {

using Sha256Digest = std::array<uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  Sha256(const Sha256&) = default;
  Sha256& operator=(const Sha256&) = default;

  void Update(const void* data, size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  // REQUIRES: not called before on this instance. The hasher is spent afterwards.
  Sha256Digest Finish();

  static Sha256Digest Hash(std::string_view data);

 private:
  void Compress(const uint8_t* block);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_;
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

// Lower-case hexadecimal, 64 characters.
std::string Sha256Hex(const Sha256Digest& digest);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_COMMON_SHA256_H_
